"""Money as a user meets it: budgets past one run, `plan` against every budget, the
ledger's maybe-billed lines and request-id dedupe, one money format, the report's
"spent", filesystem limits refused before any call, and extension estimates.

End to end through the in-process CLI (`main([...])`) against the fake xAI server
over real HTTP on 127.0.0.1; the fake bills $0.02 per 1k image.
"""

from __future__ import annotations

import os
import re
import textwrap
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from conftest import CliResult, run_cli, set_environment, xai_env

from imaginebuild.engine.budget import Allowance, Budget, Limit, LimitState, allowance
from imaginebuild.money import usd_to_ticks
from imaginebuild.store.ledger import Billing, Ledger, LedgerEntry, format_time
from imaginebuild.testing.fake_xai import FakeXai

KEY = "xai-MONEY-KEY-0123456789abcdef"
CENT = usd_to_ticks("0.01")
IMAGE = 2 * CENT  # what the fake bills per 1k image (and the built-in price table says)

FIVE_IMAGES = """
version: 1
provider: xai
{budget}
assets:
  a1: {{kind: image, prompt: one}}
  a2: {{kind: image, prompt: two}}
  a3: {{kind: image, prompt: three}}
  a4: {{kind: image, prompt: four}}
  a5: {{kind: image, prompt: five}}
"""


@pytest.fixture
def project(tmp_path: Path, fake: FakeXai, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty project folder, the in-process CLI pointed at the fake from it."""
    cache = str(tmp_path / "cache")
    set_environment(monkeypatch, xai_env(fake, key=KEY, IMAGINEBUILD_CACHE_DIR=cache))
    folder = tmp_path / "p"
    folder.mkdir()
    monkeypatch.chdir(folder)
    return folder


@pytest.fixture
def cli() -> Any:
    """Run `imaginebuild ARGS…` in-process and capture what it printed."""

    def run(*args: str) -> CliResult:
        done = run_cli(*args, cwd=Path.cwd(), env=os.environ)
        assert "Traceback" not in done.stderr, done.stderr
        assert KEY not in done.stdout + done.stderr
        return done

    return run


def write(folder: Path, text: str) -> None:
    """Write the project's mediafile."""
    (folder / "mediafile.yaml").write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")


def line(
    ticks: int,
    *,
    at: datetime | None = None,
    request_id: str | None = None,
    billing: Billing = Billing.BILLED,
    asset: str = "old",
) -> LedgerEntry:
    """A ledger line of an earlier run."""
    moment = at or datetime.now(timezone.utc)
    return LedgerEntry(
        time=format_time(moment.timestamp()), run_id="earlier", asset=asset, key="k" * 64,
        provider="xai", model="grok-imagine-image", endpoint="/v1/images/generations",
        request_id=request_id, ticks=ticks, billing=billing,
    )  # fmt: skip


def ledger(folder: Path) -> Ledger:
    """The project's ledger."""
    return Ledger(folder / ".imaginebuild" / "ledger.jsonl")


def states(report: dict[str, Any]) -> dict[str, str]:
    """Each asset's state in a `--json` report."""
    return {a["name"]: a["state"] for a in report["assets"]}


# ---------------------------------------------------------------- 1. budgets beyond one run


TODAY = date(2026, 11, 24)
NOON = datetime(2026, 11, 24, 12, tzinfo=timezone.utc)


def test_the_allowance_is_the_least_any_budget_has_left() -> None:
    entries = [
        line(30 * CENT, at=NOON - timedelta(days=2)),  # an earlier day: total only
        line(10 * CENT, at=NOON, request_id="r1"),
        line(10 * CENT, at=NOON, request_id="r1"),  # the same request again: counted once
        line(5 * CENT, at=NOON, request_id="r2", billing=Billing.MAYBE_BILLED),
        line(1 * CENT, at=datetime(2026, 11, 24, 0, 0, tzinfo=timezone.utc)),  # 00:00 UTC
    ]
    found = allowance(100 * CENT, 50 * CENT, 60 * CENT, entries, TODAY)
    by_limit = {s.limit: s for s in found.limits}
    assert by_limit[Limit.PER_RUN] == LimitState(Limit.PER_RUN, 100 * CENT, 0)
    assert by_limit[Limit.PER_DAY].used == 16 * CENT  # maybe-billed counts; r1 once
    assert by_limit[Limit.TOTAL].used == 46 * CENT
    assert found.remaining == 14 * CENT
    assert [s.limit for s in found.binding] == [Limit.TOTAL]
    assert [s.limit for s in found.exceeded_by(40 * CENT)] == [Limit.PER_DAY, Limit.TOTAL]
    assert [s.limit for s in found.exceeded_by(20 * CENT)] == [Limit.TOTAL]
    assert found.exceeded_by(14 * CENT) == ()  # reaching a budget exactly is allowed


def test_an_overrun_budget_allows_nothing_and_no_budget_allows_all() -> None:
    overrun = allowance(None, None, 10 * CENT, [line(12 * CENT, at=NOON)], TODAY)
    assert overrun.remaining == 0
    assert Allowance().remaining is None
    budget = Budget.for_run(overrun)
    assert not budget.reserve("a", 1)
    assert "total budget" in budget.refusal("a", 1)


def test_a_tie_names_every_binding_budget() -> None:
    found = allowance(10 * CENT, None, 20 * CENT, [line(10 * CENT, at=NOON)], TODAY)
    budget = Budget.for_run(found)
    assert budget.limit_name() == "per-run and total"


def test_the_total_budget_counts_earlier_runs_and_run_names_it(
    project: Path, fake: FakeXai, cli: Any
) -> None:
    write(project, FIVE_IMAGES.format(budget="budget: {max_usd: 1.00, max_usd_total: 0.10}"))
    ledger(project).append(line(6 * CENT, at=datetime.now(timezone.utc) - timedelta(days=40)))
    done = cli("--json", "run", "-j", "1")
    assert done.code == 3, done.stderr
    assert len(fake.requests("images")) == 2 and fake.billed_ticks() == 2 * IMAGE
    assert sorted(states(done.json).values()) == ["built"] * 2 + ["skipped"] * 3
    (message,) = done.json["messages"]
    assert message.startswith("total budget reached: left unbuilt"), message
    assert "$0.06 more" in message
    skipped = [a for a in done.json["assets"] if a["state"] == "skipped"]
    assert all("would pass the total budget" in a["reason"] for a in skipped), skipped
    assert message in done.stderr


def test_the_per_day_budget_counts_only_todays_ledger_lines(
    project: Path, fake: FakeXai, cli: Any
) -> None:
    write(project, FIVE_IMAGES.format(budget="budget: {max_usd_per_day: 0.10}"))
    now = datetime.now(timezone.utc)
    ledger(project).append(line(500 * CENT, at=now - timedelta(days=2)))  # not today
    ledger(project).append(line(4 * CENT, at=now, request_id="earlier-today"))
    ledger(project).append(
        line(2 * CENT, at=now, request_id="cut-off", billing=Billing.MAYBE_BILLED)
    )
    done = cli("--json", "run", "-j", "1")
    assert done.code == 3, done.stderr
    assert len(fake.requests("images")) == 2, "$0.06 of today's $0.10 was in the ledger"
    (message,) = done.json["messages"]
    assert message.startswith("per-day budget reached"), message


def test_budgets_that_allow_the_run_change_nothing(project: Path, fake: FakeXai, cli: Any) -> None:
    write(
        project,
        FIVE_IMAGES.format(budget="budget: {max_usd: 0.10, max_usd_per_day: 5, max_usd_total: 9}"),
    )
    done = cli("--json", "run")
    assert done.code == 0, done.stderr
    assert fake.billed_ticks() == 5 * IMAGE


@pytest.mark.parametrize(
    ("value", "wanted"),
    [
        ("0", "must be greater than 0"),
        ("-1", "must be greater than 0"),
        (".inf", "is not an amount of money"),
        (".nan", "is not an amount of money"),
        ("'5'", "number"),
    ],
)
@pytest.mark.parametrize("key", ["max_usd_per_day", "max_usd_total"])
def test_a_bad_budget_is_a_located_error_and_nothing_is_called(
    project: Path, fake: FakeXai, cli: Any, key: str, value: str, wanted: str
) -> None:
    write(project, FIVE_IMAGES.format(budget=f"budget:\n  {key}: {value}"))
    for argv in (["validate"], ["run"], ["plan"]):
        done = cli(*argv)
        assert done.code == 2, done.stderr
        assert re.search(rf"^mediafile\.yaml:4:\d+: budget\.{key}: ", done.stderr, re.M), (
            done.stderr
        )
        assert wanted in done.stderr, done.stderr
    assert fake.log == []
    assert not (project / ".imaginebuild").exists()


# ---------------------------------------------------------------- 3. maybe-billed lines in `cost`


def test_cost_shows_maybe_billed_calls_on_their_own(project: Path, cli: Any) -> None:
    write(project, FIVE_IMAGES.format(budget=""))
    now = datetime.now(timezone.utc)
    book = ledger(project)
    book.append(line(2 * CENT, at=now, request_id="r-1", asset="a1"))
    book.append(line(2 * CENT, at=now, request_id="r-1", asset="a1"))  # refused: same id
    book.append(line(15 * CENT, at=now, billing=Billing.MAYBE_BILLED, asset="a2"))
    assert len(book.entries()) == 2
    text = cli("cost")
    assert text.code == 0, text.stderr
    assert "total: $0.17\n" in text.stdout
    assert "billed: $0.02; may have been billed: $0.15 in 1 call(s)" in text.stdout
    assert "a2  /v1/images/generations  (no request id)  $0.15" in text.stdout
    data = cli("--json", "cost").json
    assert data["total"]["ticks"] == 17 * CENT
    assert (data["billed_usd"], data["maybe_billed_usd"]) == ("0.02", "0.15")
    assert [m["asset"] for m in data["maybe_billed"]] == ["a2"]
    assert data["total"]["maybe_billed_ticks"] == 15 * CENT


# ---------------------------------------------------------------- 2. `plan` against every budget


def test_plan_shows_every_budget_and_warns_when_the_estimate_passes_one(
    project: Path, fake: FakeXai, cli: Any
) -> None:
    write(
        project,
        FIVE_IMAGES.format(
            budget="budget: {max_usd: 0.50, max_usd_per_day: 0.07, max_usd_total: 100}"
        ),
    )
    ledger(project).append(line(1 * CENT, at=datetime.now(timezone.utc)))
    done = cli("plan")
    assert done.code == 0, done.stderr  # a warning, not a refusal, without --check
    assert "estimated total: $0.10\n" in done.stdout
    assert "per-run budget $0.50: $0.50 left\n" in done.stdout
    assert "per-day budget $0.07: $0.01 used, $0.06 left\n" in done.stdout
    assert "total budget $100.00: $0.01 used, $99.99 left\n" in done.stdout
    warnings = [x for x in done.stderr.splitlines() if x.startswith("warning:")]
    assert warnings == ["warning: the estimated $0.10 passes the per-day budget $0.07: "
                        "$0.01 used, $0.06 left"]  # fmt: skip
    checked = cli("--json", "plan", "--check")
    assert checked.code == 3 and checked.json["exit_code"] == 3
    assert warnings[0] in checked.stderr
    budgets = {b["limit"]: b for b in checked.json["budgets"]}
    assert budgets["per-day"] == {
        "limit": "per-day", "cap_usd": "0.07", "used_usd": "0.01", "remaining_usd": "0.06",
        "exceeded": True,
    }  # fmt: skip
    assert not budgets["per-run"]["exceeded"] and not budgets["total"]["exceeded"]
    assert checked.json["billable_usd"] == "0.1"
    assert fake.log == []  # plan calls nothing


def test_plan_check_passes_when_every_budget_allows_the_estimate(project: Path, cli: Any) -> None:
    write(project, FIVE_IMAGES.format(budget="budget: {max_usd: 0.10}"))  # exactly reached
    done = cli("plan", "--check")
    assert done.code == 0, done.stderr
    assert "warning" not in done.stderr
    assert cli("plan", "--check", "--provider", "local").code == 0  # rehearsals bill nothing


def test_plan_check_without_budgets_passes_and_lists_none(project: Path, cli: Any) -> None:
    write(project, FIVE_IMAGES.format(budget=""))
    done = cli("--json", "plan", "--check")
    assert done.code == 0 and done.json["budgets"] == []


# ---------------------------------------------------------------- 4. one money format


MONEY = re.compile(r"\$-?\d+(?:\.\d+)?")
CENTS_OR_MORE = re.compile(r"^\$-?\d+\.\d{2,}$")


def test_format_usd_is_cents_with_more_digits_only_when_a_price_needs_them() -> None:
    from imaginebuild.money import format_usd

    assert format_usd(usd_to_ticks("0.1")) == "$0.10"
    assert format_usd(usd_to_ticks("0.022")) == "$0.022"
    assert format_usd(usd_to_ticks("12")) == "$12.00"
    assert format_usd(0) == "$0.00"
    assert format_usd(-usd_to_ticks("0.5")) == "-$0.50"


def test_every_command_prints_money_one_way(project: Path, fake: FakeXai, cli: Any) -> None:
    write(project, FIVE_IMAGES.format(budget="budget: {max_usd: 0.06, max_usd_total: 5}"))
    printed = [
        cli("plan").stdout,  # a command's result is on stdout
        cli("-v", "run", "-j", "1").stderr,  # plain lines, the refusal, the summary
        cli("cost").stdout,
        cli("cost", "--by", "run").stdout,
        cli("show", "a1").stdout,
        cli("status").stdout,
    ]
    text = "\n".join(printed)
    amounts = MONEY.findall(text)
    assert len(amounts) > 15, text
    assert all(CENTS_OR_MORE.match(a) for a in amounts), [a for a in amounts if "." not in a]
    assert " USD" not in text, text
    assert "built a1" in text and "$0.02" in text
    assert "in 1 call" not in printed[2]  # no maybe-billed section without such lines
    assert "cost: $0.02\n" in printed[4] and "estimate: $0.02\n" in printed[4]
    assert "per-run budget reached: left unbuilt a4, a5 (estimated $0.04 more)" in printed[1]
    assert re.search(r"skipped 2 in \d+\.\ds, \$0\.06$", printed[1], re.M), printed[1]


def test_a_step_line_prints_ten_cents_as_cents() -> None:
    import io

    from imaginebuild.cli.console import PlainReporter
    from imaginebuild.events import AssetState, RunStarted, StepFinished

    stream = io.StringIO()
    reporter = PlainReporter(stream)
    reporter.emit(RunStarted(1))
    reporter.emit(StepFinished("a", AssetState.BUILT, "never built", 1.0, usd_to_ticks("0.1")))
    assert stream.getvalue() == "[1/1] built a  1.0s  $0.10  (never built)\n"


# ---------------------------------------------------------------- 5. the report's "spent"


def test_the_report_header_says_spent_from_the_ledger_and_the_outputs_cost_apart(
    project: Path, fake: FakeXai, cli: Any
) -> None:
    write(project, FIVE_IMAGES.format(budget=""))
    assert cli("run").code == 0
    # Earlier takes, since replaced, and a call that may have been billed.
    ledger(project).append(line(50 * CENT, request_id="old-take"))
    ledger(project).append(line(15 * CENT, billing=Billing.MAYBE_BILLED))
    done = cli("report", "-o", "gallery")
    assert done.code == 0, done.stderr
    page = (project / "gallery" / "index.html").read_text(encoding="utf-8")
    assert (
        "5 assets · 5 built · spent $0.75 (ledger, of which $0.15 may have been billed) · "
        "cost of current outputs $0.10 · from mediafile.yaml"
    ) in page


# ---------------------------------------------------------------- 6. file-system limits


def _snapshot(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


def test_a_300_character_asset_name_fails_validate_and_run_before_any_call(
    project: Path, fake: FakeXai, cli: Any
) -> None:
    name = "a" * 300
    write(project, f"version: 1\nprovider: xai\nassets:\n  {name}: {{kind: image, prompt: p}}\n")
    before = _snapshot(project)
    for argv in (["validate"], ["run"], ["--json", "run"], ["plan"]):
        done = cli(*argv)
        assert done.code == 2, done.stderr
        assert f"mediafile.yaml:4:3: assets.{name}: the asset name is 300 bytes" in done.stderr
        assert "255-byte limit of a file name" in done.stderr
    assert fake.log == []
    assert _snapshot(project) == before


@pytest.mark.parametrize(
    ("asset", "where", "wanted"),
    [
        # NAME-<i>.png of a 236-byte name, plus the temporary name's 14 bytes, passes 255.
        ("b" * 236 + ": {kind: image, prompt: p, count: 2}",
         "assets." + "b" * 236, "is 242 bytes; a file name may have 255 (an output's 241"),
        ("a: {kind: image, prompt: p, output: out/" + "c" * 238 + ".png}",
         "assets.a.output", "is 242 bytes"),
        ("a: {kind: image, prompt: p, output: " + "d" * 256 + "/x.png}",
         "assets.a.output", "is 256 bytes"),
        ("a: {kind: image, prompt: p, output: " + "/".join(["e" * 200] * 21) + "/x.png}",
         "assets.a.output", "a path may have 4096"),
    ],
    ids=["default-output", "output-name", "output-folder", "output-path"],
)  # fmt: skip
def test_names_and_paths_a_file_system_refuses_are_located_errors(
    project: Path, fake: FakeXai, cli: Any, asset: str, where: str, wanted: str
) -> None:
    write(project, f"version: 1\nprovider: xai\nassets:\n  {asset}\n")
    done = cli("validate")
    assert done.code == 2, done.stderr
    assert re.search(rf"^mediafile\.yaml:4:\d+: {re.escape(where)}: ", done.stderr, re.M), (
        done.stderr
    )
    assert wanted in done.stderr, done.stderr
    assert cli("run").code == 2
    assert fake.log == []


def test_the_longest_name_allowed_builds(project: Path, cli: Any) -> None:
    name = "f" * 235  # the limit the hint names
    write(project, f"version: 1\nprovider: local\nassets:\n  {name}: {{kind: image, prompt: p}}\n")
    done = cli("run")
    assert done.code == 0, done.stderr
    assert (project / "out" / f"{name}.png").is_file()


# ---------------------------------------------------------------- 7. extension estimates

EXTENSION = """
version: 1
provider: xai
providers:
  xai: {poll_interval: 0.01}
budget: {max_usd: 0.20}
assets:
  clip: {kind: video, prompt: a clip, duration: 2, resolution: 480p}
  longer: {kind: extend, prompt: go on, inputs: [clip], duration: 2}
"""


def test_an_extension_is_estimated_as_billed_and_never_passes_the_budget(
    project: Path, fake: FakeXai, cli: Any
) -> None:
    write(project, EXTENSION)
    plan = {a["name"]: a for a in cli("--json", "plan").json["assets"]}
    # 2 s added at $0.05 (480p, inherited) + 2 s of input at $0.01.
    assert plan["longer"]["estimate_usd"] == "0.12"
    done = cli("--json", "run", "-j", "1")
    assert done.code == 3, done.stderr  # $0.10 + $0.12 would pass $0.20: the extension waits
    assert states(done.json) == {"clip": "built", "longer": "skipped"}
    assert fake.billed_ticks() == 10 * CENT <= 20 * CENT
    write(project, EXTENSION.replace("max_usd: 0.20", "max_usd: 0.12"))
    again = cli("--json", "run")
    assert again.code == 0, again.stderr
    assert fake.billed_ticks() - 10 * CENT == 12 * CENT  # the bill equals the estimate
