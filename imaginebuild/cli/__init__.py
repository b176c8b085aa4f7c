"""The command line: argument parsing, printing, and the formats a person reads.

    app        `main(argv) -> int`: parse, call the library, map errors to exit codes
    console    the plain-line and JSON reporters
    live       the live progress display on a terminal
    report     the static HTML gallery
    dagformat  `dag` in text, dot and mermaid
    takescmd   `takes`, `pick`, `accept`, `adopt`
    reporttakes the report's strip of an asset's takes

The top layer: the only code that prints, reads arguments or chooses an exit code.
May import: the shared vocabulary, `mediafile`, `store`, `providers`, `remote`,
`coordinator`, `engine` and `project`. Only `__main__` imports it.
"""
