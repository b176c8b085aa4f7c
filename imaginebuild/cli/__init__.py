"""The command line: argument parsing, printing, and the formats a person reads.

    app        `main(argv) -> int`: parse, dispatch, map errors to exit codes
    invocation the grammar: commands, their options, the global options
    context    what every command needs: mediafile, reporter, project, run options, streams
    survey     the commands that read: plan, status, why, show, dag, validate, cost, schema
    actions    the commands that change things: run, checkout, pull, push, gc, clean, init,
               report, team
    housekeeping gc's and clean's listing, the question on a terminal, the answer
    pricesview `prices [--refresh]` and the plan's price footnotes
    github     GitHub Actions: the step summary, the packaged action's markdown
    completion shell completion scripts and the asset names they complete
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
