"""The commands that change things: run, checkout and pull, push, gc, clean, init, report, team."""

from __future__ import annotations

import argparse
import dataclasses
import os
import time
from pathlib import Path

from imaginebuild.cli.context import (
    emit_json,
    open_project,
    reporter,
    result_line,
    run_options,
    say,
    settled_answer,
)
from imaginebuild.cli.invocation import DEFAULT_MEDIAFILE
from imaginebuild.events import AssetState


def cmd_run(args: argparse.Namespace) -> int:
    """`run`: build the targets; live display or event lines and the summary on stderr."""
    events = reporter(args)
    started = time.monotonic()
    result = settled_answer(args, events)
    if result is not None:
        result = dataclasses.replace(result, seconds=time.monotonic() - started)
    else:
        project = open_project(args, events)
        options = run_options(args)
        if args.dry_run:
            from imaginebuild.cli.survey import print_plan

            return print_plan(args, project, options)
        result = project.run(args.targets, options)
    from imaginebuild.cli.console import summary_line
    from imaginebuild.cli.github import write_step_summary

    for message in result.messages:
        say(message)
    for asset in result.assets:
        if asset.state == AssetState.FAILED and asset.hint:
            say(f"hint: {asset.name}: {asset.hint}")
    if not getattr(events, "shows_summary", False):
        say(summary_line(result))
    write_step_summary(result)
    if args.json:
        emit_json(result.to_json())
    return result.exit_code


def cmd_checkout(args: argparse.Namespace) -> int:
    """`checkout` / `pull`: materialize the lockfile's outputs from the cache(s)."""
    result = open_project(args).checkout(args.targets, pull=args.command == "pull")
    if args.json:
        emit_json(result.to_json())
    for asset in result.assets:
        if asset.state == AssetState.FAILED and asset.hint:
            say(f"hint: {asset.name}: {asset.hint}")
    counts = result.counts
    say(
        f"restored {counts.get(AssetState.RESTORED, 0)}, "
        f"up to date {counts.get(AssetState.UP_TO_DATE, 0)}, "
        f"failed {counts.get(AssetState.FAILED, 0)}"
    )
    return result.exit_code


def cmd_push(args: argparse.Namespace) -> int:
    """`push`: upload locked builds to the remote cache."""
    result = open_project(args).push(args.targets)
    if args.json:
        emit_json(result.to_json())
    counts = result.counts
    say(
        f"pushed {counts.get(AssetState.PUSHED, 0)}, "
        f"already there {counts.get(AssetState.UP_TO_DATE, 0)}, "
        f"skipped {counts.get(AssetState.SKIPPED, 0)}, failed {counts.get(AssetState.FAILED, 0)}"
    )
    return result.exit_code


def cmd_gc(args: argparse.Namespace) -> int:
    """`gc`: drop cache entries (local, or `--remote`) no lockfile references."""
    project = open_project(args)
    if not args.remote:
        from imaginebuild.cli.housekeeping import run_gc

        return run_gc(
            project,
            dry_run=args.dry_run,
            yes=args.yes,
            only_current=args.only_current,
            min_age=args.min_age,
            as_json=args.json,
        )
    result = project.gc_remote(dry_run=args.dry_run or not args.yes, min_age=args.min_age)
    if args.json:
        emit_json(dataclasses.asdict(result))
        return 0
    verb = "would drop" if result.dry_run else "dropped"
    result_line(
        f"{verb} {result.actions} action entries and {result.blobs} blobs "
        f"({result.bytes} bytes) from the remote cache"
    )
    if result.dry_run and not args.dry_run:
        say("hint: run `imaginebuild gc --remote --yes` to delete them")
    return 0


def cmd_clean(args: argparse.Namespace) -> int:
    """`clean`: list (or, `--yes`, remove) outputs of assets the mediafile no longer has."""
    from imaginebuild.cli.housekeeping import run_clean

    return run_clean(open_project(args), yes=args.yes, as_json=args.json)


def cmd_init(args: argparse.Namespace) -> int:
    """`init`: scaffold a mediafile and .gitignore entries."""
    from imaginebuild.mediafile.scaffold import scaffold

    written = scaffold(Path.cwd(), Path(args.mediafile or DEFAULT_MEDIAFILE), args.ignore_outputs)
    if args.json:
        emit_json({"written": written})
        return 0
    for line in written:
        result_line(line)
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    """`report`: write the static HTML gallery."""
    from imaginebuild.cli.report import write_report

    project = open_project(args)
    index = write_report(project, Path(args.output or project.state_dir / "report"))
    if args.json:
        emit_json({"report": str(index)})
    else:
        result_line(f"report: {index.resolve().as_uri()}")
    return 0


def cmd_team(args: argparse.Namespace) -> int:
    """`team set|status`: the coordinator's caps and rates."""
    from imaginebuild.cli.teamview import parse_change, render_status
    from imaginebuild.coordinator import open_coordinator

    change = None
    if args.team_command == "set":  # every value checked before the coordinator is touched
        change = parse_change(args.max_usd_per_day, args.max_usd_total, args.rate)
    coordinator = open_coordinator(os.environ)
    try:
        if change is not None:
            coordinator.set_caps(change.apply(coordinator.caps()))
        status = coordinator.status()
    finally:
        coordinator.close()
    if args.json:
        emit_json(status.to_json())
    else:
        result_line(render_status(status))
    return 0
