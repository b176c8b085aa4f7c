"""GitHub Actions' step summary: a markdown table appended when `$GITHUB_STEP_SUMMARY` is set."""

from __future__ import annotations

import os
from pathlib import Path

from imaginebuild.engine.results import CommandResult


def write_step_summary(result: CommandResult) -> None:
    """Append a markdown summary of a run to $GITHUB_STEP_SUMMARY when running in GitHub Actions."""
    target = os.environ.get("GITHUB_STEP_SUMMARY")
    if not target:
        return
    from imaginebuild.money import format_usd

    lines = ["### imaginebuild run", "", "| asset | state | cost |", "|---|---|---|"]
    lines += [f"| {a.name} | {a.state} | {format_usd(a.cost_ticks)} |" for a in result.assets]
    lines += ["", f"Total: {format_usd(result.cost_ticks)}", ""]
    try:
        with Path(target).open("a", encoding="utf-8") as f:
            f.write("\n".join(lines))
    except OSError:
        pass
