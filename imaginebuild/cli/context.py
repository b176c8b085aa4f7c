"""What every command handler needs: the mediafile's path, the reporter, the loaded
project, the run options and the two output streams."""

from __future__ import annotations

import argparse
import json
import os
import sys
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import TYPE_CHECKING

from imaginebuild.cli.invocation import DEFAULT_MEDIAFILE
from imaginebuild.errors import UsageError
from imaginebuild.spelled import PROVIDERS
from imaginebuild.untrusted import finite_decimal, printable

if TYPE_CHECKING:
    from imaginebuild.engine.facts import RunOptions
    from imaginebuild.engine.results import CommandResult
    from imaginebuild.events import Reporter
    from imaginebuild.project import Project


def mediafile_path(args: argparse.Namespace) -> Path:
    """The mediafile the command works on (`-f`, else ./mediafile.yaml); it must exist."""
    path = Path(args.mediafile or DEFAULT_MEDIAFILE)
    if not path.is_file():
        raise UsageError(
            f"no mediafile at {path}",
            hint="create one with `imaginebuild init`, or name it with -f",
        )
    return path


def reporter(args: argparse.Namespace) -> Reporter:
    """The event sink on stderr: a live display for `run` on a terminal, else plain lines."""
    from imaginebuild.cli.console import (
        VERBOSITY_NORMAL,
        VERBOSITY_QUIET,
        VERBOSITY_VERBOSE,
        PlainReporter,
    )

    level = (
        VERBOSITY_QUIET if args.quiet else VERBOSITY_VERBOSE if args.verbose else VERBOSITY_NORMAL
    )
    if args.command == "run" and level >= VERBOSITY_NORMAL and live_terminal():
        from imaginebuild.cli.live import LiveReporter

        return LiveReporter(sys.stderr, verbosity=level)
    return PlainReporter(sys.stderr, level)


def live_terminal() -> bool:
    """Whether stderr is an interactive terminal outside CI (then a run draws a live display)."""
    return sys.stderr.isatty() and not os.environ.get("CI") and os.environ.get("TERM") != "dumb"


def open_project(args: argparse.Namespace, events: Reporter | None = None) -> Project:
    """Load and validate the mediafile as a Project reporting to `events` (or stderr)."""
    from imaginebuild.model import InputPolicy
    from imaginebuild.project import load

    policy = InputPolicy.from_env(os.environ, args.allow_read)
    return load(mediafile_path(args), policy=policy, reporter=events or reporter(args))


def settled_answer(
    args: argparse.Namespace, events: Reporter | None = None
) -> CommandResult | None:
    """The answer from the settled snapshot when nothing changed since the last
    up-to-date verdict; None means the command decides in full.

    Option errors (`-j 0`, an unknown provider, `--force`) always go the full way,
    so they are reported exactly as there.
    """
    if getattr(args, "force", None) is not None or getattr(args, "dry_run", False):
        return None
    if getattr(args, "jobs", 1) < 1 or getattr(args, "provider", None) not in (None, *PROVIDERS):
        return None
    money(getattr(args, "max_cost", None))
    from imaginebuild.store import settled

    found = settled.lookup(
        mediafile_path(args),
        allow_read=args.allow_read or (),
        targets=args.targets,
        provider=args.provider if args.command == "run" else None,  # status builds nothing
        env=os.environ,
    )
    if found is None:
        return None
    from imaginebuild.engine.results import settled_result

    return settled_result(args.command, found, events)


def money(text: str | None) -> Decimal | None:
    """`--max-cost USD` as a Decimal (None when not given); a usage error when not an amount."""
    if text is None:
        return None
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise UsageError(f"--max-cost {text!r} is not an amount in USD") from None
    if finite_decimal(value) is None or value < 0:
        raise UsageError(
            f"--max-cost {text!r} must be a non-negative amount in USD below $1,000,000,000,000"
        )
    return value


def run_options(args: argparse.Namespace) -> RunOptions:
    """The library's RunOptions from `run`'s (or `plan`'s) command line."""
    from imaginebuild.engine.facts import RunOptions

    return RunOptions(
        jobs=getattr(args, "jobs", 8),
        provider=args.provider,
        force=None if args.force is None else tuple(args.force),
        keep_going=getattr(args, "keep_going", False),
        max_cost_usd=money(getattr(args, "max_cost", None)),
        offline=getattr(args, "offline", False),
        locked=getattr(args, "locked", False),
        retry_expired=getattr(args, "retry_expired", False),
        no_push=getattr(args, "no_push", False),
        no_coordinator=getattr(args, "no_coordinator", False),
    )


def emit_json(data: object) -> None:
    """The command's one JSON object, on stdout."""
    sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=False) + "\n")


def say(text: str) -> None:
    """A line for people on stderr (progress, warnings, diagnostics)."""
    sys.stderr.write(printable(text) + "\n")  # lockfile and server text may carry escapes


def result_line(text: str) -> None:
    """A line of the command's result, on stdout (so it pipes)."""
    sys.stdout.write(printable(text) + "\n")


def terminal_width() -> int | None:
    """The width of the terminal stdout is on; None when stdout is piped (no truncation)."""
    if not sys.stdout.isatty():
        return None
    import shutil

    return shutil.get_terminal_size().columns
