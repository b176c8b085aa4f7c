"""The journal of in-flight async jobs."""

from __future__ import annotations

import json
from dataclasses import asdict, replace
from pathlib import Path

import pytest

from imaginebuild.errors import StoreError
from imaginebuild.store.journal import JOURNAL_VERSION, JobRecord, JobResult, Journal


def record(key: str = "ab12", request_id: str = "req-1", at: float = 1.0) -> JobRecord:
    return JobRecord(
        key=key,
        asset="clip",
        request_id=request_id,
        endpoint="/videos/generations",
        model="grok-imagine-video",
        submitted_at=at,
    )


def test_put_then_get_round_trips(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "journal")
    assert journal.get("ab12") is None
    journal.put(record())
    assert journal.get("ab12") == record()
    assert Journal(tmp_path / "journal").get("ab12") == record()  # it is on disk


def test_put_replaces_and_leaves_no_temp_files(tmp_path: Path) -> None:
    journal = Journal(tmp_path)
    journal.put(record(request_id="one"))
    journal.put(record(request_id="two"))
    assert journal.get("ab12") == record(request_id="two")
    assert [p.name for p in tmp_path.iterdir()] == ["ab12.json"]


def test_remove_forgets_and_tolerates_missing(tmp_path: Path) -> None:
    journal = Journal(tmp_path)
    journal.put(record())
    journal.remove("ab12")
    journal.remove("ab12")
    assert journal.get("ab12") is None
    assert journal.records() == []


def test_records_lists_oldest_first(tmp_path: Path) -> None:
    journal = Journal(tmp_path)
    journal.put(record("k2", at=20.0))
    journal.put(record("k1", at=10.0))
    assert [r.key for r in journal.records()] == ["k1", "k2"]
    assert Journal(tmp_path / "absent").records() == []


def test_odd_keys_get_safe_file_names(tmp_path: Path) -> None:
    journal = Journal(tmp_path)
    journal.put(record("../../etc/passwd"))
    assert journal.get("../../etc/passwd") is not None
    assert all(p.parent == tmp_path for p in tmp_path.iterdir())


def test_corrupt_record_names_the_file(tmp_path: Path) -> None:
    journal = Journal(tmp_path)
    journal.path_for("ab12").write_text("{not json")
    with pytest.raises(StoreError, match=r"ab12\.json") as caught:
        journal.get("ab12")
    assert caught.value.hint is not None


def test_unwritable_folder_is_a_store_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(StoreError):
        Journal(blocker / "journal").put(record())


def test_a_result_round_trips_and_a_version_1_record_still_loads(tmp_path: Path) -> None:
    journal = Journal(tmp_path)
    result = JobResult(("https://vidgen.x.ai/a.mp4",), "grok-imagine-video", 5, 2.0)
    done = replace(record(), result=result)
    journal.put(done)
    assert journal.get("ab12") == done
    assert json.loads(journal.path_for("ab12").read_text())["version"] == JOURNAL_VERSION
    old = {k: v for k, v in asdict(record()).items() if k != "result"}
    journal.path_for("ab12").write_text(json.dumps({"version": 1, **old}))
    assert journal.get("ab12") == record()  # submitted, no result: resumed by polling


@pytest.mark.parametrize(
    "result",
    [
        [],
        {"urls": ["u"] * 17, "model": "m", "cost_ticks": None, "done_at": 1.0},
        {"urls": ["u" * 9000], "model": "m", "cost_ticks": None, "done_at": 1.0},
        {"urls": ["u"], "model": "m", "cost_ticks": -1, "done_at": 1.0},
        {"urls": ["u"], "model": "m", "cost_ticks": True, "done_at": 1.0},
        {"urls": ["u"], "model": "m", "cost_ticks": None, "done_at": "soon"},
        {"urls": ["u"], "cost_ticks": None, "done_at": 1.0},
    ],
)
def test_a_misshapen_result_makes_the_record_corrupt(tmp_path: Path, result: object) -> None:
    journal = Journal(tmp_path)
    data = {"version": JOURNAL_VERSION, **asdict(record()), "result": result}
    journal.path_for("ab12").write_text(json.dumps(data))
    with pytest.raises(StoreError, match=r"ab12\.json: unreadable journal record"):
        journal.get("ab12")


def test_an_unknown_version_is_corrupt(tmp_path: Path) -> None:
    journal = Journal(tmp_path)
    data = {"version": JOURNAL_VERSION + 1, **asdict(record())}
    journal.path_for("ab12").write_text(json.dumps(data))
    with pytest.raises(StoreError, match="not a version"):
        journal.get("ab12")
