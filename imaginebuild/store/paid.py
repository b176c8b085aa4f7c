"""Paid results waiting to be stored: what a billed call returned, kept by action key.

    <cache>/paid/<action key>/
        0.png, 1.png, …      the outputs in order (hard links to the work files: no copy,
                             no extra space, so a full disk can still keep them)
        meta.json            {"v": 1, "media_types": [...], "record": {...}, "reason": "..."}

A provider's outputs are linked here the moment they arrive, before they are
checked or stored; a successful store removes the entry. When storing fails (a
full disk, an unwritable folder, a crash) the entry stays, and the next run
stores it without a call. Entries appear and disappear by a rename, so a
reader sees a whole entry or none.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from imaginebuild.atomic import atomic_write_bytes, fsync_dir
from imaginebuild.provenance import Provenance

PAID_VERSION = 1


@dataclass(frozen=True)
class PaidResult:
    """A kept result: its output files in order, their media types, the provenance record
    of the call that paid for them, and why it was not stored."""

    key: str
    files: tuple[Path, ...]
    media_types: tuple[str, ...]
    record: Provenance
    reason: str


class PaidResults:
    """The `paid/` folder of the cache (on the work files' filesystem)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def keep(
        self,
        key: str,
        files: Sequence[tuple[Path, str]],
        record: Provenance,
        reason: str,
    ) -> None:
        """Link `files` (path, media type) under `key` with the record; OSError if the
        file system refuses (the caller still holds the work files)."""
        final = self._entry(key)
        staging = self.folder / f".{key}.{os.getpid()}.tmp"
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        try:
            for index, (path, _) in enumerate(files):
                os.link(path, staging / f"{index}{path.suffix}")
            meta = {
                "v": PAID_VERSION,
                "media_types": [media for _, media in files],
                "names": [f"{i}{p.suffix}" for i, (p, _) in enumerate(files)],
                "record": record.to_json(),
                "reason": reason,
            }
            atomic_write_bytes(staging / "meta.json", json.dumps(meta, sort_keys=True).encode())
            shutil.rmtree(final, ignore_errors=True)
            os.replace(staging, final)
            fsync_dir(self.folder)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise

    def note(self, key: str, reason: str) -> None:
        """Say why `key`'s kept result was not stored (best effort)."""
        meta_path = self._entry(key) / "meta.json"
        with contextlib.suppress(OSError, ValueError):
            meta = json.loads(meta_path.read_bytes())
            meta["reason"] = reason
            atomic_write_bytes(meta_path, json.dumps(meta, sort_keys=True).encode())

    def get(self, key: str) -> PaidResult | None:
        """The kept result of `key`, or None (also for an entry that does not check out)."""
        entry = self._entry(key)
        try:
            meta = json.loads((entry / "meta.json").read_bytes())
        except (OSError, ValueError):
            return None
        if not isinstance(meta, dict) or meta.get("v") != PAID_VERSION:
            return None
        names, media, record = meta.get("names"), meta.get("media_types"), meta.get("record")
        if not (
            isinstance(names, list)
            and isinstance(media, list)
            and len(names) == len(media)
            and isinstance(record, dict)
            and all(isinstance(n, str) and "/" not in n and n for n in names)
        ):
            return None
        files = tuple(entry / n for n in names)
        if not names or not all(f.is_file() for f in files):
            return None
        return PaidResult(
            key,
            files,
            tuple(str(m) for m in media),
            Provenance.from_json(record),
            str(meta.get("reason", "")),
        )

    def discard(self, key: str) -> None:
        """Forget `key`'s kept result (it was stored, or a new take was paid for)."""
        entry = self._entry(key)
        if not entry.exists():
            return
        doomed = self.folder / f".{key}.{os.getpid()}.gone"
        with contextlib.suppress(OSError):
            os.replace(entry, doomed)
            shutil.rmtree(doomed, ignore_errors=True)

    def keys(self) -> list[str]:
        """Every key with a kept result."""
        if not self.folder.is_dir():
            return []
        return sorted(p.name for p in self.folder.iterdir() if not p.name.startswith("."))

    def _entry(self, key: str) -> Path:
        if not key or "/" in key or key.startswith("."):
            raise ValueError(f"not an action key: {key!r}")
        return self.folder / key
