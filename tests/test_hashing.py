"""The stat cache: unchanged files are not read again, racy and malformed entries are."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from imaginebuild.store.hashing import RACY_SECONDS, STAT_CACHE_VERSION, StatCache, sha256_file


def _cache_with(path: Path, file: Path, sha: str, hashed_at: float) -> StatCache:
    """A stat cache file holding one entry for `file` with its current stat tuple."""
    st = file.stat()
    entry = [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, sha, hashed_at, False]
    data = {"version": STAT_CACHE_VERSION, "files": {str(file): entry}}
    path.write_text(json.dumps(data))
    return StatCache(path)


def test_sha256_file_is_hashlib_sha256(tmp_path: Path) -> None:
    file = tmp_path / "f.bin"
    file.write_bytes(os.urandom(3 * (1 << 20) + 17))
    assert sha256_file(file) == hashlib.sha256(file.read_bytes()).hexdigest()


def test_an_unchanged_settled_file_is_answered_from_the_cache(tmp_path: Path) -> None:
    file = tmp_path / "f.bin"
    file.write_bytes(b"payload")
    settled = file.stat().st_mtime_ns / 1e9 + RACY_SECONDS + 1
    cache = _cache_with(tmp_path / "cache.json", file, "a" * 64, settled)
    assert cache.sha256(file) == "a" * 64  # not read: the stat tuple vouches for it
    assert cache.sha256(str(file)) == "a" * 64  # a plain string names the same entry


def test_a_racy_entry_is_hashed_again(tmp_path: Path) -> None:
    file = tmp_path / "f.bin"
    file.write_bytes(b"payload")
    racy = file.stat().st_mtime_ns / 1e9  # hashed in the same tick as the last write
    cache = _cache_with(tmp_path / "cache.json", file, "a" * 64, racy)
    assert cache.sha256(file) == hashlib.sha256(b"payload").hexdigest()


def test_a_changed_file_is_hashed_again(tmp_path: Path) -> None:
    file = tmp_path / "f.bin"
    file.write_bytes(b"payload")
    cache = _cache_with(tmp_path / "cache.json", file, "a" * 64, 0.0)
    file.write_bytes(b"another")
    assert cache.sha256(file) == hashlib.sha256(b"another").hexdigest()


def test_malformed_entries_count_as_missing_and_are_mended(tmp_path: Path) -> None:
    file = tmp_path / "f.bin"
    file.write_bytes(b"payload")
    path = tmp_path / "cache.json"
    for entry in ([1, 2], ["x", 1, 2, 3, "s", 0.0, False], {"a": 1}, None):
        path.write_text(json.dumps({"version": STAT_CACHE_VERSION, "files": {str(file): entry}}))
        cache = StatCache(path)
        assert cache.sha256(file) == hashlib.sha256(b"payload").hexdigest()
        cache.save()
        saved = json.loads(path.read_text())["files"][str(file)]
        assert saved[4] == hashlib.sha256(b"payload").hexdigest()
