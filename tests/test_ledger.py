"""The cost ledger: durable appends, torn lines, concurrent writers, summaries."""

from __future__ import annotations

import dataclasses
import json
import multiprocessing
from datetime import date
from pathlib import Path

import pytest

from imaginebuild.errors import UsageError
from imaginebuild.store.ledger import (
    GROUPINGS,
    Billing,
    Ledger,
    LedgerEntry,
    counted,
    format_time,
    summarize,
)


def entry(
    asset: str = "london",
    *,
    time: str = "2026-11-24T10:15:02.481Z",
    run_id: str = "r1",
    model: str = "grok-imagine-image",
    provider: str = "xai",
    ticks: int = 800_000_000,
    estimated: bool = False,
) -> LedgerEntry:
    return LedgerEntry(
        time=time, run_id=run_id, asset=asset, key=f"key-{asset}", provider=provider,
        model=model, endpoint="/v1/images/generations", request_id=f"req-{asset}-{run_id}",
        ticks=ticks, estimated=estimated, retries=1, duration_s=3.25,
    )  # fmt: skip


def test_append_and_read_round_trip(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path / ".imaginebuild" / "ledger.jsonl")
    first, second = entry("a"), entry("b", estimated=True)
    second = LedgerEntry(**{**second.__dict__, "request_id": None})
    ledger.append(first)
    ledger.append(second)
    assert ledger.entries() == [first, second]
    assert ledger.skipped == 0


def test_line_format_is_versioned_json(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path / "ledger.jsonl")
    ledger.append(entry())
    lines = ledger.path.read_bytes().split(b"\n")
    assert lines[1] == b""
    record = json.loads(lines[0])
    assert record["v"] == 1
    assert record["ticks"] == 800_000_000 and record["estimated"] is False
    assert set(record) == {
        "v", "time", "run_id", "asset", "key", "provider", "model", "endpoint",
        "request_id", "ticks", "estimated", "retries", "duration_s", "billing",
    }  # fmt: skip


def test_missing_ledger_reads_as_empty(tmp_path: Path) -> None:
    assert Ledger(tmp_path / "none.jsonl").entries() == []


def test_torn_last_line_is_skipped_and_next_append_is_readable(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path / "ledger.jsonl")
    ledger.append(entry("a"))
    whole = entry("b").to_line()
    with ledger.path.open("ab") as f:
        f.write(whole[: len(whole) // 2])  # a crash in the middle of a write
    assert [e.asset for e in ledger.entries()] == ["a"]
    assert ledger.skipped == 0  # not yet told apart from an append still being written
    ledger.append(entry("c"))
    assert [e.asset for e in ledger.entries()] == ["a", "c"]
    assert ledger.skipped == 1


def test_garbage_lines_are_counted_not_fatal(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path / "ledger.jsonl")
    ledger.path.write_bytes(
        b'not json\n{"v": 2, "asset": "future"}\n\xff\xfe\n[1, 2]\n'
        b'{"v": 1, "time": "2026-11-24T10:00:00Z"}\n\n'
    )
    ledger.append(entry("ok"))
    assert [e.asset for e in ledger.entries()] == ["ok"]
    assert ledger.skipped == 5


def _append_many(path: str, writer: int, count: int) -> None:
    ledger = Ledger(Path(path))
    for i in range(count):
        ledger.append(entry(f"w{writer}-{i}", run_id=f"run-{writer}"))


def test_concurrent_appends_from_two_processes(tmp_path: Path) -> None:
    path = tmp_path / "ledger.jsonl"
    context = multiprocessing.get_context("fork")
    workers = [context.Process(target=_append_many, args=(str(path), w, 200)) for w in (1, 2)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=30)
        assert worker.exitcode is not None, "harness: a writer did not finish within 30 s"
        assert worker.exitcode == 0
    ledger = Ledger(path)
    entries = ledger.entries()
    assert ledger.skipped == 0
    assert len(entries) == 400
    assert len({e.asset for e in entries}) == 400
    for writer in (1, 2):  # each writer's own lines stay in its order
        mine = [e.asset for e in entries if e.run_id == f"run-{writer}"]
        assert mine == [f"w{writer}-{i}" for i in range(200)]


def test_format_time_is_utc_iso() -> None:
    assert format_time(0) == "1970-01-01T00:00:00.000Z"
    assert format_time(1_795_000_000.4815) == "2026-11-18T11:06:40.481Z"


# ---------------------------------------------------------------- summaries

SAMPLE = [
    entry("london", time="2026-11-22T23:59:59.999Z", run_id="r1", ticks=800_000_000),
    entry("clip", time="2026-11-23T00:00:00+00:00", run_id="r1",
          model="grok-imagine-video", ticks=3_500_000_000),
    entry("london", time="2026-11-24T09:00:00.000Z", run_id="r2", ticks=800_000_000),
    entry("sketch", time="2026-11-24T01:30:00+02:00", run_id="r2",  # 2026-11-23 in UTC
          ticks=220_000_000, estimated=True),
    entry("draft", time="2026-11-24T10:00:00.000Z", run_id="r3",
          provider="local", ticks=0),
]  # fmt: skip


def test_summary_by_asset() -> None:
    summary = summarize(SAMPLE, "asset")
    rows = {r.group: r for r in summary.rows}
    assert rows["london"].calls == 2 and rows["london"].ticks == 1_600_000_000
    assert [r.group for r in summary.rows] == ["clip", "london", "sketch", "draft"]
    assert summary.total.calls == 5
    assert summary.total.ticks == 5_320_000_000
    assert summary.total.estimated_ticks == 220_000_000


def test_summary_by_model_and_provider() -> None:
    by_model = {r.group: r.ticks for r in summarize(SAMPLE, "model").rows}
    assert by_model == {"grok-imagine-video": 3_500_000_000, "grok-imagine-image": 1_820_000_000}
    by_provider = {r.group: r.calls for r in summarize(SAMPLE, "provider").rows}
    assert by_provider == {"xai": 4, "local": 1}


def test_summary_by_day_uses_utc_and_time_order() -> None:
    rows = summarize(SAMPLE, "day").rows
    assert [(r.group, r.calls) for r in rows] == [
        ("2026-11-22", 1),
        ("2026-11-23", 2),
        ("2026-11-24", 2),
    ]


def test_summary_by_run_in_time_order() -> None:
    rows = summarize(SAMPLE, "run").rows
    assert [(r.group, r.ticks) for r in rows] == [
        ("r1", 4_300_000_000),
        ("r2", 1_020_000_000),
        ("r3", 0),
    ]


def test_summary_since_keeps_that_day_and_later() -> None:
    summary = summarize(SAMPLE, "asset", since=date(2026, 11, 23))
    assert summary.total.calls == 4
    assert "2026-11-22" not in {r.group for r in summarize(SAMPLE, "day", date(2026, 11, 23)).rows}
    assert summarize(SAMPLE, "day", since=date(2027, 1, 1)).total.ticks == 0


def test_summary_json_is_exact() -> None:
    data = summarize(SAMPLE, "run").to_json()
    assert data["total"] == {
        "group": "total",
        "calls": 5,
        "ticks": 5_320_000_000,
        "usd": "0.532",
        "estimated_ticks": 220_000_000,
        "maybe_billed_ticks": 0,
    }
    assert json.loads(json.dumps(data)) == data


def test_every_grouping_is_supported_and_others_are_usage_errors() -> None:
    for by in GROUPINGS:
        assert summarize(SAMPLE, by).total.calls == 5
    with pytest.raises(UsageError, match="week"):
        summarize(SAMPLE, "week")


# ---------------------------------------------------------------- billing status and request ids


def test_a_line_written_before_the_billing_field_reads_as_billed(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path / "ledger.jsonl")
    ledger.path.write_text(
        '{"v":1,"time":"2026-11-24T10:15:02.481Z","run_id":"r1","asset":"london","key":"k",'
        '"provider":"xai","model":"grok-imagine-image","endpoint":"/v1/images/generations",'
        '"request_id":"req-1","ticks":200000000,"estimated":false,"retries":0,"duration_s":1.0}\n'
    )
    (old,) = ledger.entries()
    assert old.billing is Billing.BILLED and ledger.skipped == 0


def test_the_billing_status_round_trips_and_an_unknown_one_is_skipped(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path / "ledger.jsonl")
    maybe = dataclasses.replace(entry("cut"), billing=Billing.MAYBE_BILLED, request_id=None)
    assert ledger.append(maybe)
    assert json.loads(ledger.path.read_text())["billing"] == "maybe_billed"
    with ledger.path.open("a") as f:
        f.write(entry("odd").to_line().decode().replace('"billed"', '"perhaps"'))
    assert ledger.entries() == [maybe] and ledger.skipped == 1


def test_a_second_line_for_a_request_id_is_refused(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path / "ledger.jsonl")
    first = entry("a")
    assert ledger.append(first)
    assert not ledger.append(dataclasses.replace(first, run_id="resumed", ticks=1))
    assert not ledger.append(dataclasses.replace(first, billing=Billing.MAYBE_BILLED))
    assert ledger.entries() == [first]


def test_a_billed_line_settles_a_maybe_billed_one_of_the_same_request(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path / "ledger.jsonl")
    maybe = dataclasses.replace(entry("a"), billing=Billing.MAYBE_BILLED, estimated=True)
    billed = dataclasses.replace(entry("a"), ticks=700_000_000)
    assert ledger.append(maybe)
    assert ledger.append(billed)
    assert not ledger.append(billed)
    assert ledger.entries() == [maybe, billed]
    assert counted(ledger.entries()) == [billed]
    assert summarize(ledger.entries(), "asset").total.ticks == 700_000_000


def test_totals_count_each_request_id_once_and_every_line_without_one() -> None:
    dup = entry("a")
    anonymous = dataclasses.replace(entry("b"), request_id=None)
    summary = summarize([dup, dup, anonymous, anonymous], "asset")
    assert summary.total.calls == 3 and summary.duplicates == 1
    assert summary.total.ticks == 3 * 800_000_000


def test_the_summary_lists_maybe_billed_calls_on_their_own() -> None:
    maybe = dataclasses.replace(entry("cut"), billing=Billing.MAYBE_BILLED, ticks=500_000_000)
    summary = summarize([entry("a"), maybe], "asset")
    assert summary.total.ticks == 1_300_000_000  # budgets count it
    assert summary.total.maybe_billed_ticks == 500_000_000
    assert summary.maybe_billed == (maybe,)
    data = summary.to_json()
    assert data["billed_usd"] == "0.08" and data["maybe_billed_usd"] == "0.05"
    assert data["maybe_billed"] == [
        {"time": maybe.time, "asset": "cut", "model": maybe.model, "endpoint": maybe.endpoint,
         "request_id": maybe.request_id, "ticks": 500_000_000, "usd": "0.05"}
    ]  # fmt: skip
    rows = {r.group: r for r in summary.rows}
    assert rows["cut"].format() == "cut: 1 calls, $0.05 (of which $0.05 may have been billed)"
