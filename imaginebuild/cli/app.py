"""The command line: parse arguments, call the library, turn results and errors into output.

`main(argv) -> int` is callable from tests. Human output goes to stderr;
`--json` prints exactly one JSON object on stdout. Library errors become
`error: …` and `hint: …` lines and their exit code; anything else is a bug
and says so.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import signal
import sys
import time
import traceback
from collections.abc import Sequence
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import TYPE_CHECKING, Any

from imaginebuild.errors import ImaginebuildError, MediafileError, UsageError
from imaginebuild.untrusted import (
    check_state_dir,
    environment_failure,
    finite_decimal,
    printable,
)
from imaginebuild.version import __version__

if TYPE_CHECKING:
    from imaginebuild.engine.results import CommandResult
    from imaginebuild.project import Project

DEFAULT_MEDIAFILE = "mediafile.yaml"
BUG_EXIT = 70  # EX_SOFTWARE: an internal error, not the user's


class _Parser(argparse.ArgumentParser):
    """argparse that raises UsageError instead of exiting, so main() owns every exit."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(message, hint=f"{self.prog} --help")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every command."""
    parser = _Parser(prog="imaginebuild", description="A build system for generated media.")
    parser.add_argument("--version", action="version", version=f"imaginebuild {__version__}")
    parser.add_argument(
        "-f", "--file", dest="mediafile", help="the mediafile (default: mediafile.yaml)"
    )
    parser.add_argument("-C", "--directory", dest="directory", help="run as if started in DIR")
    parser.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    parser.add_argument(
        "--allow-read",
        action="append",
        default=[],
        metavar="DIR",
        help="let inputs come from this folder outside the project (repeatable)",
    )
    verbosity = parser.add_mutually_exclusive_group()
    verbosity.add_argument("-v", "--verbose", action="store_true", help="more detail")
    verbosity.add_argument("-q", "--quiet", action="store_true", help="only errors and the summary")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    run = sub.add_parser("run", help="build targets (default: all) and what they need")
    run.add_argument("targets", nargs="*", metavar="TARGET")
    run.add_argument("-j", "--jobs", type=int, default=8, help="steps at once (default 8)")
    run.add_argument(
        "--provider", choices=("xai", "local"), help="build every asset with this provider"
    )
    run.add_argument(
        "--force", nargs="*", metavar="NAME", help="a new take of these assets (all if none named)"
    )
    run.add_argument(
        "-k", "--keep-going", action="store_true", help="build what does not depend on a failure"
    )
    run.add_argument("--max-cost", metavar="USD", help="refuse calls that could pass this spend")
    run.add_argument("--dry-run", action="store_true", help="show the plan; call and write nothing")
    run.add_argument(
        "--offline", action="store_true", help="cache only: refuse any provider call (exit 3)"
    )
    run.add_argument(
        "--locked", action="store_true", help="fail (exit 3) if the lockfile would change"
    )
    run.add_argument(
        "--retry-expired", action="store_true", help="resubmit jobs whose results expired"
    )
    run.add_argument(
        "--no-push", action="store_true", help="do not upload new builds to the remote cache"
    )
    run.add_argument(
        "--no-coordinator",
        action="store_true",
        help="local limits only: no team submission slots or team caps",
    )

    plan = sub.add_parser("plan", help="what would run, why, and its estimated cost")
    plan.add_argument("targets", nargs="*", metavar="TARGET")
    plan.add_argument("--provider", choices=("xai", "local"))
    plan.add_argument("--force", nargs="*", metavar="NAME")
    plan.add_argument(
        "--critical-path",
        action="store_true",
        help="also the chain of calls that bounds the run's time (expected seconds)",
    )
    plan.add_argument(
        "--check", action="store_true", help="exit 3 if the estimate passes any budget"
    )
    status = sub.add_parser(
        "status", help="each asset: up to date, stale (why), never built, failed"
    )
    status.add_argument("targets", nargs="*", metavar="TARGET")
    sub.add_parser("why", help="what changed since an asset was last built").add_argument("name")
    sub.add_parser("show", help="an asset's provenance record").add_argument("name")
    dag = sub.add_parser("dag", help="the asset graph")
    dag.add_argument("targets", nargs="*", metavar="TARGET")
    dag.add_argument(
        "--format", choices=("text", "mermaid", "dot", "json", "graphml"), default="text"
    )
    sub.add_parser("validate", help="load and check the mediafile only")
    checkout = sub.add_parser("checkout", help="materialize the lockfile's outputs from the cache")
    checkout.add_argument("targets", nargs="*", metavar="TARGET")
    push = sub.add_parser("push", help="upload locked builds to the remote cache")
    push.add_argument("targets", nargs="*", metavar="TARGET")
    pull = sub.add_parser(
        "pull", help="fetch locked builds from the remote cache, materialize them"
    )
    pull.add_argument("targets", nargs="*", metavar="TARGET")
    gc = sub.add_parser("gc", help="drop cache entries no lockfile references")
    gc.add_argument("--dry-run", action="store_true", help="only say what would be dropped")
    gc.add_argument(
        "--remote", action="store_true", help="collect the remote cache (dry run unless --yes)"
    )
    gc.add_argument("--yes", action="store_true", help="with --remote: really delete")
    gc.add_argument(
        "--min-age",
        metavar="SECONDS",
        type=float,
        default=3600.0,
        help="keep blobs younger than this: a run elsewhere may not have locked them yet "
        "(default 3600)",
    )
    cost = sub.add_parser("cost", help="spend from the ledger, with totals")
    cost.add_argument("--by", default="asset", choices=("asset", "model", "day", "run", "provider"))
    cost.add_argument(
        "--since", metavar="DATE", help="only calls on or after this UTC day (YYYY-MM-DD)"
    )
    init = sub.add_parser("init", help="scaffold a mediafile and .gitignore entries")
    init.add_argument(
        "--ignore-outputs", action="store_true", help="also ignore the output folder in git"
    )
    sub.add_parser("schema", help="print the mediafile JSON Schema")
    team = sub.add_parser("team", help="the team's rate limits and spend caps (the coordinator)")
    team_sub = team.add_subparsers(dest="team_command", metavar="ACTION", parser_class=_Parser)
    team_sub.required = True
    team_set = team_sub.add_parser("set", help="set the team's caps and per-model rates")
    team_set.add_argument("--max-usd-per-day", metavar="USD", help="daily cap (UTC), or 'none'")
    team_set.add_argument("--max-usd-total", metavar="USD", help="total cap, or 'none'")
    team_set.add_argument(
        "--rate",
        action="append",
        default=[],
        metavar="MODEL=N[/SECONDS]",
        help="submissions per window for a model (repeatable); MODEL=default restores xAI's",
    )
    team_sub.add_parser("status", help="rates in use, today's spend, reservations, the caps")
    from imaginebuild.cli.takescmd import add_parsers as add_take_commands

    add_take_commands(sub)  # takes, pick, accept, adopt
    report = sub.add_parser("report", help="a static HTML gallery: media, prompts, lineage, cost")
    report.add_argument("-o", "--output", metavar="DIR", help="(default: .imaginebuild/report)")
    return parser


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
    args: argparse.Namespace | None = None
    try:
        args = build_parser().parse_args(argv)
        if args.command is None:
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
        return _dispatch(args)
    except ImaginebuildError as exc:
        return _report_error(exc, bool(args and args.json))
    except KeyboardInterrupt:
        sys.stderr.write("error: interrupted\n")
        return 130
    except SystemExit as exc:  # argparse --version / --help
        return int(exc.code or 0)
    except OSError as exc:  # disk full, permission, read-only: the machine's, not the input's
        return _report_error(environment_failure(exc), bool(args and args.json))
    except Exception:
        sys.stderr.write(traceback.format_exc())
        sys.stderr.write(
            "error: this is a bug in imaginebuild, not in your mediafile; "
            "please report it with the traceback above\n"
        )
        return BUG_EXIT


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


def _mediafile_path(args: argparse.Namespace) -> Path:
    path = Path(args.mediafile or DEFAULT_MEDIAFILE)
    if not path.is_file():
        raise UsageError(
            f"no mediafile at {path}",
            hint="create one with `imaginebuild init`, or name it with -f",
        )
    return path


def _reporter(args: argparse.Namespace) -> Any:
    from imaginebuild.cli.console import (
        VERBOSITY_NORMAL,
        VERBOSITY_QUIET,
        VERBOSITY_VERBOSE,
        PlainReporter,
    )

    level = (
        VERBOSITY_QUIET if args.quiet else VERBOSITY_VERBOSE if args.verbose else VERBOSITY_NORMAL
    )
    if args.command == "run" and level >= VERBOSITY_NORMAL and _live_terminal():
        from imaginebuild.cli.live import LiveReporter

        return LiveReporter(sys.stderr, verbosity=level)
    return PlainReporter(sys.stderr, level)


def _live_terminal() -> bool:
    """Whether stderr is an interactive terminal outside CI (then a run draws a live display)."""
    return sys.stderr.isatty() and not os.environ.get("CI") and os.environ.get("TERM") != "dumb"


def _project(args: argparse.Namespace, reporter: Any = None) -> Project:
    from imaginebuild.model import InputPolicy
    from imaginebuild.project import load

    policy = InputPolicy.from_env(os.environ, args.allow_read)
    return load(_mediafile_path(args), policy=policy, reporter=reporter or _reporter(args))


def _settled(args: argparse.Namespace, reporter: Any = None) -> CommandResult | None:
    """The answer from the settled snapshot when nothing changed since the last
    up-to-date verdict; None means the command decides in full.

    Option errors (`-j 0`, an unknown provider, `--force`) always go the full way,
    so they are reported exactly as there.
    """
    if getattr(args, "force", None) is not None or getattr(args, "dry_run", False):
        return None
    if getattr(args, "jobs", 1) < 1 or getattr(args, "provider", None) not in (
        None,
        "xai",
        "local",
    ):
        return None
    _money(getattr(args, "max_cost", None))
    from imaginebuild.store import settled

    found = settled.lookup(
        _mediafile_path(args),
        allow_read=args.allow_read or (),
        targets=args.targets,
        provider=args.provider if args.command == "run" else None,  # status builds nothing
        env=os.environ,
    )
    if found is None:
        return None
    return settled.result(args.command, found, reporter)


def _dispatch(args: argparse.Namespace) -> int:
    handlers = {
        "run": _cmd_run,
        "plan": _cmd_plan,
        "status": _cmd_status,
        "why": _cmd_why,
        "show": _cmd_show,
        "dag": _cmd_dag,
        "validate": _cmd_validate,
        "checkout": _cmd_checkout,
        "pull": _cmd_checkout,
        "push": _cmd_push,
        "gc": _cmd_gc,
        "cost": _cmd_cost,
        "init": _cmd_init,
        "schema": _cmd_schema,
        "report": _cmd_report,
        "team": _cmd_team,
    }
    if args.command not in handlers:
        from imaginebuild.cli.takescmd import handlers as take_handlers

        handlers.update(take_handlers(lambda a: _project(a)))
    return handlers[args.command](args)


def _emit_json(data: object) -> None:
    sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=False) + "\n")


def _money(text: str | None) -> Decimal | None:
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


def _options(args: argparse.Namespace) -> Any:
    from imaginebuild.engine.facts import RunOptions

    return RunOptions(
        jobs=getattr(args, "jobs", 8),
        provider=args.provider,
        force=None if args.force is None else tuple(args.force),
        keep_going=getattr(args, "keep_going", False),
        max_cost_usd=_money(getattr(args, "max_cost", None)),
        offline=getattr(args, "offline", False),
        locked=getattr(args, "locked", False),
        retry_expired=getattr(args, "retry_expired", False),
        no_push=getattr(args, "no_push", False),
        no_coordinator=getattr(args, "no_coordinator", False),
    )


def _cmd_run(args: argparse.Namespace) -> int:
    reporter = _reporter(args)
    started = time.monotonic()
    result = _settled(args, reporter)
    if result is not None:
        result = dataclasses.replace(result, seconds=time.monotonic() - started)
    else:
        project = _project(args, reporter)
        options = _options(args)
        if args.dry_run:
            return _print_plan(args, project, options)
        result = project.run(args.targets, options)
    from imaginebuild.cli.console import summary_line

    for message in result.messages:
        sys.stderr.write(f"{message}\n")
    for asset in result.assets:
        if asset.state == "failed" and asset.hint:
            sys.stderr.write(f"hint: {asset.name}: {asset.hint}\n")
    if not getattr(reporter, "shows_summary", False):
        sys.stderr.write(summary_line(result) + "\n")
    _github_summary(result)
    if args.json:
        _emit_json(result.to_json())
    return result.exit_code


def _print_plan(args: argparse.Namespace, project: Project, options: Any) -> int:
    """`plan` (and `run --dry-run`): each asset's plan, the estimate, every budget with what
    it has left; a warning per budget the estimate would pass (`--check`: then exit 3);
    with `--critical-path`, the chain of calls that bounds the run's time."""
    from imaginebuild.cli.console import grouped, table
    from imaginebuild.engine.budget import run_allowance
    from imaginebuild.money import format_usd, usd_json

    result = project.plan(args.targets, options)
    path = _critical_path(project, result) if getattr(args, "critical_path", False) else None
    allowance = run_allowance(project.mediafile, options.max_cost_usd, project.state_dir)
    billable = sum(
        a.estimate_ticks
        for a in result.assets
        if project.asset_for(a.name, options).provider != "local"  # rehearsals bill nothing
    )
    over = allowance.exceeded_by(billable)
    if over and getattr(args, "check", False):
        result = dataclasses.replace(result, exit_code=3)
    if args.json:
        budgets = [{**s.to_json(), "exceeded": s in over} for s in allowance.limits]
        data = {**result.to_json(), "billable_usd": usd_json(billable), "budgets": budgets}
        if path is not None:
            data["critical_path"] = {
                "assets": [{"name": n, "expected_seconds": s} for n, s in path],
                "expected_seconds": sum(s for _, s in path),
            }
        _emit_json(data)
    else:
        rows = grouped(
            [
                (
                    a.template,
                    (
                        a.name,
                        a.kind,
                        a.reason,
                        format_usd(a.estimate_ticks) if a.estimate_ticks else "",
                    ),
                )
                for a in result.assets
            ]
        )
        sys.stderr.write(table(rows, ("asset", "kind", "plan", "estimate")) + "\n")
        sys.stderr.write(f"estimated total: {format_usd(result.estimate_ticks)}\n")
        for state in allowance.limits:
            sys.stderr.write(f"{state.describe()}\n")
        if path is not None:
            chain = " → ".join(f"{n} ({s:g} s)" for n, s in path) or "no calls"
            total = f", about {sum(s for _, s in path):g} s one after another" if path else ""
            sys.stderr.write(f"critical path: {chain}{total}\n")
    for state in over:
        sys.stderr.write(
            f"warning: the estimated {format_usd(billable)} passes the {state.describe()}\n"
        )
    return result.exit_code


def _cmd_plan(args: argparse.Namespace) -> int:
    return _print_plan(args, _project(args), _options(args))


def _critical_path(project: Project, result: Any) -> tuple[tuple[str, float], ...]:
    """The plan's longest chain of calls, each weighted by its expected seconds.

    Assets the plan restores or finds up to date take no time; a plan's reason
    starts with what it does to the asset ("call", "restore from cache", "up to date").
    """
    from imaginebuild.engine.estimates import expected_seconds
    from imaginebuild.engine.graph import critical_path

    seconds = {
        a.name: expected_seconds(project.mediafile.assets[a.name])
        if a.reason.split(":")[0] == "call"
        else 0.0
        for a in result.assets
    }
    path, _ = critical_path(tuple(seconds), project.dag.parents, seconds)
    return tuple((name, seconds[name]) for name in path)


def _cmd_status(args: argparse.Namespace) -> int:
    from imaginebuild.cli.console import grouped, table

    result = _settled(args) or _project(args).status(args.targets)
    if args.json:
        _emit_json(result.to_json())
        return 0
    rows = grouped(
        [(a.template, (a.name, a.kind, a.state.replace("_", " "), a.reason)) for a in result.assets]
    )
    sys.stderr.write(table(rows, ("asset", "kind", "state", "why")) + "\n")
    return 0


def _cmd_why(args: argparse.Namespace) -> int:
    result = _project(args).why(args.name)
    if args.json:
        _emit_json(result.to_json())
        return 0
    if not result.reasons:
        sys.stderr.write(f"{result.name} is up to date\n")
    for reason in result.reasons:
        sys.stderr.write(printable(f"{result.name}: {reason.text}") + "\n")
    return 0


def _cmd_show(args: argparse.Namespace) -> int:
    record = _project(args).show(args.name)
    if args.json:
        _emit_json(record)
        return 0
    _show_text(record)
    return 0


def _show_text(record: dict[str, Any]) -> None:
    """`show` for people: every value from the lockfile is printed inert."""
    lines = []
    for key in ("name", "kind", "key", "provider", "model", "prompt", "params", "variant"):
        lines.append(f"{key}: {record.get(key)}\n")
    inputs = record.get("inputs")
    for item in inputs if isinstance(inputs, list) else []:
        if isinstance(item, dict):
            lines.append(f"input: {item.get('ref')}  sha256 {item.get('sha256')}\n")
    for out in record["outputs"]:
        lines.append(f"output: {out['path']}  sha256 {out['sha256']}  {out['bytes']} bytes\n")
    rec = record["record"]
    from imaginebuild.money import format_usd, ticks_of_text

    estimated = " (estimated)" if rec.get("cost_estimated") else ""
    lines.append(f"built_at: {rec.get('built_at')}\n")
    lines.append(f"cost: {format_usd(ticks_of_text(rec.get('cost_usd')))}{estimated}\n")
    lines.append(f"estimate: {format_usd(ticks_of_text(rec.get('estimate_usd')))}\n")
    for key in ("request_ids", "imaginebuild"):
        lines.append(f"{key}: {rec.get(key)}\n")
    for key in ("picked", "retouched", "accepted_despite_check"):  # a take chosen by hand
        if rec.get(key):
            lines.append(f"{key}: {rec[key]}\n")
    lines.append(f"earlier takes in the cache: {len(record['earlier_takes'])}\n")
    sys.stderr.write("".join(printable(line.rstrip("\n")) + "\n" for line in lines))


def _cmd_dag(args: argparse.Namespace) -> int:
    from imaginebuild.cli.dagformat import render_dag

    project = _project(args)
    selected = project.dag.select(args.targets)
    if args.json:
        assets = project.mediafile.assets
        _emit_json(
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
    text = render_dag(
        project.dag, project.mediafile.assets, project.dag.select(args.targets), args.format
    )
    sys.stdout.write(text + "\n")
    return 0


def _cmd_validate(args: argparse.Namespace) -> int:
    from imaginebuild.mediafile.load import (
        load_mediafile,  # the project (cache, remote…) is not needed
    )
    from imaginebuild.model import InputPolicy

    policy = InputPolicy.from_env(os.environ, args.allow_read)
    count = len(load_mediafile(_mediafile_path(args), policy).assets)
    if args.json:
        _emit_json({"valid": True, "assets": count})
    else:
        sys.stderr.write(f"{_mediafile_path(args)}: valid ({count} assets)\n")
    return 0


def _cmd_checkout(args: argparse.Namespace) -> int:
    result = _project(args).checkout(args.targets, pull=args.command == "pull")
    if args.json:
        _emit_json(result.to_json())
    for asset in result.assets:
        if asset.state == "failed" and asset.hint:
            sys.stderr.write(f"hint: {asset.name}: {asset.hint}\n")
    counts = result.counts
    sys.stderr.write(
        f"restored {counts.get('restored', 0)}, up to date {counts.get('up_to_date', 0)}, "
        f"failed {counts.get('failed', 0)}\n"
    )
    return result.exit_code


def _cmd_push(args: argparse.Namespace) -> int:
    result = _project(args).push(args.targets)
    if args.json:
        _emit_json(result.to_json())
    counts = result.counts
    sys.stderr.write(
        f"pushed {counts.get('pushed', 0)}, already there {counts.get('up_to_date', 0)}, "
        f"skipped {counts.get('skipped', 0)}, failed {counts.get('failed', 0)}\n"
    )
    return result.exit_code


def _cmd_gc(args: argparse.Namespace) -> int:
    project = _project(args)
    if args.remote:
        result = project.gc_remote(dry_run=args.dry_run or not args.yes, min_age=args.min_age)
    else:
        result = project.gc(dry_run=args.dry_run, min_age=args.min_age)
    if args.json:
        _emit_json(result.__dict__)
        return 0
    verb = "would drop" if result.dry_run else "dropped"
    where = " from the remote cache" if args.remote else ""
    sys.stderr.write(
        f"{verb} {result.actions} action entries and {result.blobs} blobs "
        f"({result.bytes} bytes){where}\n"
    )
    if args.remote and result.dry_run and not args.dry_run:
        sys.stderr.write("hint: run `imaginebuild gc --remote --yes` to delete them\n")
    return 0


def _cmd_cost(args: argparse.Namespace) -> int:
    from datetime import date

    from imaginebuild.cli.console import table
    from imaginebuild.money import format_usd
    from imaginebuild.store.ledger import Ledger, summarize

    try:
        since = date.fromisoformat(args.since) if args.since else None
    except ValueError:
        raise UsageError(f"--since {args.since!r} is not a date (YYYY-MM-DD)") from None
    root = _mediafile_path(args).resolve().parent
    check_state_dir(root / ".imaginebuild")
    ledger = Ledger(root / ".imaginebuild" / "ledger.jsonl")
    summary = summarize(ledger.entries(), args.by, since)
    if args.json:
        _emit_json({**summary.to_json(), "skipped_lines": ledger.skipped})
        return 0
    rows = [(r.group, str(r.calls), format_usd(r.ticks)) for r in summary.rows]
    sys.stderr.write(table(rows, (args.by, "calls", "cost")) + "\n")
    maybe = summary.total.maybe_billed_ticks
    sys.stderr.write(f"total: {format_usd(summary.total.ticks)}\n")
    if summary.maybe_billed:
        sys.stderr.write(
            f"  billed: {format_usd(summary.total.ticks - maybe)}; may have been billed: "
            f"{format_usd(maybe)} in {len(summary.maybe_billed)} call(s), counted at their "
            "estimate against every budget:\n"
        )
        for e in summary.maybe_billed:
            sys.stderr.write(
                f"  {e.time}  {e.asset}  {e.endpoint}  {e.request_id or '(no request id)'}"
                f"  {format_usd(e.ticks)}\n"
            )
    if ledger.skipped:
        sys.stderr.write(f"warning: {ledger.skipped} unreadable ledger line(s) skipped\n")
    return 0


def _cmd_init(args: argparse.Namespace) -> int:
    from imaginebuild.mediafile.scaffold import scaffold

    written = scaffold(Path.cwd(), Path(args.mediafile or DEFAULT_MEDIAFILE), args.ignore_outputs)
    if args.json:
        _emit_json({"written": written})
    for line in written:
        sys.stderr.write(line + "\n")
    return 0


def _cmd_schema(args: argparse.Namespace) -> int:
    from imaginebuild.mediafile.schema import schema_text

    sys.stdout.write(schema_text())
    return 0


def _cmd_report(args: argparse.Namespace) -> int:
    from imaginebuild.cli.report import write_report

    project = _project(args)
    index = write_report(project, Path(args.output or project.state_dir / "report"))
    if args.json:
        _emit_json({"report": str(index)})
    else:
        sys.stderr.write(f"report: {index.resolve().as_uri()}\n")
    return 0


def _cmd_team(args: argparse.Namespace) -> int:
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
        _emit_json(status.to_json())
    else:
        sys.stderr.write(render_status(status) + "\n")
    return 0


def _github_summary(result: Any) -> None:
    """Append a markdown summary to $GITHUB_STEP_SUMMARY when running in GitHub Actions."""
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
