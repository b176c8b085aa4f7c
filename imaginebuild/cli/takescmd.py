"""The take commands: `takes NAME [--export DIR]`, `pick NAME TAKE`, `accept NAME`, `adopt NAME`.

Their result goes to stdout (the list of takes, or what became current), or one
JSON object with `--json`; the work is the library's (`Project.takes`, `pick`,
`accept`, `adopt`), none of it calls a provider. Their grammar is in `invocation`.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from imaginebuild.cli.context import emit_json, open_project, result_line

if TYPE_CHECKING:
    from imaginebuild.engine.results import CommandResult
    from imaginebuild.engine.takes import TakeRow


def cmd_takes(args: argparse.Namespace) -> int:
    """`takes NAME [--export DIR]`: every take, oldest first, and viewable copies."""
    project = open_project(args)
    rows = project.takes(args.name)
    written: tuple[Path, ...] = ()
    if args.export:
        from imaginebuild.engine.takes import export

        written = export(rows, project.store, args.name, Path(args.export))
    if args.json:
        emit_json(
            {
                "asset": args.name,
                "takes": [r.to_json() for r in rows],
                "exported": [str(p) for p in written],
            }
        )
        return 0
    result_line(render_takes(args.name, rows))
    for path in written:
        result_line(f"wrote {path}")
    return 0


def cmd_pick(args: argparse.Namespace) -> int:
    """`pick NAME TAKE`: the take becomes current without a call; the lockfile records it."""
    return _changed(args, open_project(args).pick(args.name, args.take))


def cmd_accept(args: argparse.Namespace) -> int:
    """`accept NAME`: the rejected take becomes current despite the output check."""
    return _changed(args, open_project(args).accept(args.name))


def cmd_adopt(args: argparse.Namespace) -> int:
    """`adopt NAME`: the outputs as retouched by hand become the current take."""
    return _changed(args, open_project(args).adopt(args.name))


def render_takes(name: str, rows: Sequence[TakeRow]) -> str:
    """The takes as a table, oldest first, the current one marked."""
    from imaginebuild.cli.console import table
    from imaginebuild.money import format_usd

    if not rows:
        return f"{name} has no takes yet"
    lines = []
    for row in rows:
        take, cost = row.take, row.take.record.cost_ticks
        marks = [m for m, on in (("current", row.current), ("picked", row.picked)) if on]
        if not row.available:
            marks.append("not in the cache")
        what = take.origin.value.replace("_", " ")
        if take.reason:
            what += f": {take.reason}"
        lines.append(
            (
                str(row.number),
                take.id,
                take.made_at or "?",
                "" if cost is None else format_usd(cost),
                ", ".join(take.record.request_ids),
                what,
                ", ".join(marks),
            )
        )
    return table(lines, ("take", "id", "made", "cost", "request ids", "origin", ""))


def _changed(args: argparse.Namespace, result: CommandResult) -> int:
    if args.json:
        emit_json(result.to_json())
        return result.exit_code
    for asset in result.assets:
        result_line(f"{asset.name}: {asset.reason}")
    return result.exit_code
