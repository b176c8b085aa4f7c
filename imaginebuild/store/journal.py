"""The journal of in-flight async jobs: one small JSON file per action key.

A job's request id is written (atomically, fsynced) before its first poll, so a
run that dies while a video renders resumes polling the same job next time
instead of paying for a new one. When a poll finds the job done, the record is
rewritten with the job's result (its temporary result URLs and its bill) before
the download starts, so a run whose download was cut off fetches the result
again without polling. The engine removes the record once the outputs are
safely stored.

    submitted ──poll: done──▶ done, result journaled ──outputs stored──▶ removed

Version 1 records (written before results were journaled) still load: they are
`submitted` records, resumed by polling. Everything read back is untrusted: the
result's URLs are checked by the provider before it fetches them.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import tempfile
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

from imaginebuild.atomic import fsync_dir
from imaginebuild.errors import StoreError
from imaginebuild.untrusted import ENTRY_CAP, Untrusted, load_json, read_capped

JOURNAL_VERSION = 2
READABLE_VERSIONS = frozenset({1, JOURNAL_VERSION})  # 1: no `result` field
_SAFE_NAME = re.compile(r"^[A-Za-z0-9_-]{1,128}$")
MAX_RESULT_URLS = 16  # xAI makes at most 10 images per request
MAX_URL_CHARS = 8192


@dataclass(frozen=True)
class JobResult:
    """What the poll that found a job done said: where its outputs wait (temporary URLs,
    in output order) and what the job was billed."""

    urls: tuple[str, ...]
    model: str
    cost_ticks: int | None  # as the API reported it; None when it reported none
    done_at: float  # Unix time of that poll


@dataclass(frozen=True)
class JobRecord:
    """One submitted async job: which action it serves and how to find it again; once a
    poll found it done, its result too."""

    key: str
    asset: str
    request_id: str
    endpoint: str
    model: str
    submitted_at: float
    result: JobResult | None = None


def encode_record(record: JobRecord) -> bytes:
    """The on-disk JSON form of a record (versioned, sorted keys)."""
    data = {"version": JOURNAL_VERSION, **asdict(record)}
    return (json.dumps(data, sort_keys=True, indent=1) + "\n").encode()


def decode_record(raw: bytes) -> JobRecord:
    """Parse `encode_record` output (or a version 1 record); raises ValueError when it is
    not one."""
    data = load_json(raw)  # Untrusted is a ValueError
    if not isinstance(data, dict) or data.get("version") not in READABLE_VERSIONS:
        raise ValueError(f"not a version {JOURNAL_VERSION} journal record")
    try:
        return JobRecord(
            key=str(data["key"]),
            asset=str(data["asset"]),
            request_id=str(data["request_id"]),
            endpoint=str(data["endpoint"]),
            model=str(data["model"]),
            submitted_at=float(data["submitted_at"]),
            result=_decode_result(data.get("result")),
        )
    except (KeyError, TypeError) as exc:
        raise ValueError(f"journal record lacks a field: {exc}") from None


def _decode_result(value: object) -> JobResult | None:
    """The `result` of a record, checked for shape (not for what its URLs point at)."""
    if value is None:
        return None
    if not isinstance(value, dict):
        raise ValueError("its result is not an object")
    urls, ticks = value.get("urls"), value.get("cost_ticks")
    if not isinstance(urls, list) or not 0 < len(urls) <= MAX_RESULT_URLS:
        raise ValueError(f"its result needs 1 to {MAX_RESULT_URLS} URLs")
    if not all(isinstance(u, str) and 0 < len(u) <= MAX_URL_CHARS for u in urls):
        raise ValueError("its result URLs are not all strings of a URL's length")
    if ticks is not None and (not isinstance(ticks, int) or isinstance(ticks, bool) or ticks < 0):
        raise ValueError("its result's cost_ticks is not a count of ticks")
    done_at = value["done_at"]
    if not isinstance(done_at, int | float) or isinstance(done_at, bool):
        raise ValueError("its result's done_at is not a time")
    return JobResult(tuple(urls), str(value["model"]), ticks, float(done_at))


def _file_name(key: str) -> str:
    """A safe file name for a key (action keys are hex; anything else is hashed)."""
    if _SAFE_NAME.match(key):
        return f"{key}.json"
    return f"h-{hashlib.sha256(key.encode()).hexdigest()}.json"


class Journal:
    """In-flight async jobs of a project, kept in `folder` (created on first write)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def path_for(self, key: str) -> Path:
        """The file that holds the record of `key`."""
        return self.folder / _file_name(key)

    def get(self, key: str) -> JobRecord | None:
        """The record for an action key, or None when no job is in flight for it."""
        return self._read(self.path_for(key))

    def put(self, record: JobRecord) -> None:
        """Write a record atomically and durably (temp file, fsync, rename, fsync dir)."""
        target = self.path_for(record.key)
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".json", dir=self.folder)
            try:
                with os.fdopen(fd, "wb") as handle:
                    handle.write(encode_record(record))
                    handle.flush()
                    os.fsync(handle.fileno())
                Path(tmp).replace(target)
            except BaseException:
                with contextlib.suppress(OSError):
                    Path(tmp).unlink()
                raise
            fsync_dir(self.folder)
        except OSError as exc:
            raise StoreError(f"{target}: cannot write journal record: {exc.strerror}") from exc

    def remove(self, key: str) -> None:
        """Forget the job of an action key (no error when there is none)."""
        path = self.path_for(key)
        try:
            path.unlink(missing_ok=True)
        except OSError as exc:
            raise StoreError(f"{path}: cannot remove journal record: {exc.strerror}") from exc

    def records(self) -> list[JobRecord]:
        """Every record in the journal, oldest submission first."""
        try:
            paths = sorted(self.folder.glob("*.json"))
        except OSError as exc:
            raise StoreError(f"{self.folder}: cannot list the journal: {exc.strerror}") from exc
        found = [r for r in map(self._read, paths) if r is not None]
        return sorted(found, key=lambda r: (r.submitted_at, r.key))

    def __iter__(self) -> Iterator[JobRecord]:
        return iter(self.records())

    @staticmethod
    def _read(path: Path) -> JobRecord | None:
        try:
            raw = read_capped(path, ENTRY_CAP)
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise StoreError(f"{path}: cannot read journal record: {exc.strerror}") from exc
        except Untrusted as exc:
            raise StoreError(
                f"unreadable journal record ({exc})",
                hint="delete the file; the job it named will be submitted again",
            ) from None
        try:
            return decode_record(raw)
        except ValueError as exc:
            raise StoreError(
                f"{path}: unreadable journal record ({exc})",
                hint="delete the file; the job it named will be submitted again",
            ) from None
