"""Content hashing of files, with a stat cache so unchanged files are not read again.

The stat cache maps an absolute path to (size, mtime_ns, ctime_ns, inode) and
the sha256 seen for them. A file whose stat tuple is unchanged is trusted
unless it was modified within `RACY_SECONDS` of being hashed (the "racy git"
problem: a write in the same timestamp tick as the hash would go unseen).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from imaginebuild.atomic import atomic_write_bytes

CHUNK = 1 << 20
RACY_SECONDS = 2.0
STAT_CACHE_VERSION = 2


def sha256_file(path: Path) -> str:
    """The hex sha256 of a file's bytes, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


@dataclass(frozen=True)
class _Entry:
    size: int
    mtime_ns: int
    ctime_ns: int
    inode: int
    sha256: str
    hashed_at: float
    ours: bool = False  # written by imaginebuild itself, so no racy write can hide behind it


def _stat_tuple(st: os.stat_result) -> tuple[int, int, int, int]:
    return (st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino)


class StatCache:
    """File → sha256, remembered by stat tuple across runs in one small JSON file."""

    def __init__(self, path: Path | None) -> None:
        self._path = path
        # Entries stay as read (lists) until asked for: a no-op of 10,000 files reads
        # them all, but building each one up front would be most of its cost.
        self._entries: dict[str, _Entry | list[Any]] = {}
        self._dirty = False
        if path is not None:
            self._entries = _read(path)

    def _entry(self, name: str) -> _Entry | None:
        """The entry for `name`, parsed on first use (a malformed one counts as none)."""
        entry = self._entries.get(name)
        if entry is None or isinstance(entry, _Entry):
            return entry
        try:
            v = entry
            parsed = _Entry(
                int(v[0]), int(v[1]), int(v[2]), int(v[3]), str(v[4]), float(v[5]), bool(v[6])
            )
        except (ValueError, TypeError, IndexError):
            del self._entries[name]
            return None
        self._entries[name] = parsed
        return parsed

    def sha256(self, file: str | os.PathLike[str]) -> str:
        """The sha256 of `file`, from the cache when its stat tuple is unchanged."""
        name = os.fspath(file)
        st = os.stat(name)  # noqa: PTH116 -- no Path per file: 10,000 of them cost ~30 ms
        entry = self._entry(name)
        now = time.time()
        if (
            entry is not None
            and (entry.size, entry.mtime_ns, entry.ctime_ns, entry.inode) == _stat_tuple(st)
            and (entry.ours or entry.hashed_at - st.st_mtime_ns / 1e9 > RACY_SECONDS)
        ):
            return entry.sha256
        digest = sha256_file(Path(name))
        size, mtime_ns, ctime_ns, inode = _stat_tuple(st)
        self._entries[name] = _Entry(size, mtime_ns, ctime_ns, inode, digest, now)
        self._dirty = True
        return digest

    def remember(self, file: Path, digest: str) -> None:
        """Vouch for a file imaginebuild just wrote: its stat tuple now stands for `digest`.

        `digest` may differ from the file's own hash (a signed copy of a blob).
        """
        size, mtime_ns, ctime_ns, inode = _stat_tuple(file.stat())
        self._entries[str(file)] = _Entry(
            size, mtime_ns, ctime_ns, inode, digest, time.time(), ours=True
        )
        self._dirty = True

    def save(self) -> None:
        """Write the cache back if it changed; a failure to save only costs rehashing."""
        if self._path is None or not self._dirty:
            return
        data = {
            "version": STAT_CACHE_VERSION,
            "files": {
                name: e
                if isinstance(e, list)
                else [e.size, e.mtime_ns, e.ctime_ns, e.inode, e.sha256, e.hashed_at, e.ours]
                for name, e in sorted(self._entries.items())
            },
        }
        with contextlib.suppress(OSError):
            atomic_write_bytes(self._path, json.dumps(data).encode())
        self._dirty = False


def _read(path: Path) -> dict[str, _Entry | list[Any]]:
    """Load the cache as raw entries; anything unreadable or of another version counts as
    empty (a malformed entry is dropped when first asked for)."""
    try:
        data = json.loads(path.read_bytes())
        if not isinstance(data, dict) or data.get("version") != STAT_CACHE_VERSION:
            return {}
        files = data["files"]
        if not isinstance(files, dict):
            return {}
        return {str(name): v for name, v in files.items() if isinstance(v, list)}
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return {}
