"""The store: read-only content-addressed blobs, verified reads, and a forgiving action cache."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from imaginebuild.errors import CorruptBlob, StoreError
from imaginebuild.provenance import Provenance
from imaginebuild.store.cache import ActionEntry, BlobRef, Store, default_cache_dir


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(tmp_path / "cache")


def _file(folder: Path, data: bytes, name: str = "src.bin") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_bytes(data)
    return path


def test_a_blob_is_named_by_its_content_and_read_only(store: Store, tmp_path: Path) -> None:
    data = b"\x89PNG pretend"
    ref = store.put_file(_file(tmp_path, data), "image/png")
    sha = hashlib.sha256(data).hexdigest()
    assert ref == BlobRef(sha, len(data), "image/png")
    path = store.blob_path(sha)
    assert path == store.folder / "blobs" / sha[:2] / sha
    assert path.read_bytes() == data
    assert path.stat().st_mode & 0o222 == 0
    assert list(store.iter_blobs()) == [sha]


def test_storing_the_same_bytes_twice_keeps_one_blob(store: Store, tmp_path: Path) -> None:
    first = store.put_file(_file(tmp_path, b"same", "a"), "image/png")
    second = store.put_file(_file(tmp_path, b"same", "b"), "image/png", move=True)
    assert first == second
    assert list(store.iter_blobs()) == [first.sha256]
    # the blob was already there: nothing is moved, the source stays untouched
    assert (tmp_path / "b").read_bytes() == b"same"


def test_move_renames_a_temp_file_into_place(store: Store, tmp_path: Path) -> None:
    src = _file(tmp_path, b"moved bytes")
    ref = store.put_file(src, "video/mp4", move=True)
    assert not src.exists()
    assert store.blob_path(ref.sha256).read_bytes() == b"moved bytes"


def test_materialize_copies_atomically_and_verifies(store: Store, tmp_path: Path) -> None:
    ref = store.put_file(_file(tmp_path, b"pixels"), "image/png")
    dest = tmp_path / "out" / "deep" / "a.png"
    store.materialize(ref, dest)
    assert dest.read_bytes() == b"pixels"
    assert os.access(dest, os.W_OK)  # outputs are the user's files, not read-only blobs
    assert [p.name for p in dest.parent.iterdir()] == ["a.png"]  # no temp file left


def test_a_corrupt_blob_is_dropped_and_never_served(store: Store, tmp_path: Path) -> None:
    ref = store.put_file(_file(tmp_path, b"original bytes"), "image/png")
    path = store.blob_path(ref.sha256)
    path.chmod(0o644)
    path.write_bytes(b"original bytez")
    dest = tmp_path / "out.png"
    with pytest.raises(CorruptBlob):
        store.materialize(ref, dest)
    assert not dest.exists()
    assert not path.exists()


def test_verify_blob_detects_a_flipped_byte(store: Store, tmp_path: Path) -> None:
    ref = store.put_file(_file(tmp_path, b"abcdef"), "image/png")
    store.verify_blob(ref.sha256)
    path = store.blob_path(ref.sha256)
    path.chmod(0o644)
    path.write_bytes(b"abcdeF")
    with pytest.raises(CorruptBlob, match="corrupt"):
        store.verify_blob(ref.sha256)
    assert not store.has_blob(ref.sha256)
    with pytest.raises(CorruptBlob, match="missing"):
        store.verify_blob(ref.sha256)


def test_an_action_entry_round_trips(store: Store, tmp_path: Path) -> None:
    ref = store.put_file(_file(tmp_path, b"out"), "image/png")
    entry = ActionEntry("k" * 64, (ref,), Provenance.from_json({"cost_usd": "0.02"}), ((ref,),))
    store.put_action(entry)
    assert store.get_action("k" * 64) == entry
    assert store.action_keys() == ["k" * 64]
    store.delete_action("k" * 64)
    assert store.get_action("k" * 64) is None


def test_an_entry_is_refused_before_its_blobs(store: Store) -> None:
    missing = BlobRef("0" * 64, 3, "image/png")
    with pytest.raises(StoreError, match="blobs are missing"):
        store.put_action(ActionEntry("k", (missing,)))
    assert store.get_action("k") is None


def test_an_entry_whose_blob_vanished_is_a_miss(store: Store, tmp_path: Path) -> None:
    ref = store.put_file(_file(tmp_path, b"out"), "image/png")
    store.put_action(ActionEntry("k", (ref,)))
    store.delete_blob(ref.sha256)
    assert store.get_action("k") is None


@pytest.mark.parametrize(
    "raw",
    [
        "{not json",
        '"a string"',
        '{"v": 99, "key": "k", "outputs": []}',
        '{"v": 1, "key": "k", "outputs": [{"sha256": "x"}]}',
        '{"v": 1, "key": "k", "outputs": 7}',
    ],
)
def test_a_garbage_action_entry_is_dropped_as_a_miss(store: Store, raw: str) -> None:
    store._cache().set("k", raw)
    assert store.get_action("k") is None
    assert store.action_keys() == []


def test_an_entry_filed_under_another_key_is_a_miss(store: Store, tmp_path: Path) -> None:
    ref = store.put_file(_file(tmp_path, b"out"), "image/png")
    store.put_action(ActionEntry("real", (ref,)))
    store._cache().set("alias", store._cache().get("real"))
    assert store.get_action("alias") is None


def test_the_cache_folder_comes_from_the_environment(tmp_path: Path) -> None:
    assert default_cache_dir(tmp_path, {}) == tmp_path / ".imaginebuild" / "cache"
    override = tmp_path / "shared"
    assert default_cache_dir(tmp_path, {"IMAGINEBUILD_CACHE_DIR": str(override)}) == override


def test_an_unwritable_cache_is_a_store_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    store = Store(blocker / "cache")
    with pytest.raises(StoreError, match="cache"):
        store.put_file(_file(tmp_path / "src", b"x"), "image/png")
