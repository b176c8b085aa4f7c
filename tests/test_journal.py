"""The journal of in-flight async jobs."""

from __future__ import annotations

from pathlib import Path

import pytest

from imaginebuild.errors import StoreError
from imaginebuild.store.journal import JobRecord, Journal


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
