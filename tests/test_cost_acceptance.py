"""Cost acceptance against the fake xAI server: the ledger matches the bill to the tick,
`plan` matches the bill before anything runs, and a budget refuses what it cannot afford.

The fake bills from a price table built from the package's own `prices.json`, so
any difference between what we estimate, what we record and what was billed is
a real discrepancy, not a difference of price lists.
"""

from __future__ import annotations

import http.client
import json
import os
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from datetime import datetime
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from imaginebuild.engine.pricing import load_builtin_prices
from imaginebuild.money import usd_to_ticks
from imaginebuild.store.ledger import Ledger, LedgerEntry
from imaginebuild.testing.fake_xai import FakeXai, Fault, PriceTable, Route

ROOT = Path(__file__).resolve().parents[1]
KEY = "xai-COST-KEY-0123456789abcdef"

_TABLE = load_builtin_prices()
_IMAGE = _TABLE.models["grok-imagine-image"]
_VIDEO = _TABLE.models["grok-imagine-video"]
# The fake cannot be told the per-input-image fee of videos or the per-input-second
# fee of video edits; everything it can express comes from the built-in table.
FAKE_PRICES = PriceTable(
    image_ticks=_IMAGE.per_output["1k"],
    input_image_ticks=_IMAGE.per_input_image,
    video_ticks_per_second=dict(_VIDEO.per_output),
    video_input_image_ticks=_VIDEO.per_input_image,
    video_input_second_ticks=_VIDEO.per_input_second,
)

ALL_KINDS = """
version: 1
provider: xai
providers:
  xai: {poll_interval: 0.01, max_retries: 3}
assets:
  still: {kind: image, prompt: a still, count: 2, resolution: 1k, aspect_ratio: "16:9"}
  sketch: {kind: edit, prompt: sketch it, inputs: ["still[0]", "still[1]"]}
  clip: {kind: video, prompt: a clip, duration: 2, resolution: 480p, aspect_ratio: "16:9"}
  moving: {kind: animate, prompt: animate it, inputs: [sketch], duration: 2, resolution: 480p}
  guided: {kind: reference_video, prompt: guided, inputs: ["still[0]"], duration: 2,
           resolution: 480p}
  restyled: {kind: video_edit, prompt: restyle it, inputs: [clip]}
  longer: {kind: extend, prompt: go on, inputs: [clip], duration: 2}
"""
ASSET_OF_KIND = {
    "image": "still",
    "edit": "sketch",
    "video": "clip",
    "animate": "moving",
    "reference_video": "guided",
    "video_edit": "restyled",
    "extend": "longer",
}
# ---------------------------------------------------------------- helpers


def write_project(folder: Path, text: str) -> Path:
    """A project folder with this mediafile."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "mediafile.yaml").write_text(textwrap.dedent(text), encoding="utf-8")
    return folder


def env_for(base_url: str, folder: Path) -> dict[str, str]:
    """A clean environment pointing the xai provider at `base_url`, cache in the project."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("XAI_", "IMAGINEBUILD_"))}
    env.update(
        PYTHONPATH=str(ROOT),
        XAI_BASE_URL=base_url,
        XAI_API_KEY=KEY,
        IMAGINEBUILD_CACHE_DIR=str(folder / ".cache"),
    )
    return env


def cli(folder: Path, env: dict[str, str], *args: str) -> tuple[int, dict[str, Any], str]:
    """`imaginebuild --json ARGS…`: exit code, the one JSON object on stdout, stderr."""
    done = subprocess.run(
        [sys.executable, "-m", "imaginebuild", "--json", *args],
        cwd=folder, env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    data = json.loads(done.stdout)
    assert isinstance(data, dict), done.stdout
    return done.returncode, data, done.stderr


def ledger_of(folder: Path) -> list[LedgerEntry]:
    """Every entry of the project's ledger (the test fails on an unreadable line)."""
    ledger = Ledger(folder / ".imaginebuild" / "ledger.jsonl")
    entries = ledger.entries()
    assert ledger.skipped == 0
    return entries


def raw_ledger_lines(folder: Path) -> list[dict[str, Any]]:
    """The ledger's lines as decoded JSON objects."""
    text = (folder / ".imaginebuild" / "ledger.jsonl").read_text(encoding="utf-8")
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def by_name(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """A `--json` report's assets keyed by name."""
    return {a["name"]: a for a in report["assets"]}


def ticks(usd: str) -> int:
    """A JSON USD string as ticks."""
    return usd_to_ticks(Decimal(usd))


# ---------------------------------------------------------------- a cold run of every kind


class ColdRun:
    """`plan` then `run` of ALL_KINDS against a fake billing with the built-in prices."""

    def __init__(self, folder: Path) -> None:
        with FakeXai(pending_polls=1, prices=FAKE_PRICES) as fake:
            env = env_for(fake.base_url, folder)
            code, self.plan, err = cli(folder, env, "plan")
            assert code == 0, err
            assert fake.log == []  # plan calls nothing
            self.run_code, self.run, self.run_err = cli(folder, env, "run")
            self.bills = fake.bills
            self.log = fake.log
        self.ledger = ledger_of(folder)
        self.folder = folder


@pytest.fixture(scope="module")
def cold(tmp_path_factory: pytest.TempPathFactory) -> ColdRun:
    """One cold run shared by the tests that only read its results."""
    return ColdRun(write_project(tmp_path_factory.mktemp("cold"), ALL_KINDS))


def test_cold_run_ledger_equals_the_fakes_bill_to_the_tick(cold: ColdRun) -> None:
    assert cold.run_code == 0, cold.run_err
    assert {a["state"] for a in cold.run["assets"]} == {"built"}
    assert sum(e.ticks for e in cold.ledger) == sum(b.ticks for b in cold.bills)
    assert len(cold.ledger) == len(cold.bills)  # one line per billed call
    assert not any(e.estimated for e in cold.ledger)
    # every billed video job is in the ledger once, with the amount billed for it
    billed_jobs = {b.request_id: b.ticks for b in cold.bills if b.request_id}
    recorded_jobs = {e.request_id: e.ticks for e in cold.ledger if e.request_id}
    assert recorded_jobs == billed_jobs
    # the run's own report agrees with the ledger
    assert ticks(cold.run["cost_usd"]) == sum(e.ticks for e in cold.ledger)


@pytest.mark.parametrize(
    "kind",
    [
        "image",
        "edit",
        "video",
        "animate",
        "reference_video",
        "video_edit",
        "extend",
    ],
)
def test_plan_estimate_of_each_kind_equals_its_bill(cold: ColdRun, kind: str) -> None:
    name = ASSET_OF_KIND[kind]
    estimate = ticks(by_name(cold.plan)[name]["estimate_usd"])
    recorded = sum(e.ticks for e in cold.ledger if e.asset == name)
    assert recorded > 0
    assert estimate == recorded


def test_plan_total_covers_exactly_the_calls_run_makes(cold: ColdRun) -> None:
    planned = {a["name"] for a in cold.plan["assets"] if a["state"] != "up_to_date"}
    built = {a["name"] for a in cold.run["assets"] if a["state"] == "built"}
    assert planned == built == set(ASSET_OF_KIND.values())
    # the run reports, per asset, the estimate it reserved: the same figure plan showed
    for name, asset in by_name(cold.run).items():
        assert asset["estimate_usd"] == by_name(cold.plan)[name]["estimate_usd"], name


def test_ledger_lines_have_the_documented_fields(cold: ColdRun) -> None:
    lines = raw_ledger_lines(cold.folder)
    expected = {
        "v", "time", "run_id", "asset", "key", "provider", "model", "endpoint",
        "request_id", "ticks", "estimated", "retries", "duration_s", "billing",
    }  # fmt: skip
    keys = by_name(cold.run)
    for line in lines:
        assert set(line) == expected
        assert line["v"] == 1 and line["provider"] == "xai"
        assert line["key"] == keys[line["asset"]]["key"]
        assert line["time"].endswith("Z") and isinstance(line["duration_s"], float)
        assert isinstance(line["ticks"], int) and line["retries"] == 0
    assert len({line["run_id"] for line in lines}) == 1
    videos = [line for line in lines if line["endpoint"].startswith("/videos/")]
    assert all(line["request_id"] for line in videos) and len(videos) == 5


def test_ledger_time_is_when_the_call_finished(cold: ColdRun) -> None:
    videos = [e for e in cold.ledger if e.request_id]
    assert videos
    for entry in videos:
        job = str(entry.request_id)
        polls = [
            r.at
            for r in cold.log
            if r.route in (Route.POLL, Route.IMAGE_POLL) and r.path.endswith(job)
        ]
        finished = datetime.fromisoformat(entry.time.replace("Z", "+00:00")).timestamp()
        assert finished >= max(polls) - 0.001, entry  # the time has millisecond precision


def test_cost_json_sums_the_ledger_by_asset_model_and_day(cold: ColdRun) -> None:
    env = env_for("http://127.0.0.1:9/v1", cold.folder)
    total = sum(e.ticks for e in cold.ledger)
    for by in ("asset", "model", "day", "run", "provider"):
        code, data, err = cli(cold.folder, env, "cost", "--by", by)
        assert code == 0, err
        assert set(data) == {
            "by", "since", "rows", "total", "skipped_lines", "billed_usd", "maybe_billed_usd",
            "maybe_billed", "duplicate_lines",
        }  # fmt: skip
        assert data["by"] == by and data["since"] is None and data["skipped_lines"] == 0
        for row in (*data["rows"], data["total"]):
            assert set(row) == {
                "group", "calls", "ticks", "usd", "estimated_ticks", "maybe_billed_ticks",
            }  # fmt: skip
            assert ticks(row["usd"]) == row["ticks"]
        assert data["total"]["ticks"] == total and data["total"]["calls"] == len(cold.ledger)
        assert sum(r["ticks"] for r in data["rows"]) == total
    code, data, _ = cli(cold.folder, env, "cost", "--by", "asset")
    assert {r["group"]: r["ticks"] for r in data["rows"]} == {
        name: sum(e.ticks for e in cold.ledger if e.asset == name)
        for name in ASSET_OF_KIND.values()
    }
    code, data, _ = cli(cold.folder, env, "cost", "--since", "2999-01-01")
    assert data["since"] == "2999-01-01" and data["rows"] == [] and data["total"]["ticks"] == 0


# ---------------------------------------------------------------- faults and retries

FAULTY = """
version: 1
provider: xai
providers:
  xai: {poll_interval: 0.01, max_retries: 3}
assets:
  still: {kind: image, prompt: a still, count: 3}
  sketch: {kind: edit, prompt: sketch it, inputs: ["still[0]"]}
  clip: {kind: video, prompt: a clip, duration: 2, resolution: 720p}
  longer: {kind: extend, prompt: go on, inputs: [clip], duration: 2}
"""


def test_retried_faults_are_billed_once_and_recorded_once(tmp_path: Path) -> None:
    folder = write_project(tmp_path / "p", FAULTY)
    with FakeXai(pending_polls=1, prices=FAKE_PRICES) as fake:
        # A POST is retried only when the API refused it before any work (429).
        fake.inject(
            Route.IMAGES, Fault.rate_limited(retry_after="0"), Fault.rate_limited(retry_after="0")
        )
        fake.inject(Route.EDITS, Fault.rate_limited(retry_after="0"))
        fake.inject(Route.VIDEOS, Fault.rate_limited(retry_after="0"))
        fake.inject(Route.POLL, Fault.http(503, retry_after="0"))
        fake.inject(Route.EXTENSIONS, Fault.rate_limited(retry_after="0"))
        env = env_for(fake.base_url, folder)
        code, report, err = cli(folder, env, "run")
        assert code == 0, err
        assert fake.pending_faults() == 0  # every fault was met, and retried past
        bills = fake.bills
        # the faults answered instead of the server: nothing extra was billed
        assert len(bills) == 4
        entries = ledger_of(folder)
        assert sum(e.ticks for e in entries) == sum(b.ticks for b in bills)
        assert sorted(e.asset for e in entries) == ["clip", "longer", "sketch", "still"]
        retries = {e.asset: e.retries for e in entries}
        assert retries["still"] == 2 and retries["sketch"] == 1 and retries["longer"] == 1
        # clip: the 429 on its submission and the 503 on the first poll (longer extends clip,
        # so no other poll comes before it)
        assert retries["clip"] == 2
        assert ticks(report["cost_usd"]) == sum(b.ticks for b in bills)
        # a rerun is cached: no request, no new ledger line
        seen = len(fake.log)
        code, again, err = cli(folder, env, "run")
        assert code == 0, err
        assert {a["state"] for a in again["assets"]} == {"up_to_date"}
        assert len(fake.log) == seen
        assert len(ledger_of(folder)) == len(entries)


def test_a_billed_but_moderated_video_is_in_the_ledger(tmp_path: Path) -> None:
    folder = write_project(tmp_path / "p", FAULTY)
    with FakeXai(pending_polls=1, prices=FAKE_PRICES) as fake:
        fake.inject(Route.VIDEOS, Fault.moderation())
        code, _, err = cli(folder, env_for(fake.base_url, folder), "run", "-k")
        assert code == 1, err
        billed = fake.billed_ticks()
    assert sum(e.ticks for e in ledger_of(folder)) == billed


# ---------------------------------------------------------------- a bill without usage


class _StripUsage(BaseHTTPRequestHandler):
    """A loopback proxy to the fake that drops `usage` from every JSON answer."""

    protocol_version = "HTTP/1.1"
    upstream_port = 0

    def log_message(self, format: str, *args: object) -> None:
        """Quiet."""

    def do_GET(self) -> None:
        """Polls."""
        self._forward("GET")

    def do_POST(self) -> None:
        """Submissions."""
        self._forward("POST")

    def _forward(self, method: str) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else None
        headers = {
            k: v for k, v in self.headers.items() if k.lower() in ("authorization", "content-type")
        }
        upstream = http.client.HTTPConnection("127.0.0.1", self.upstream_port, timeout=30)
        try:
            upstream.request(method, self.path, body=body, headers=headers)
            answer = upstream.getresponse()
            data = answer.read()
            content_type = answer.getheader("Content-Type") or "application/json"
            status = answer.status
        finally:
            upstream.close()
        if data and content_type.startswith("application/json"):
            decoded = json.loads(data)
            if isinstance(decoded, dict):
                decoded.pop("usage", None)
                data = json.dumps(decoded).encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


@pytest.fixture
def no_usage() -> Iterator[tuple[FakeXai, str]]:
    """The fake behind a proxy that removes `usage`: (fake, the proxy's base URL)."""
    with FakeXai(pending_polls=1, prices=FAKE_PRICES) as fake:
        handler = type("Handler", (_StripUsage,), {"upstream_port": fake.port})
        proxy = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        proxy.daemon_threads = True
        thread = threading.Thread(target=proxy.serve_forever, kwargs={"poll_interval": 0.02})
        thread.start()
        try:
            yield fake, f"http://127.0.0.1:{proxy.server_address[1]}/v1"
        finally:
            proxy.shutdown()
            proxy.server_close()
            thread.join(timeout=5)


NO_USAGE = """
version: 1
provider: xai
providers:
  xai: {poll_interval: 0.01}
assets:
  still: {kind: image, prompt: a still, count: 2}
  clip: {kind: video, prompt: a clip, duration: 2, resolution: 720p}
"""


def test_a_bill_without_usage_is_recorded_as_the_estimate(
    no_usage: tuple[FakeXai, str], tmp_path: Path
) -> None:
    fake, base_url = no_usage
    folder = write_project(tmp_path / "p", NO_USAGE)
    env = env_for(base_url, folder)
    code, plan, err = cli(folder, env, "plan")
    assert code == 0, err
    code, report, err = cli(folder, env, "run")
    assert code == 0, err
    assert len(fake.bills) == 2
    assert ticks(report["cost_usd"]) == fake.billed_ticks()
    lines = raw_ledger_lines(folder)
    assert len(lines) == 2
    estimates = {a["name"]: ticks(a["estimate_usd"]) for a in plan["assets"]}
    for line in lines:
        assert line["estimated"] is True
        assert line["ticks"] == estimates[line["asset"]]
    # same prices on both sides, so the estimate is the bill
    assert sum(line["ticks"] for line in lines) == fake.billed_ticks()
    code, show, err = cli(folder, env, "show", "clip")
    assert code == 0, err
    assert show["record"]["cost_estimated"] is True
    assert show["record"]["cost_usd"] == show["record"]["estimate_usd"]
    code, cost, err = cli(folder, env, "cost")
    assert code == 0, err
    assert cost["total"]["estimated_ticks"] == cost["total"]["ticks"] == fake.billed_ticks()


# ---------------------------------------------------------------- budgets

FIVE_CALLS = """
version: 1
provider: xai
providers:
  xai: {poll_interval: 0.01}
assets:
  a1: {kind: image, prompt: one}
  a2: {kind: image, prompt: two}
  a3: {kind: image, prompt: three}
  a4: {kind: image, prompt: four}
  a5: {kind: image, prompt: five}
"""


@pytest.mark.parametrize("where", ["cli", "mediafile"])
def test_a_budget_for_three_of_five_calls_runs_exactly_three(tmp_path: Path, where: str) -> None:
    price = _IMAGE.per_output["1k"]
    limit = Decimal(3 * price) / 10**10  # exactly three calls: reaching the limit is allowed
    text = FIVE_CALLS
    args = ["run", "-j", "1"]
    if where == "cli":
        args += ["--max-cost", str(limit)]
    else:
        text = text.replace("assets:", f"budget: {{max_usd: {limit}}}\nassets:")
    folder = write_project(tmp_path / "p", text)
    with FakeXai(prices=FAKE_PRICES) as fake:
        code, report, err = cli(folder, env_for(fake.base_url, folder), *args)
        assert code == 3, err
        assert len(fake.requests(Route.IMAGES)) == 3  # nothing else was submitted
        assert fake.billed_ticks() == 3 * price
    assert report["exit_code"] == 3
    states = {a["name"]: a["state"] for a in report["assets"]}
    built = sorted(n for n, s in states.items() if s == "built")
    left = sorted(n for n, s in states.items() if s == "skipped")
    assert len(built) == 3 and len(left) == 2
    assert len(report["messages"]) == 1
    message = report["messages"][0]
    assert all(name in message for name in left)
    assert not any(name in message for name in built)
    assert str(Decimal(2 * price) / 10**10) in message  # what the rest would cost
    assert message in err  # the human sees it too
    assert sum(e.ticks for e in ledger_of(folder)) == 3 * price
    assert ticks(report["cost_usd"]) == 3 * price


# ---------------------------------------------------------------- local rehearsal


REHEARSAL = """
version: 1
provider: local
assets:
  still: {kind: image, prompt: a still, count: 2, resolution: 1k}
  sketch: {kind: edit, prompt: sketch it, inputs: ["still[0]"]}
"""


def test_a_local_rehearsal_costs_nothing_and_says_what_xai_would_charge(tmp_path: Path) -> None:
    folder = write_project(tmp_path / "p", REHEARSAL)
    env = env_for("http://127.0.0.1:9/v1", folder)
    code, plan, err = cli(folder, env, "plan")
    assert code == 0, err
    code, report, err = cli(folder, env, "run")
    assert code == 0, err
    would = {
        "still": 2 * _IMAGE.per_output["1k"],
        "sketch": _IMAGE.per_output["1k"] + _IMAGE.per_input_image,
    }
    for name, expected in would.items():
        assert ticks(by_name(plan)[name]["estimate_usd"]) == expected
        assert ticks(by_name(report)[name]["estimate_usd"]) == expected
        assert by_name(report)[name]["cost_usd"] == "0"
        code, show, err = cli(folder, env, "show", name)
        assert code == 0, err
        assert show["record"]["cost_usd"] == "0" and show["record"]["cost_estimated"] is False
        assert ticks(show["record"]["estimate_usd"]) == expected
    assert not (folder / ".imaginebuild" / "ledger.jsonl").exists()  # nothing was billed


def test_every_asset_left_by_the_budget_says_so_with_its_estimate(tmp_path: Path) -> None:
    price = _IMAGE.per_output["1k"]
    folder = write_project(tmp_path / "p", FIVE_CALLS)
    with FakeXai(prices=FAKE_PRICES) as fake:
        env = env_for(fake.base_url, folder)
        code, report, err = cli(folder, env, "run", "-j", "1", "--max-cost", "0.06")
    assert code == 3, err
    left = [a for a in report["assets"] if a["state"] == "skipped"]
    assert len(left) == 2
    for asset in left:
        assert "budget" in asset["reason"], asset
        assert ticks(asset["estimate_usd"]) == price, asset
