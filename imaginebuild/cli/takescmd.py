"""The take commands: `takes NAME [--export DIR]`, `pick NAME TAKE`, `accept NAME`, `adopt NAME`.

Their result goes to stdout (the list of takes, or what became current), or one
JSON object with `--json`; the work is the library's (`Project.takes`, `pick`,
`accept`, `adopt`), none of it calls a provider.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from imaginebuild.untrusted import printable

if TYPE_CHECKING:
    from imaginebuild.engine.takes import TakeRow
    from imaginebuild.project import Project

ProjectOf = Callable[[argparse.Namespace], "Project"]


def add_parsers(sub: Any) -> None:
    """Add the take commands to the CLI's subparsers."""
    takes = sub.add_parser("takes", help="an asset's takes: when, cost, request ids, current")
    takes.add_argument("name")
    takes.add_argument("--export", metavar="DIR", help="also write viewable copies into DIR")
    pick = sub.add_parser("pick", help="make one of an asset's takes current (no call)")
    pick.add_argument("name")
    pick.add_argument("take", help="the take's number in `takes NAME`, or its id")
    sub.add_parser(
        "accept", help="use an asset's rejected take despite the output check (no call)"
    ).add_argument("name")
    sub.add_parser(
        "adopt", help="make an asset's outputs, as retouched by hand, its current take"
    ).add_argument("name")


def handlers(project_of: ProjectOf) -> dict[str, Callable[[argparse.Namespace], int]]:
    """The handler of each take command, given how the CLI opens the project."""
    return {
        "takes": lambda args: _cmd_takes(args, project_of(args)),
        "pick": lambda args: _changed(args, project_of(args).pick(args.name, args.take)),
        "accept": lambda args: _changed(args, project_of(args).accept(args.name)),
        "adopt": lambda args: _changed(args, project_of(args).adopt(args.name)),
    }


def _cmd_takes(args: argparse.Namespace, project: Project) -> int:
    rows = project.takes(args.name)
    written: tuple[Path, ...] = ()
    if args.export:
        from imaginebuild.engine.takes import export

        written = export(rows, project.store, args.name, Path(args.export))
    if args.json:
        data = {
            "asset": args.name,
            "takes": [r.to_json() for r in rows],
            "exported": [str(p) for p in written],
        }
        sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=False) + "\n")
        return 0
    sys.stdout.write(render_takes(args.name, rows) + "\n")
    for path in written:
        sys.stdout.write(printable(f"wrote {path}") + "\n")
    return 0


def render_takes(name: str, rows: Sequence[TakeRow]) -> str:
    """The takes as a table, oldest first, the current one marked."""
    from imaginebuild.cli.console import table
    from imaginebuild.engine.takes import request_ids
    from imaginebuild.money import format_usd, ticks_of_text

    if not rows:
        return f"{name} has no takes yet"
    lines = []
    for row in rows:
        take, cost = row.take, row.take.record.get("cost_usd")
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
                "" if cost is None else format_usd(ticks_of_text(cost)),
                ", ".join(str(r) for r in request_ids(take.record)),
                what,
                ", ".join(marks),
            )
        )
    return table(lines, ("take", "id", "made", "cost", "request ids", "origin", ""))


def _changed(args: argparse.Namespace, result: Any) -> int:
    if args.json:
        sys.stdout.write(json.dumps(result.to_json(), indent=2, ensure_ascii=False) + "\n")
        return result.exit_code  # type: ignore[no-any-return]
    for asset in result.assets:
        sys.stdout.write(printable(f"{asset.name}: {asset.reason}") + "\n")
    return result.exit_code  # type: ignore[no-any-return]
