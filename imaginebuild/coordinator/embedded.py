"""The embedded coordinator: one SQLite file shared by every imaginebuild process of a machine.

Every operation is one `BEGIN IMMEDIATE` transaction (the database's write lock),
so slots, caps and reservations are exact across processes without a server.
Rates are a token bucket of one token per model (grants evenly spaced by
`seconds / requests`, so no window of `seconds` holds more than `requests`),
kept as the time the next slot is free; every grant is logged in the same
transaction, with the same timestamp.
"""

from __future__ import annotations

import json
import sqlite3
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

from imaginebuild.coordinator.base import (
    GRANT_LOG_KEEP_NS,
    Grant,
    ModelUsage,
    RateLimit,
    Reservation,
    ReservationRequest,
    RunnerId,
    RunnerUsage,
    SlotAttempt,
    TeamCaps,
    TeamStatus,
    cap_refusal,
    utc_day,
)
from imaginebuild.errors import CoordinatorUnavailable, TeamCapReached

SCHEMA_VERSION = "1"
_T = TypeVar("_T")
BUSY_TIMEOUT_S = 30.0

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (k TEXT PRIMARY KEY, v TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS rates (model TEXT PRIMARY KEY, rate TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS buckets (model TEXT PRIMARY KEY, next_ns INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS grants (t_ns INTEGER NOT NULL, model TEXT NOT NULL,
                                   runner TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS grants_by_model ON grants (model, t_ns);
CREATE TABLE IF NOT EXISTS runners (id TEXT PRIMARY KEY, deadline_ns INTEGER NOT NULL,
                                    seen_ns INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS reservations (id TEXT PRIMARY KEY, runner TEXT NOT NULL,
    asset TEXT NOT NULL, model TEXT NOT NULL, key TEXT NOT NULL, ticks INTEGER NOT NULL,
    submitted INTEGER NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS spend (day TEXT PRIMARY KEY, ticks INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS charged (id TEXT PRIMARY KEY, ticks INTEGER NOT NULL);
"""


class EmbeddedCoordinator:
    """The coordinator of one machine, in a SQLite file (see the module docstring)."""

    def __init__(
        self, path: Path, *, team: str = "default", clock_ns: Callable[[], int] = time.time_ns
    ) -> None:
        self.path = path
        self.team = team
        self.backend = f"embedded {path}"
        self._clock = clock_ns
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(
                path, timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False
            )  # one run's heartbeat thread shares it, under the session's lock
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            with self._write() as db:
                for statement in _SCHEMA.split(";"):
                    if statement.strip():
                        db.execute(statement)
                found = db.execute("SELECT v FROM meta WHERE k = 'version'").fetchone()
                if found is None:
                    db.execute("INSERT INTO meta VALUES ('version', ?)", (SCHEMA_VERSION,))
                elif found[0] != SCHEMA_VERSION:
                    raise CoordinatorUnavailable(
                        f"{path}: coordinator file of unknown version {found[0]!r}",
                        hint="it was written by another imaginebuild; move it away to start afresh",
                    )
        except (OSError, sqlite3.Error) as exc:
            raise CoordinatorUnavailable(
                f"the team coordinator at {path} cannot be opened: {exc}",
                hint="check the folder's permissions, or run with --no-coordinator "
                "(local limits only)",
            ) from None

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction: BEGIN IMMEDIATE … COMMIT (ROLLBACK on any error)."""
        try:
            self._db.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            raise CoordinatorUnavailable(f"{self.path}: {exc}") from None
        try:
            yield self._db
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        try:
            self._db.execute("COMMIT")
        except sqlite3.Error as exc:
            raise CoordinatorUnavailable(f"{self.path}: {exc}") from None

    def _run(self, fn: Callable[[sqlite3.Connection, int], _T]) -> _T:
        """`fn(db, now_ns)` in one write transaction, after expiring dead runners."""
        try:
            with self._write() as db:
                now = self._clock()
                _expire(db, now)
                return fn(db, now)
        except sqlite3.Error as exc:
            raise CoordinatorUnavailable(f"the team coordinator at {self.path}: {exc}") from None

    # -- the Coordinator interface ----------------------------------------------------

    def heartbeat(self, runner: RunnerId, ttl_s: float) -> None:
        """Say `runner` is alive for `ttl_s` more seconds."""

        def beat(db: sqlite3.Connection, now: int) -> None:
            db.execute(
                "INSERT INTO runners VALUES (?, ?, ?) ON CONFLICT(id) DO UPDATE "
                "SET deadline_ns = excluded.deadline_ns, seen_ns = excluded.seen_ns",
                (str(runner), now + int(ttl_s * 1e9), now),
            )

        self._run(beat)

    def forget(self, runner: RunnerId) -> None:
        """`runner` ends cleanly: anything it still holds expires now."""

        def drop(db: sqlite3.Connection, now: int) -> None:
            db.execute("UPDATE runners SET deadline_ns = 0 WHERE id = ?", (str(runner),))
            _expire(db, now)

        self._run(drop)

    def try_slot(self, model: str, runner: RunnerId, reservation: str | None) -> SlotAttempt:
        """A slot now if the model's bucket has its token, else the wait until it has."""

        def take(db: sqlite3.Connection, now: int) -> SlotAttempt:
            rate = _caps(db).rate_for(model)
            row = db.execute("SELECT next_ns FROM buckets WHERE model = ?", (model,)).fetchone()
            next_ns = row[0] if row else 0
            if now < next_ns:
                return SlotAttempt(False, (next_ns - now) / 1e9)
            db.execute(
                "INSERT INTO buckets VALUES (?, ?) ON CONFLICT(model) DO UPDATE "
                "SET next_ns = excluded.next_ns",
                (model, now + rate.interval_ns),
            )
            db.execute("INSERT INTO grants VALUES (?, ?, ?)", (now, model, str(runner)))
            db.execute("DELETE FROM grants WHERE t_ns < ?", (now - GRANT_LOG_KEEP_NS,))
            if reservation is not None:
                db.execute("UPDATE reservations SET submitted = 1 WHERE id = ?", (reservation,))
            return SlotAttempt(True)

        return self._run(take)

    def reserve(self, runner: RunnerId, request: ReservationRequest) -> Reservation:
        """Hold the request's ticks, or raise TeamCapReached."""
        if request.ticks < 0:
            raise ValueError(f"an estimate cannot be negative ({request.ticks} ticks)")

        def hold(db: sqlite3.Connection, now: int) -> Reservation | str:
            reserved = db.execute("SELECT COALESCE(SUM(ticks), 0) FROM reservations").fetchone()[0]
            today, total = _spend(db, utc_day(now))
            why = cap_refusal(_caps(db), today, total, reserved, request.ticks)
            if why is not None:
                return why
            made = Reservation(
                uuid.uuid4().hex, str(runner), request.asset, request.model, request.ticks
            )
            db.execute(
                "INSERT INTO reservations VALUES (?, ?, ?, ?, ?, ?, 0)",
                (made.id, made.runner, made.asset, made.model, request.key, made.ticks),
            )
            return made

        made = self._run(hold)
        if isinstance(made, str):
            raise TeamCapReached(f"{request.asset} not started: {made}", hint=_CAP_HINT)
        return made

    def settle(self, reservation: str, billed_ticks: int) -> None:
        """Count the bill for the day and drop the reservation."""
        if billed_ticks < 0:
            raise ValueError(f"a bill cannot be negative ({billed_ticks} ticks)")

        def pay(db: sqlite3.Connection, now: int) -> None:
            db.execute("DELETE FROM reservations WHERE id = ?", (reservation,))
            row = db.execute("SELECT ticks FROM charged WHERE id = ?", (reservation,)).fetchone()
            already = row[0] if row else 0  # expired and charged meanwhile: count the difference
            db.execute("DELETE FROM charged WHERE id = ?", (reservation,))
            _add_spend(db, utc_day(now), billed_ticks - already)

        self._run(pay)

    def release(self, reservation: str) -> None:
        """Drop the reservation unspent."""
        self._run(lambda db, now: _drop(db, reservation))

    def caps(self) -> TeamCaps:
        """The team's caps and rates."""
        return self._run(lambda db, now: _caps(db))

    def set_caps(self, caps: TeamCaps) -> None:
        """Replace the caps and rates."""

        def put(db: sqlite3.Connection, now: int) -> None:
            limits = {"per_day": caps.max_per_day_ticks, "total": caps.max_total_ticks}
            db.execute(
                "INSERT INTO meta VALUES ('caps', ?) ON CONFLICT(k) DO UPDATE SET v = excluded.v",
                (json.dumps(limits),),
            )
            db.execute("DELETE FROM rates")
            db.executemany(
                "INSERT INTO rates VALUES (?, ?)", [(m, str(r)) for m, r in caps.rates.items()]
            )
            db.execute("DELETE FROM buckets")  # a new rate takes effect at once

        self._run(put)

    def status(self) -> TeamStatus:
        """Spend, holdings per runner, rates in use, caps."""

        def read(db: sqlite3.Connection, now: int) -> TeamStatus:
            caps = _caps(db)
            day = utc_day(now)
            today, total = _spend(db, day)
            models = {m for (m,) in db.execute("SELECT DISTINCT model FROM grants")}
            usage = []
            for model in sorted(models | set(caps.rates)):
                rate = caps.rate_for(model)
                (count,) = db.execute(
                    "SELECT COUNT(*) FROM grants WHERE model = ? AND t_ns > ?",
                    (model, now - rate.seconds * 1_000_000_000),
                ).fetchone()
                usage.append(ModelUsage(model, rate, count))
            runners = []
            rows = db.execute(
                "SELECT r.id, r.seen_ns, COUNT(v.id), COALESCE(SUM(v.ticks), 0) FROM runners r "
                "LEFT JOIN reservations v ON v.runner = r.id GROUP BY r.id ORDER BY r.id"
            )
            for rid, seen, count, ticks in rows:
                runners.append(RunnerUsage(rid, count, ticks, max(0, now - seen) / 1e9))
            expired = db.execute("SELECT v FROM meta WHERE k = 'expired'").fetchone()
            return TeamStatus(
                self.backend, self.team, day, today, total, caps, tuple(usage), tuple(runners),
                int(expired[0]) if expired else 0,
            )  # fmt: skip

        return self._run(read)

    def grants(self, model: str | None = None) -> tuple[Grant, ...]:
        """The logged grants, oldest first."""

        def read(db: sqlite3.Connection, now: int) -> tuple[Grant, ...]:
            rows = db.execute(
                "SELECT t_ns, model, runner FROM grants WHERE ? IS NULL OR model = ? ORDER BY t_ns",
                (model, model),
            )
            return tuple(Grant(t, m, r) for t, m, r in rows)

        return self._run(read)

    def close(self) -> None:
        """Close the database connection."""
        self._db.close()


_CAP_HINT = "the team caps are set with `imaginebuild team set`; see `imaginebuild team status`"


def _caps(db: sqlite3.Connection) -> TeamCaps:
    row = db.execute("SELECT v FROM meta WHERE k = 'caps'").fetchone()
    limits = json.loads(row[0]) if row else {}
    rates = {m: RateLimit.parse(r) for m, r in db.execute("SELECT model, rate FROM rates")}
    return TeamCaps(limits.get("per_day"), limits.get("total"), rates)


def _spend(db: sqlite3.Connection, day: str) -> tuple[int, int]:
    """(today's spend, the total spend) in ticks."""
    row = db.execute("SELECT ticks FROM spend WHERE day = ?", (day,)).fetchone()
    (total,) = db.execute("SELECT COALESCE(SUM(ticks), 0) FROM spend").fetchone()
    return (row[0] if row else 0), total


def _add_spend(db: sqlite3.Connection, day: str, ticks: int) -> None:
    db.execute(
        "INSERT INTO spend VALUES (?, ?) ON CONFLICT(day) DO UPDATE SET ticks = ticks + ?",
        (day, ticks, ticks),
    )


def _drop(db: sqlite3.Connection, reservation: str) -> None:
    db.execute("DELETE FROM reservations WHERE id = ?", (reservation,))


def _expire(db: sqlite3.Connection, now: int) -> None:
    """Expire the reservations of runners past their deadline (or never registered): those
    with a slot taken are charged at their estimate (the call may have been billed), the
    others dropped."""
    db.execute("DELETE FROM runners WHERE deadline_ns < ?", (now,))
    rows = db.execute(
        "SELECT id, ticks, submitted FROM reservations WHERE runner NOT IN (SELECT id FROM runners)"
    ).fetchall()
    if not rows:
        return
    for res_id, ticks, submitted in rows:
        if submitted:
            _add_spend(db, utc_day(now), ticks)
            db.execute("INSERT OR REPLACE INTO charged VALUES (?, ?)", (res_id, ticks))
        _drop(db, res_id)
    db.execute(
        "INSERT INTO meta VALUES ('expired', ?) ON CONFLICT(k) DO UPDATE "
        "SET v = CAST(v AS INTEGER) + ?",
        (str(len(rows)), len(rows)),
    )
