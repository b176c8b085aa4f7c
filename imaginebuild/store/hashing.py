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


# An entry is kept as the JSON list it is stored as:
#   [size, mtime_ns, ctime_ns, inode, sha256, hashed_at, ours]
# where `ours` means imaginebuild wrote the file itself, so no racy write can hide
# behind its stat tuple. Lists, not objects: a no-op over 10,000 files reads them
# all, and building an object per entry was most of its cost.
Entry = list[Any]


def _vouches(entry: Entry, st: os.stat_result) -> bool:
    """Whether `entry` still stands for the file whose stat is `st` (False if malformed)."""
    try:
        return (
            len(entry) == 7
            and entry[0] == st.st_size
            and entry[1] == st.st_mtime_ns
            and entry[2] == st.st_ctime_ns
            and entry[3] == st.st_ino
            and isinstance(entry[4], str)
            and (entry[6] is True or entry[5] - st.st_mtime_ns / 1e9 > RACY_SECONDS)
        )
    except TypeError:
        return False


class StatCache:
    """File → sha256, remembered by stat tuple across runs in one small JSON file."""

    def __init__(self, path: Path | None) -> None:
        self._path = path
        self._entries: dict[str, Entry] = {}
        self._dirty = False
        if path is not None:
            self._entries = _read(path)

    def sha256(self, file: str | os.PathLike[str]) -> str:
        """The sha256 of `file`, from the cache when its stat tuple is unchanged."""
        name = os.fspath(file)
        st = os.stat(name)  # noqa: PTH116 -- no Path per file: 10,000 of them cost ~30 ms
        entry = self._entries.get(name)
        if entry is not None and _vouches(entry, st):
            return str(entry[4])
        digest = sha256_file(Path(name))
        self._entries[name] = [*_stat_tuple(st), digest, time.time(), False]
        self._dirty = True
        return digest

    def remember(self, file: Path, digest: str) -> None:
        """Vouch for a file imaginebuild just wrote: its stat tuple now stands for `digest`.

        `digest` may differ from the file's own hash (a signed copy of a blob).
        """
        self._entries[str(file)] = [*_stat_tuple(file.stat()), digest, time.time(), True]
        self._dirty = True

    def save(self) -> None:
        """Write the cache back if it changed; a failure to save only costs rehashing."""
        if self._path is None or not self._dirty:
            return
        data = {"version": STAT_CACHE_VERSION, "files": dict(sorted(self._entries.items()))}
        with contextlib.suppress(OSError):
            atomic_write_bytes(self._path, json.dumps(data).encode())
        self._dirty = False


def _stat_tuple(st: os.stat_result) -> tuple[int, int, int, int]:
    return (st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino)


def _read(path: Path) -> dict[str, Entry]:
    """Load the cache; anything unreadable or of another version counts as empty (a
    malformed entry vouches for nothing and is replaced when its file is hashed)."""
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
