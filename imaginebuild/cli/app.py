"""The command line's entry point: parse, dispatch to a command, turn errors into exit codes.

`main(argv) -> int` is callable from tests. Library errors become `error: …` and
`hint: …` lines and their exit code; anything else is a bug and says so.

    invocation  the grammar: commands, their options, the global options
    context     what every handler needs: mediafile, reporter, project, options, streams
    survey      commands that read: plan, status, why, show, dag, validate, cost, schema
    actions     commands that change things: run, checkout, pull, push, gc, clean, init, report,
                team
    takescmd    the take commands: takes, pick, accept, adopt
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import sys
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from imaginebuild.cli.invocation import build_parser, parse, wants_json
from imaginebuild.errors import ImaginebuildError, Interrupted, MediafileError, UsageError
from imaginebuild.untrusted import environment_failure, printable

BUG_EXIT = 70  # EX_SOFTWARE: an internal error, not the user's

Handler = Callable[[argparse.Namespace], int]


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI with `argv` (default: sys.argv[1:]) and return the exit code.

    Leaves the process as it found it: the SIGTERM handler and the working folder
    (`-C`) are restored on return, so callers in-process (tests, embedders) see no change.
    """
    sigterm = signal.getsignal(signal.SIGTERM)
    try:
        cwd: Path | None = Path.cwd()
    except OSError:  # the folder we were started in is gone
        cwd = None
    try:
        return _main(argv)
    finally:
        if sigterm is not None:  # None: a handler not installed from Python; left alone
            signal.signal(signal.SIGTERM, sigterm)
        if cwd is not None:
            with contextlib.suppress(OSError):
                os.chdir(cwd)


def _main(argv: Sequence[str] | None) -> int:
    as_json = wants_json(sys.argv[1:] if argv is None else argv)
    try:
        args = parse(argv)
        as_json = args.json
        if args.command is None:
            if as_json:
                raise UsageError("no command given", hint="imaginebuild --help")
            build_parser().print_help(sys.stderr)
            return 2
        if args.directory:
            try:
                os.chdir(args.directory)
            except OSError as exc:
                raise UsageError(
                    f"-C {args.directory}: {exc.strerror}", hint="name an existing project folder"
                ) from None
        _install_sigterm()
        return _handler(args.command)(args)
    except ImaginebuildError as exc:
        return _report_error(exc, as_json)
    except KeyboardInterrupt:
        return _report_error(Interrupted("interrupted"), as_json)
    except SystemExit as exc:  # argparse --version / --help
        return int(exc.code or 0)
    except OSError as exc:  # disk full, permission, read-only: the machine's, not the input's
        return _report_error(environment_failure(exc), as_json)
    except Exception:
        sys.stderr.write(traceback.format_exc())
        bug = ImaginebuildError(
            "this is a bug in imaginebuild, not in your mediafile; "
            "please report it with the traceback above"
        )
        bug.exit_code = BUG_EXIT
        return _report_error(bug, as_json)


def _install_sigterm() -> None:
    """Treat SIGTERM like Ctrl-C so finished steps are recorded and jobs stay journaled."""

    def handler(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, handler)


def _report_error(exc: ImaginebuildError, as_json: bool) -> int:
    if as_json:
        data: dict[str, Any] = {"error": exc.message, "hint": exc.hint, "exit_code": exc.exit_code}
        if isinstance(exc, MediafileError):
            data["diagnostics"] = [d.to_json() for d in exc.diagnostics]
        print(json.dumps(data, indent=2))
    if isinstance(exc, MediafileError):
        sys.stderr.write(printable(exc.message) + "\n")
    else:
        sys.stderr.write(f"error: {printable(exc.message)}\n")
        if exc.hint:
            sys.stderr.write(f"hint: {printable(exc.hint)}\n")
    return exc.exit_code


def _handler(command: str) -> Handler:
    """The handler of a command (its module is imported only now)."""
    if command in ("run", "checkout", "pull", "push", "gc", "clean", "init", "report", "team"):
        from imaginebuild.cli import actions

        return {
            "run": actions.cmd_run,
            "checkout": actions.cmd_checkout,
            "pull": actions.cmd_checkout,
            "push": actions.cmd_push,
            "gc": actions.cmd_gc,
            "clean": actions.cmd_clean,
            "init": actions.cmd_init,
            "report": actions.cmd_report,
            "team": actions.cmd_team,
        }[command]
    if command in ("takes", "pick", "accept", "adopt"):
        from imaginebuild.cli import takescmd

        return {
            "takes": takescmd.cmd_takes,
            "pick": takescmd.cmd_pick,
            "accept": takescmd.cmd_accept,
            "adopt": takescmd.cmd_adopt,
        }[command]
    if command == "prices":
        from imaginebuild.cli.pricesview import cmd_prices

        return cmd_prices
    if command == "completion":
        from imaginebuild.cli.completion import cmd_completion

        return cmd_completion
    from imaginebuild.cli import survey

    return {
        "plan": survey.cmd_plan,
        "status": survey.cmd_status,
        "why": survey.cmd_why,
        "show": survey.cmd_show,
        "dag": survey.cmd_dag,
        "validate": survey.cmd_validate,
        "cost": survey.cmd_cost,
        "schema": survey.cmd_schema,
    }[command]
