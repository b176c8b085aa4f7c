"""GitHub Actions: the step summary `run` appends, and the markdown of the packaged action
(`action.yml`): the plan and its cost, the command's outcome, for the step summary and
a pull-request comment.

`python -m imaginebuild.cli.github --plan PLAN.json [--result RESULT.json] --command TEXT`
prints that markdown; the action's script (`scripts/github-action.sh`) calls it.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from imaginebuild.engine.results import CommandResult
from imaginebuild.money import format_usd, usd_to_ticks

# A hidden marker, so a workflow can find and update its earlier comment.
COMMENT_MARKER = "<!-- imaginebuild -->"


def write_step_summary(result: CommandResult) -> None:
    """Append a markdown summary of a run to $GITHUB_STEP_SUMMARY when running in GitHub Actions."""
    target = os.environ.get("GITHUB_STEP_SUMMARY")
    if not target:
        return
    lines = ["### imaginebuild run", "", "| asset | state | cost |", "|---|---|---|"]
    lines += [f"| {a.name} | {a.state} | {format_usd(a.cost_ticks)} |" for a in result.assets]
    lines += ["", f"Total: {format_usd(result.cost_ticks)}", ""]
    try:
        with Path(target).open("a", encoding="utf-8") as f:
            f.write("\n".join(lines))
    except OSError:
        pass


def _usd(text: object) -> str:
    """A JSON money string (`"0.066"`) as people read it (`$0.066`)."""
    return format_usd(usd_to_ticks(str(text or "0")))


def _cell(text: object) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def plan_markdown(plan: Mapping[str, Any]) -> list[str]:
    """The plan as markdown: what will be called or restored, and the estimated cost."""
    assets = plan.get("assets") or []
    todo = [a for a in assets if a.get("state") != "up_to_date"]
    lines = [f"**Estimated cost: {_usd(plan.get('billable_usd', plan.get('estimate_usd')))}**"]
    lines.append("")
    if todo:
        lines += ["| asset | kind | plan | estimate |", "|---|---|---|---|"]
        lines += [
            f"| {_cell(a['name'])} | {a['kind']} | {_cell(a['reason'])} | "
            f"{_usd(a.get('estimate_usd'))} |"
            for a in todo
        ]
        lines.append("")
    lines.append(f"{len(assets) - len(todo)} of {len(assets)} assets up to date.")
    for budget in plan.get("budgets") or []:
        left = _usd(budget.get("remaining_usd"))
        over = " — **the estimate passes it**" if budget.get("exceeded") else ""
        lines.append(f"- {budget['limit']} budget {_usd(budget.get('cap_usd'))}: {left} left{over}")
    return lines


def result_markdown(command: str, result: Mapping[str, Any]) -> list[str]:
    """The command's outcome: its error, or per-state counts and what it spent."""
    if "error" in result:
        hint = f" ({result['hint']})" if result.get("hint") else ""
        return [f"**`imaginebuild {command}` failed** (exit {result.get('exit_code')}): "
                f"{_cell(result['error'])}{_cell(hint)}"]  # fmt: skip
    if command.split()[0] == "plan":
        return []
    counts = result.get("counts") or {}
    tally = ", ".join(f"{state.replace('_', ' ')} {n}" for state, n in counts.items()) or "nothing"
    lines = [f"`imaginebuild {command}`: {tally}; spent {_usd(result.get('cost_usd'))}."]
    failed = [a for a in result.get("assets") or [] if a.get("state") == "failed"]
    lines += [f"- failed **{_cell(a['name'])}**: {_cell(a.get('reason', ''))}" for a in failed]
    return lines


def action_markdown(command: str, plan: Mapping[str, Any], result: Mapping[str, Any]) -> str:
    """The step summary and pull-request comment of the packaged action."""
    lines = [COMMENT_MARKER, f"### imaginebuild: `{command}`", ""]
    lines += plan_markdown(plan) if "error" not in plan else []
    outcome = result_markdown(command, result)
    if outcome:
        lines += ["", *outcome]
    return "\n".join(lines) + "\n"


def _read_json(path: str | None) -> dict[str, Any]:
    if not path:
        return {}
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {"error": f"no JSON answer in {path}", "exit_code": None}
    return data if isinstance(data, dict) else {}


def main(argv: Sequence[str] | None = None) -> int:
    """Print the action's markdown for a plan and a command's `--json` answer."""
    parser = argparse.ArgumentParser(prog="python -m imaginebuild.cli.github")
    parser.add_argument("--plan", required=True, help="`imaginebuild --json plan` output")
    parser.add_argument("--result", help="the command's `--json` output")
    parser.add_argument("--command", required=True, help="the command, as the action ran it")
    args = parser.parse_args(argv)
    plan = _read_json(args.plan)
    result = _read_json(args.result) if args.result else plan
    sys.stdout.write(action_markdown(args.command, plan, result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
