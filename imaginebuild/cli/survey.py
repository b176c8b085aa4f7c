"""The commands that read and report, changing nothing: plan, status, why, show, dag,
validate, cost and schema."""

from __future__ import annotations

import argparse
import dataclasses
import os
import textwrap
from typing import TYPE_CHECKING

from imaginebuild.cli.context import (
    emit_json,
    mediafile_path,
    open_project,
    result_line,
    run_options,
    say,
    settled_answer,
    terminal_width,
)
from imaginebuild.errors import UsageError
from imaginebuild.spelled import ProviderName

if TYPE_CHECKING:
    from imaginebuild.engine.budget import LimitState
    from imaginebuild.engine.facts import RunOptions
    from imaginebuild.engine.rebuild import Reason
    from imaginebuild.engine.results import AssetResult, CommandResult
    from imaginebuild.project import Project
    from imaginebuild.store.ledger import CostSummary


CALLING_PLANS = ("new", "call", "resume (paid)")  # the plans that wait for a provider


def cmd_plan(args: argparse.Namespace) -> int:
    """`plan`: what would run, why, and its estimated cost."""
    return print_plan(args, open_project(args), run_options(args))


def print_plan(args: argparse.Namespace, project: Project, options: RunOptions) -> int:
    """`plan` (and `run --dry-run`): each asset's plan, the estimate, every budget with what
    it has left; a warning per budget the estimate would pass (`--check`: then exit 3);
    with `--critical-path`, the chain of calls that bounds the run's time."""
    from imaginebuild.engine.budget import run_allowance
    from imaginebuild.money import format_usd

    result = project.plan(args.targets, options)
    path = _critical_path(project, result) if getattr(args, "critical_path", False) else None
    allowance = run_allowance(project.mediafile, options.max_cost, project.state_dir)
    billable = sum(
        a.estimate_ticks
        for a in result.assets
        # rehearsals bill nothing
        if project.asset_for(a.name, options).provider != ProviderName.LOCAL
    )
    over = allowance.exceeded_by(billable)
    if over and getattr(args, "check", False):
        result = dataclasses.replace(result, exit_code=3)
    if args.json:
        _plan_json(result, billable, allowance.limits, over, path)
    else:
        _plan_text(result, allowance.limits, path, everything=getattr(args, "all", False))
    for state in over:
        say(f"warning: the estimated {format_usd(billable)} passes the {state.describe()}")
    return result.exit_code


def _plan_json(
    result: CommandResult,
    billable: int,
    limits: tuple[LimitState, ...],
    over: tuple[LimitState, ...],
    path: tuple[tuple[str, float], ...] | None,
) -> None:
    from imaginebuild.money import usd_json

    budgets = [{**s.to_json(), "exceeded": s in over} for s in limits]
    data = {**result.to_json(), "billable_usd": usd_json(billable), "budgets": budgets}
    if path is not None:
        data["critical_path"] = {
            "assets": [{"name": n, "expected_seconds": s} for n, s in path],
            "expected_seconds": sum(s for _, s in path),
        }
    emit_json(data)


def _plan_text(
    result: CommandResult,
    limits: tuple[LimitState, ...],
    path: tuple[tuple[str, float], ...] | None,
    *,
    everything: bool,
) -> None:
    """The plan as a table that fits the terminal; up-to-date rows only with `--all`."""
    from imaginebuild.cli.console import fit_table, grouped
    from imaginebuild.events import AssetState  # not on the validate path
    from imaginebuild.money import format_usd

    shown = [a for a in result.assets if everything or a.state != AssetState.UP_TO_DATE]
    rows = grouped(
        [
            (
                a.template,
                (
                    a.name,
                    a.kind,
                    a.reason,
                    (format_usd(a.estimate_ticks) + ("*" if a.unconfirmed_prices else ""))
                    if a.estimate_ticks
                    else "",
                ),
            )
            for a in shown
        ]
    )
    if rows:
        result_line(fit_table(rows, ("asset", "kind", "plan", "estimate"), 2, terminal_width()))
    hidden = len(result.assets) - len(shown)
    if hidden:
        result_line(f"{hidden} up to date (plan --all lists them)")
    result_line(f"estimated total: {format_usd(result.estimate_ticks)}")
    from imaginebuild.cli.pricesview import unconfirmed_notes

    width = terminal_width()
    for note in unconfirmed_notes(result):
        result_line(textwrap.fill(note, width, subsequent_indent="  ") if width else note)
    for state in limits:
        result_line(state.describe())
    if path is not None:
        chain = " → ".join(f"{n} ({s:g} s)" for n, s in path) or "no calls"
        total = f", about {sum(s for _, s in path):g} s one after another" if path else ""
        result_line(f"critical path: {chain}{total}")


def _critical_path(project: Project, result: CommandResult) -> tuple[tuple[str, float], ...]:
    """The plan's longest chain of calls, each weighted by its expected seconds.

    Assets the plan restores or finds up to date take no time; a plan's reason
    starts with what it does to the asset ("new", "call", "resume (paid)", "restore
    from cache", "up to date").
    """
    from imaginebuild.engine.estimates import expected_seconds
    from imaginebuild.engine.graph import critical_path

    seconds = {
        a.name: expected_seconds(project.mediafile.assets[a.name])
        if a.reason.split(":")[0] in CALLING_PLANS
        else 0.0
        for a in result.assets
    }
    path, _ = critical_path(tuple(seconds), project.dag.parents, seconds)
    return tuple((name, seconds[name]) for name in path)


def cmd_status(args: argparse.Namespace) -> int:
    """`status`: each asset up to date, stale (why), never built or failed; with
    `--exit-code`, exit 1 unless every asset is up to date."""
    from imaginebuild.cli.console import grouped, table
    from imaginebuild.events import AssetState  # not on the validate path

    result = settled_answer(args) or open_project(args).status(args.targets)
    if args.exit_code and any(a.state != AssetState.UP_TO_DATE for a in result.assets):
        result = dataclasses.replace(result, exit_code=1)
    if args.json:
        emit_json(result.to_json())
        return result.exit_code
    rows = grouped(
        [(a.template, (a.name, a.kind, a.state.replace("_", " "), a.reason)) for a in result.assets]
    )
    result_line(table(rows, ("asset", "kind", "state", "why")))
    return result.exit_code


def cmd_why(args: argparse.Namespace) -> int:
    """`why NAME`: what changed since the asset was last built, following "will be built
    first" down the chain of inputs to the fields that changed."""
    from imaginebuild.events import AssetState  # not on the validate path

    explained = open_project(args).explain(args.name)
    result = explained.get(args.name)
    causes = [c for c in explained.causes(args.name) if _own_reasons(c)]
    if args.json:
        emit_json({**result.to_json(), "causes": [c.to_json() for c in causes]})
        return 0
    if result.state == AssetState.FAILED:
        result_line(f"{result.name}: {result.reason}")
        if result.hint:
            result_line(f"  hint: {result.hint}")
    if not result.reasons:
        result_line(f"{result.name} is up to date")
    for reason in result.reasons:
        result_line(f"{result.name}: {reason.text}")
    for cause in causes:
        for reason in _own_reasons(cause):
            result_line(f"  because {cause.name}: {reason.text}")
    return 0


def _own_reasons(asset: AssetResult) -> tuple[Reason, ...]:
    """An asset's reasons other than waiting for an input to be built."""
    from imaginebuild.engine.rebuild import ReasonCode

    return tuple(r for r in asset.reasons if r.code != ReasonCode.UPSTREAM)


def cmd_show(args: argparse.Namespace) -> int:
    """`show NAME`: the provenance record of the asset's last build."""
    record = open_project(args).show(args.name)
    if args.json:
        emit_json(record)
        return 0
    from imaginebuild.money import format_usd
    from imaginebuild.provenance import Provenance

    for key in ("name", "kind", "key", "provider", "model", "prompt", "variant"):
        result_line(f"{key}: {record.get(key)}")
    params = record.get("params")
    pairs = sorted(params.items()) if isinstance(params, dict) else []
    result_line("params: " + (", ".join(f"{k}={v}" for k, v in pairs) or "none"))
    inputs = record.get("inputs")  # from the lockfile: untrusted, printed inert
    for item in inputs if isinstance(inputs, list) else []:
        if isinstance(item, dict):
            result_line(f"input: {item.get('ref')}  sha256 {item.get('sha256')}")
    for out in record["outputs"]:
        result_line(f"output: {out['path']}  sha256 {out['sha256']}  {out['bytes']} bytes")
    rec = Provenance.from_json(record["record"])
    estimated = " (estimated)" if rec.cost_estimated else ""
    result_line(f"built_at: {rec.built_at}")
    result_line(f"cost: {format_usd(rec.cost_ticks or 0)}{estimated}")
    result_line(f"estimate: {format_usd(rec.estimate_ticks or 0)}")
    result_line("request_ids: " + (", ".join(rec.request_ids) or "none"))
    result_line(f"imaginebuild: {rec.imaginebuild}")
    for key in ("picked", "retouched", "accepted_despite_check"):  # a take chosen by hand
        if rec.extra.get(key):
            result_line(f"{key}: {rec.extra[key]}")
    result_line(f"earlier takes in the cache: {len(record['earlier_takes'])}")
    return 0


def cmd_dag(args: argparse.Namespace) -> int:
    """`dag`: the asset graph as text, mermaid, dot, json or graphml."""
    from imaginebuild.cli.dagformat import render_dag

    project = open_project(args)
    selected = project.dag.select(args.targets)
    if args.json:
        assets = project.mediafile.assets
        emit_json(
            {
                "assets": [
                    {
                        "name": n,
                        "kind": assets[n].kind.value,
                        "inputs": [r.raw for r in assets[n].inputs],
                        "template": assets[n].template,
                    }
                    for n in selected
                ],
                "edges": [[p, n] for n in selected for p in project.dag.parents[n]],
            }
        )
        return 0
    text = render_dag(project.dag, project.mediafile.assets, selected, args.format)
    result_line(text)
    return 0


def cmd_validate(args: argparse.Namespace) -> int:
    """`validate`: load and check the mediafile only (no project, cache or remote)."""
    from imaginebuild.mediafile.load import load_mediafile
    from imaginebuild.model import InputPolicy

    policy = InputPolicy.from_env(os.environ, args.allow_read)
    count = len(load_mediafile(mediafile_path(args), policy).assets)
    if args.json:
        emit_json({"valid": True, "assets": count})
    else:
        result_line(f"{mediafile_path(args)}: valid ({count} assets)")
    return 0


def cmd_cost(args: argparse.Namespace) -> int:
    """`cost`: spend from the ledger, grouped, with totals and the maybe-billed calls."""
    from datetime import date

    from imaginebuild.layout import StateLayout
    from imaginebuild.store.ledger import Ledger, summarize
    from imaginebuild.untrusted import check_state_dir

    try:
        since = date.fromisoformat(args.since) if args.since else None
    except ValueError:
        raise UsageError(f"--since {args.since!r} is not a date (YYYY-MM-DD)") from None
    layout = StateLayout(mediafile_path(args).resolve().parent)
    check_state_dir(layout.folder)
    ledger = Ledger(layout.ledger)
    summary = summarize(ledger.all_entries(), args.by, since)
    if args.json:
        emit_json({**summary.to_json(), "skipped_lines": ledger.skipped})
    else:
        _cost_text(args.by, summary)
    if ledger.skipped:
        say(f"warning: {ledger.skipped} unreadable ledger line(s) skipped")
    return 0


def _cost_text(by: str, summary: CostSummary) -> None:
    from imaginebuild.cli.console import table
    from imaginebuild.money import format_usd

    rows = [(r.group, str(r.calls), format_usd(r.ticks)) for r in summary.rows]
    result_line(table(rows, (by, "calls", "cost")))
    maybe = summary.total.maybe_billed_ticks
    result_line(f"total: {format_usd(summary.total.ticks)}")
    if summary.maybe_billed:
        result_line(
            f"  billed: {format_usd(summary.total.ticks - maybe)}; may have been billed: "
            f"{format_usd(maybe)} in {len(summary.maybe_billed)} call(s), counted at their "
            "estimate against every budget:"
        )
        for e in summary.maybe_billed:
            result_line(
                f"  {e.time}  {e.asset}  {e.endpoint}  {e.request_id or '(no request id)'}"
                f"  {format_usd(e.ticks)}"
            )


def cmd_schema(args: argparse.Namespace) -> int:
    """`schema`: print the mediafile JSON Schema."""
    import sys

    from imaginebuild.mediafile.schema import schema_text

    sys.stdout.write(schema_text())
    return 0
