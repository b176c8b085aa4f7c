"""The append-only cost ledger `.imaginebuild/ledger.jsonl` and its summaries.

One JSON object per line, one line per call that was (or may have been)
billed, appended and fsynced as each call finishes (format version 1; readers
skip lines they cannot parse):

    {"v": 1, "time": "2026-11-24T10:15:02.481Z", "run_id": "r-20261124-101500-3f2a",
     "asset": "london", "key": "9f2c…", "provider": "xai", "model": "grok-imagine-image",
     "endpoint": "/v1/images/generations", "request_id": "4b2cd27e-…" | null,
     "ticks": 800000000, "estimated": false, "retries": 0, "duration_s": 3.214,
     "billing": "billed" | "maybe_billed"}

- `time`: when the call finished, ISO-8601 in UTC;
- `ticks`: the cost in USD ticks (1 USD = 10**10) as the API reported it, or the
  estimate when it reported none, in which case `estimated` is true;
- `retries`: attempts beyond the first; `duration_s`: wall time of the call;
- `billing`: `billed` when the API answered with the call's result or bill,
  `maybe_billed` when it may have charged without saying so (an answer cut off
  after the request was sent, a timeout after a POST); `ticks` is then the
  estimate. A line without the field (written before it existed) is billed.

One line per request id: `append` skips a line whose request id the ledger
already holds, except that a billed line settles an earlier maybe-billed one
of the same id; totals (`counted`) take each request id once, its billed line
first. Lines without a request id (a call that never got one) are all kept.

Each line is written with a single `write` on an `O_APPEND` descriptor, so
concurrent writers never interleave inside a line. A line torn by a crash is
skipped (and counted) by readers, and the next append starts on a fresh line.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from datetime import date, datetime, timezone
from pathlib import Path

from imaginebuild.atomic import fsync_dir
from imaginebuild.errors import StoreError, UsageError
from imaginebuild.money import Billing, format_usd, usd_json
from imaginebuild.untrusted import Untrusted, load_json, read_capped

LEDGER_VERSION = 1


GROUPINGS = ("asset", "model", "day", "run", "provider")


def format_time(unix_time: float) -> str:
    """A Unix time as ISO-8601 UTC with milliseconds (`2026-11-24T10:15:02.481Z`)."""
    moment = datetime.fromtimestamp(unix_time, tz=timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _parse_time(text: str) -> datetime:
    """An ISO-8601 time as an aware UTC datetime (a missing offset means UTC)."""
    moment = datetime.fromisoformat(text[:-1] + "+00:00" if text.endswith("Z") else text)
    if moment.tzinfo is None:
        return moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc)


LEDGER_CAP = 1 << 30  # a ledger line is ~300 bytes: millions of calls


@dataclass(frozen=True)
class LedgerEntry:
    """One billed (or maybe billed) call, as one line of the ledger."""

    time: str  # ISO-8601 UTC
    run_id: str
    asset: str
    key: str
    provider: str
    model: str
    endpoint: str
    request_id: str | None
    ticks: int
    estimated: bool = False
    retries: int = 0
    duration_s: float = 0.0
    billing: Billing = Billing.BILLED

    @property
    def day(self) -> date:
        """The UTC calendar day of the call."""
        return _parse_time(self.time).date()

    def to_line(self) -> bytes:
        """The entry as one JSON line (with the format version), newline included."""
        record = {"v": LEDGER_VERSION, **asdict(self), "billing": self.billing.value}
        return (json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n").encode()

    @classmethod
    def from_json(cls, record: object) -> LedgerEntry:
        """Parse one decoded line; ValueError when it is not a version-1 entry."""
        if not isinstance(record, dict) or record.get("v") != LEDGER_VERSION:
            raise ValueError("not a version-1 ledger entry")
        strings = ("time", "run_id", "asset", "key", "provider", "model", "endpoint")
        fields = {name: record.get(name) for name in strings}
        if not all(isinstance(v, str) for v in fields.values()):
            raise ValueError("a text field is missing")
        ticks, retries = record.get("ticks"), record.get("retries", 0)
        request_id, duration = record.get("request_id"), record.get("duration_s", 0.0)
        estimated = record.get("estimated", False)
        if not (_is_int(ticks) and _is_int(retries) and isinstance(estimated, bool)):
            raise ValueError("ticks, retries or estimated has the wrong type")
        if not (request_id is None or isinstance(request_id, str)):
            raise ValueError("request_id must be a string or null")
        if isinstance(duration, bool) or not isinstance(duration, (int, float)):
            raise ValueError("duration_s must be a number")
        billing = Billing(record.get("billing", Billing.BILLED.value))  # ValueError if unknown
        _parse_time(str(fields["time"]))
        return cls(
            **{k: str(v) for k, v in fields.items()},
            request_id=request_id,
            ticks=int(str(ticks)),
            estimated=estimated,
            retries=int(str(retries)),
            duration_s=float(duration),
            billing=billing,
        )


def _is_int(value: object) -> bool:
    """Whether `value` is a JSON integer (bools are not)."""
    return isinstance(value, int) and not isinstance(value, bool)


class Ledger:
    """The ledger file: appends are atomic per line and durable; reads tolerate torn lines."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.skipped = 0  # lines the last `entries()` could not parse

    def append(self, entry: LedgerEntry) -> bool:
        """Append one entry and fsync it; False (nothing written) when the ledger already
        holds its request id (see the module docstring). Raises StoreError when the file
        cannot be read or written."""
        if entry.request_id is not None and _superfluous(entry, self.entries()):
            return False
        line = entry.to_line()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            created = not self.path.exists()
            fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                size = os.fstat(fd).st_size
                if size and os.pread(fd, 1, size - 1) != b"\n":
                    line = b"\n" + line  # a crash tore the last line: never glue onto it
                _write_all(fd, line)
                os.fsync(fd)
            finally:
                os.close(fd)
            if created:
                fsync_dir(self.path.parent)
        except OSError as exc:
            raise StoreError(f"{self.path}: cannot append to the cost ledger: {exc}") from exc
        return True

    @property
    def pending(self) -> Ledger:
        """The sibling `<name>-pending.jsonl`: lines billed while this ledger could not be
        written, waiting to be appended (they count like the ledger's own lines)."""
        return Ledger(self.path.with_name(f"{self.path.stem}-pending{self.path.suffix}"))

    def all_entries(self) -> list[LedgerEntry]:
        """Every readable entry, then those still waiting in the pending file (totals and
        budgets count both)."""
        return [*self.entries(), *self.pending.entries()]

    def entries(self) -> list[LedgerEntry]:
        """Every readable entry in file order; unreadable lines are skipped and counted."""
        try:
            data = read_capped(self.path, LEDGER_CAP)
        except FileNotFoundError:
            self.skipped = 0
            return []
        except (OSError, Untrusted) as exc:
            raise StoreError(f"{self.path}: cannot read the cost ledger: {exc}") from exc
        found: list[LedgerEntry] = []
        skipped = 0
        # Bytes after the last newline are an append still being written (a reader may
        # see part of one `write`), or one a crash cut short, which the next append
        # closes with a newline and which is then counted as unreadable.
        for raw in data.split(b"\n")[:-1]:
            if not raw.strip():
                continue
            try:
                found.append(LedgerEntry.from_json(load_json(raw)))
            except (ValueError, TypeError, KeyError, AttributeError, OverflowError):
                skipped += 1
        self.skipped = skipped
        return found


def _superfluous(entry: LedgerEntry, existing: Iterable[LedgerEntry]) -> bool:
    """Whether `existing` already accounts for `entry`'s request id: a billed line does;
    a maybe-billed line does unless `entry` is the billed line that settles it."""
    same = [e for e in existing if e.request_id == entry.request_id]
    if entry.billing is Billing.MAYBE_BILLED:
        return bool(same)
    return any(e.billing is Billing.BILLED for e in same)


def counted(entries: Iterable[LedgerEntry]) -> list[LedgerEntry]:
    """The entries that count, in order: each request id once (its first billed line, else
    its first maybe-billed line); entries without a request id all count."""
    every = list(entries)
    chosen: dict[str, int] = {}  # request id -> index of the line that counts
    for index, entry in enumerate(every):
        if entry.request_id is None:
            continue
        held = chosen.get(entry.request_id)
        if held is None or (
            every[held].billing is Billing.MAYBE_BILLED and entry.billing is Billing.BILLED
        ):
            chosen[entry.request_id] = index
    keep = set(chosen.values())
    return [e for i, e in enumerate(every) if e.request_id is None or i in keep]


def _write_all(fd: int, data: bytes) -> None:
    """Write `data`: one `write` call, continued only if the OS wrote it short."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


# ---------------------------------------------------------------- summaries


@dataclass(frozen=True)
class CostRow:
    """Spend of one group: calls, total ticks, how many of those ticks were estimates and
    how many may have been billed (those are counted in `ticks`, as budgets count them)."""

    group: str
    calls: int
    ticks: int
    estimated_ticks: int
    maybe_billed_ticks: int = 0

    def to_json(self) -> dict[str, object]:
        """A JSON-ready dict; `usd` is an exact decimal string."""
        return {
            "group": self.group,
            "calls": self.calls,
            "ticks": self.ticks,
            "usd": usd_json(self.ticks),
            "estimated_ticks": self.estimated_ticks,
            "maybe_billed_ticks": self.maybe_billed_ticks,
        }

    def format(self) -> str:
        """One human line: `group  calls  $total` (with the estimated part if any)."""
        notes = [
            f"{format_usd(ticks)} {what}"
            for ticks, what in (
                (self.estimated_ticks, "estimated"),
                (self.maybe_billed_ticks, "may have been billed"),
            )
            if ticks
        ]
        note = f" (of which {', '.join(notes)})" if notes else ""
        return f"{self.group}: {self.calls} calls, {format_usd(self.ticks)}{note}"


@dataclass(frozen=True)
class CostSummary:
    """Spend grouped one way, with the total over every row, and the calls that may
    have been billed listed on their own (they are in the rows and the total too)."""

    by: str
    since: date | None
    rows: tuple[CostRow, ...]
    total: CostRow
    maybe_billed: tuple[LedgerEntry, ...] = ()
    duplicates: int = 0  # lines not counted: their request id was already accounted for

    def to_json(self) -> dict[str, object]:
        """A JSON-ready dict for `cost --json`."""
        return {
            "by": self.by,
            "since": None if self.since is None else self.since.isoformat(),
            "rows": [row.to_json() for row in self.rows],
            "total": self.total.to_json(),
            "billed_usd": usd_json(self.total.ticks - self.total.maybe_billed_ticks),
            "maybe_billed_usd": usd_json(self.total.maybe_billed_ticks),
            "maybe_billed": [
                {
                    "time": e.time,
                    "asset": e.asset,
                    "model": e.model,
                    "endpoint": e.endpoint,
                    "request_id": e.request_id,
                    "ticks": e.ticks,
                    "usd": usd_json(e.ticks),
                }
                for e in self.maybe_billed
            ],
            "duplicate_lines": self.duplicates,
        }


def _group_of(entry: LedgerEntry, by: str) -> str:
    """The value of `entry` that `by` groups on."""
    if by == "day":
        return entry.day.isoformat()
    if by == "run":
        return entry.run_id
    return str(getattr(entry, by))


def summarize(entries: Iterable[LedgerEntry], by: str, since: date | None = None) -> CostSummary:
    """Totals per asset, model, day, run or provider of the entries on or after `since` (UTC).

    Days and runs are listed in time order; other groups by spend, largest first.
    """
    if by not in GROUPINGS:
        raise UsageError(f"cannot group costs by '{by}'; choose one of: {', '.join(GROUPINGS)}")
    every = list(entries)
    unique = counted(every)
    kept = sorted(
        (e for e in unique if since is None or e.day >= since), key=lambda e: _parse_time(e.time)
    )
    groups: dict[str, list[LedgerEntry]] = {}
    for entry in kept:
        groups.setdefault(_group_of(entry, by), []).append(entry)
    rows = [_row(name, members) for name, members in groups.items()]
    if by not in ("day", "run"):
        rows.sort(key=lambda r: (-r.ticks, r.group))
    return CostSummary(
        by=by,
        since=since,
        rows=tuple(rows),
        total=_row("total", kept),
        maybe_billed=tuple(e for e in kept if e.billing is Billing.MAYBE_BILLED),
        duplicates=len(every) - len(unique),
    )


def _row(group: str, entries: list[LedgerEntry]) -> CostRow:
    """Sum one group's entries."""
    return CostRow(
        group=group,
        calls=len(entries),
        ticks=sum(e.ticks for e in entries),
        estimated_ticks=sum(e.ticks for e in entries if e.estimated),
        maybe_billed_ticks=sum(e.ticks for e in entries if e.billing is Billing.MAYBE_BILLED),
    )
