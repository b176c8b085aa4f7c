"""The command line's grammar: every command, its options, and the global options."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any

from imaginebuild.errors import UsageError
from imaginebuild.spelled import PROVIDERS
from imaginebuild.version import __version__

DEFAULT_MEDIAFILE = "mediafile.yaml"
SHELLS = ("bash", "zsh", "fish")
TARGET_HELP = "an asset name or a quoted glob such as 'spot-*' (default: every asset)"


class Parser(argparse.ArgumentParser):
    """argparse that raises UsageError instead of exiting, so main() owns every exit."""

    def error(self, message: str) -> None:  # type: ignore[override]
        """Raise the usage error argparse would have printed."""
        raise UsageError(message, hint=f"{self.prog} --help")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every command."""
    parser = Parser(prog="imaginebuild", description="A build system for generated media.")
    parser.add_argument("--version", action="version", version=f"imaginebuild {__version__}")
    _add_global_options(parser)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    _add_run(sub)
    _add_survey_commands(sub)
    _add_cache_commands(sub)
    _add_team(sub)
    _add_take_commands(sub)
    completion = sub.add_parser("completion", help="shell completion: commands, options, assets")
    completion.add_argument(
        "shell", nargs="?", choices=SHELLS, help="print the script for this shell"
    )
    completion.add_argument(
        "--assets", action="store_true", help="print the mediafile's asset names, one a line"
    )
    _give_global_options(parser)
    return parser


# The global options, by dest. Each is accepted before the command (`imaginebuild --json
# status`) and after it (`imaginebuild status --json`); after it, it lands in `late_<dest>`
# (absent unless given) and `parse` merges the two.
GLOBAL_DESTS = ("mediafile", "directory", "json", "allow_read", "verbose", "quiet")
LATE = "late_"


def _add_global_options(
    parser: argparse.ArgumentParser | argparse._ArgumentGroup, *, late: bool = False
) -> None:
    prefix = LATE if late else ""
    # After the command a global option is absent unless given, so it never hides the
    # value given before the command.
    default: dict[str, Any] = {"default": argparse.SUPPRESS} if late else {}
    parser.add_argument(
        "-f",
        "--file",
        dest=prefix + "mediafile",
        metavar="MEDIAFILE",
        help="the mediafile (default: mediafile.yaml)",
        **default,
    )
    parser.add_argument(
        "-C",
        "--directory",
        dest=prefix + "directory",
        metavar="DIR",
        help="run as if started in DIR",
        **default,
    )
    parser.add_argument(
        "--json",
        dest=prefix + "json",
        action="store_true",
        help="print one JSON object on stdout",
        **default,
    )
    parser.add_argument(
        "--allow-read",
        dest=prefix + "allow_read",
        action="append",
        metavar="DIR",
        help="let inputs come from this folder outside the project (repeatable)",
        **({"default": []} if not late else default),
    )
    verbosity = parser.add_mutually_exclusive_group()
    verbosity.add_argument(
        "-v",
        "--verbose",
        dest=prefix + "verbose",
        action="store_true",
        help="more detail",
        **default,
    )
    verbosity.add_argument(
        "-q",
        "--quiet",
        dest=prefix + "quiet",
        action="store_true",
        help="only errors and the summary",
        **default,
    )


def _give_global_options(parser: argparse.ArgumentParser) -> None:
    """Let every command (every leaf of the subcommand tree) take the global options too."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                _give_global_options(sub)
            return
    if parser.prog != "imaginebuild":
        group = parser.add_argument_group("global options (also accepted before the command)")
        _add_global_options(group, late=True)


def parse(argv: Sequence[str] | None) -> argparse.Namespace:
    """Parse a command line; global options may come before or after the command."""
    args = build_parser().parse_args(argv)
    late = {dest: vars(args).pop(LATE + dest) for dest in GLOBAL_DESTS if LATE + dest in vars(args)}
    for dest in ("mediafile", "directory"):
        if late.get(dest) is not None:
            setattr(args, dest, late[dest])
    for dest in ("json", "verbose", "quiet"):
        setattr(args, dest, bool(getattr(args, dest) or late.get(dest)))
    args.allow_read = [*args.allow_read, *late.get("allow_read", [])]
    if args.verbose and args.quiet:
        raise UsageError("-v/--verbose and -q/--quiet exclude each other", hint="give one of them")
    return args


def wants_json(argv: Sequence[str]) -> bool:
    """Whether a command line asks for `--json`, read without parsing it (for the JSON
    answer to a command line that does not parse)."""
    for arg in argv:
        if arg == "--":
            return False
        if arg == "--json":
            return True
    return False


def _add_run(sub: argparse._SubParsersAction[Parser]) -> None:
    run = sub.add_parser("run", help="build targets (default: all) and what they need")
    run.add_argument("targets", nargs="*", metavar="TARGET", help=TARGET_HELP)
    run.add_argument("-j", "--jobs", type=int, default=8, help="steps at once (default 8)")
    run.add_argument("--provider", choices=PROVIDERS, help="build every asset with this provider")
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


def _add_survey_commands(sub: argparse._SubParsersAction[Parser]) -> None:
    plan = sub.add_parser("plan", help="what would run, why, and its estimated cost")
    plan.add_argument("targets", nargs="*", metavar="TARGET", help=TARGET_HELP)
    plan.add_argument("--provider", choices=PROVIDERS)
    plan.add_argument("--force", nargs="*", metavar="NAME")
    plan.add_argument(
        "--critical-path",
        action="store_true",
        help="also the chain of calls that bounds the run's time (expected seconds)",
    )
    plan.add_argument(
        "--check", action="store_true", help="exit 3 if the estimate passes any budget"
    )
    plan.add_argument("--all", action="store_true", help="also list the assets that are up to date")
    status = sub.add_parser(
        "status", help="each asset: up to date, stale (why), never built, failed"
    )
    status.add_argument("targets", nargs="*", metavar="TARGET", help=TARGET_HELP)
    status.add_argument(
        "--exit-code",
        action="store_true",
        help="exit 1 when anything is stale, never built or failed",
    )
    sub.add_parser("why", help="what changed since an asset was last built").add_argument(
        "name", metavar="NAME", help="the asset"
    )
    sub.add_parser("show", help="an asset's provenance record").add_argument(
        "name", metavar="NAME", help="the asset"
    )
    dag = sub.add_parser("dag", help="the asset graph")
    dag.add_argument("targets", nargs="*", metavar="TARGET", help=TARGET_HELP)
    dag.add_argument(
        "--format", choices=("text", "mermaid", "dot", "json", "graphml"), default="text"
    )
    sub.add_parser("validate", help="load and check the mediafile only")
    cost = sub.add_parser("cost", help="spend from the ledger, with totals")
    cost.add_argument("--by", default="asset", choices=("asset", "model", "day", "run", "provider"))
    cost.add_argument(
        "--since", metavar="DATE", help="only calls on or after this UTC day (YYYY-MM-DD)"
    )
    prices = sub.add_parser("prices", help="the price table estimates use, and its sources")
    prices.add_argument(
        "--refresh",
        action="store_true",
        help="read xAI's published prices into your price file (needs XAI_API_KEY; free)",
    )
    sub.add_parser("schema", help="print the mediafile JSON Schema")
    report = sub.add_parser("report", help="a static HTML gallery: media, prompts, lineage, cost")
    report.add_argument("-o", "--output", metavar="DIR", help="(default: .imaginebuild/report)")


def _add_cache_commands(sub: argparse._SubParsersAction[Parser]) -> None:
    checkout = sub.add_parser("checkout", help="materialize the lockfile's outputs from the cache")
    checkout.add_argument("targets", nargs="*", metavar="TARGET", help=TARGET_HELP)
    push = sub.add_parser("push", help="upload locked builds to the remote cache")
    push.add_argument("targets", nargs="*", metavar="TARGET", help=TARGET_HELP)
    pull = sub.add_parser(
        "pull", help="fetch locked builds from the remote cache, materialize them"
    )
    pull.add_argument("targets", nargs="*", metavar="TARGET", help=TARGET_HELP)
    gc = sub.add_parser("gc", help="drop cache entries no lockfile references")
    gc.add_argument("--dry-run", action="store_true", help="only say what would be dropped")
    gc.add_argument(
        "--remote", action="store_true", help="collect the remote cache (dry run unless --yes)"
    )
    gc.add_argument(
        "--yes", action="store_true", help="drop without asking (scripts); --remote: really delete"
    )
    gc.add_argument(
        "--min-age",
        metavar="SECONDS",
        type=float,
        default=3600.0,
        help="keep blobs younger than this: a run elsewhere may not have locked them yet "
        "(default 3600)",
    )
    gc.add_argument(
        "--only-current",
        action="store_true",
        help="keep only what the current lockfiles name, not what git history names",
    )
    clean = sub.add_parser("clean", help="remove outputs of assets the mediafile no longer has")
    clean.add_argument("--yes", action="store_true", help="really remove (else: only list)")
    init = sub.add_parser("init", help="scaffold a mediafile and .gitignore entries")
    init.add_argument(
        "--ignore-outputs", action="store_true", help="also ignore the output folder in git"
    )


def _add_take_commands(sub: argparse._SubParsersAction[Parser]) -> None:
    takes = sub.add_parser("takes", help="an asset's takes: when, cost, request ids, current")
    takes.add_argument("name", metavar="NAME", help="the asset")
    takes.add_argument("--export", metavar="DIR", help="also write viewable copies into DIR")
    pick = sub.add_parser("pick", help="make one of an asset's takes current (no call)")
    pick.add_argument("name", metavar="NAME", help="the asset")
    pick.add_argument("take", metavar="TAKE", help="the take's number in `takes NAME`, or its id")
    sub.add_parser(
        "accept", help="use an asset's rejected take despite the output check (no call)"
    ).add_argument("name", metavar="NAME", help="the asset")
    sub.add_parser(
        "adopt", help="make an asset's outputs, as retouched by hand, its current take"
    ).add_argument("name", metavar="NAME", help="the asset")


def _add_team(sub: argparse._SubParsersAction[Parser]) -> None:
    team = sub.add_parser("team", help="the team's rate limits and spend caps (the coordinator)")
    team_sub = team.add_subparsers(dest="team_command", metavar="ACTION", parser_class=Parser)
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
