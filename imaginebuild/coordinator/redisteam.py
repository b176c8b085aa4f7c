"""The Redis coordinator: one team's slots and caps shared by runners on many machines.

Slots, caps, reservations, spend and runner heartbeats are Lua scripts, each
atomic on the server and using the server's clock (`TIME`), so the machines'
clocks need not agree. Rates are the same one-token bucket per model as the
embedded backend's (grants spaced `S / N` plus the headroom), and each grant is
logged in the script that gives it. Every key starts with `imaginebuild:team:<id>:`.

    caps      hash   per_day, total (ticks; absent: no cap)
    rates     hash   model → "N/S"
    spend     hash   YYYY-MM-DD → ticks, "total" → ticks
    res       hash   reservation id → JSON {runner, asset, model, key, ticks, submitted}
    runners   hash   runner → deadline (ms, server clock);  seen: runner → last heartbeat
    charged   hash   reservation id → ticks charged when it expired
    next:M    string when model M's next slot is free (µs, server clock)
    grants:M  zset   the log of slots granted for model M (score: ms), 10 minutes kept
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any, cast
from urllib.parse import urlsplit, urlunsplit

import redis

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
)
from imaginebuild.errors import CoordinatorUnavailable, TeamCapReached

SOCKET_TIMEOUT_S = 3.0

# Shared by every script: the server's time, the UTC day, and the expiry of dead runners.
_PRELUDE = """
local P = KEYS[1]
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local function day_of(ms)
  local z = math.floor(ms / 86400000) + 719468
  local era = math.floor(z / 146097)
  local doe = z - era * 146097
  local yoe = math.floor((doe - math.floor(doe / 1460) + math.floor(doe / 36524)
                          - math.floor(doe / 146096)) / 365)
  local doy = doe - (365 * yoe + math.floor(yoe / 4) - math.floor(yoe / 100))
  local mp = math.floor((5 * doy + 2) / 153)
  local d = doy - math.floor((153 * mp + 2) / 5) + 1
  local m = mp < 10 and mp + 3 or mp - 9
  local y = yoe + era * 400
  if m <= 2 then y = y + 1 end
  return string.format('%04d-%02d-%02d', y, m, d)
end
local today = day_of(now)
local function spend(ticks)
  redis.call('HINCRBY', P .. 'spend', today, ticks)
  redis.call('HINCRBY', P .. 'spend', 'total', ticks)
end
local runners = redis.call('HGETALL', P .. 'runners')
local alive = {}
for i = 1, #runners, 2 do
  if tonumber(runners[i + 1]) < now then
    redis.call('HDEL', P .. 'runners', runners[i])
    redis.call('HDEL', P .. 'seen', runners[i])
  else
    alive[runners[i]] = true
  end
end
local reserved = 0
local held = redis.call('HGETALL', P .. 'res')
local expired = 0
for i = 1, #held, 2 do
  local r = cjson.decode(held[i + 1])
  if alive[r.runner] then
    reserved = reserved + r.ticks
  else
    if r.submitted == 1 then
      spend(r.ticks)
      redis.call('HSET', P .. 'charged', held[i], r.ticks)
    end
    redis.call('HDEL', P .. 'res', held[i])
    expired = expired + 1
  end
end
if expired > 0 then redis.call('INCRBY', P .. 'expired', expired) end
"""

_HEARTBEAT = (
    _PRELUDE
    + """
redis.call('HSET', P .. 'runners', ARGV[1], now + tonumber(ARGV[2]))
redis.call('HSET', P .. 'seen', ARGV[1], now)
return now
"""
)

_FORGET = """
local P = KEYS[1]
redis.call('HSET', P .. 'runners', ARGV[1], 0)
"""

_RESERVE = (
    _PRELUDE
    + """
local ticks = tonumber(ARGV[2])
local per_day = redis.call('HGET', P .. 'caps', 'per_day')
local total_cap = redis.call('HGET', P .. 'caps', 'total')
local spent_today = tonumber(redis.call('HGET', P .. 'spend', today) or '0')
local spent_total = tonumber(redis.call('HGET', P .. 'spend', 'total') or '0')
if per_day and spent_today + reserved + ticks > tonumber(per_day) then
  return {'per_day', per_day, spent_today, reserved}
end
if total_cap and spent_total + reserved + ticks > tonumber(total_cap) then
  return {'total', total_cap, spent_total, reserved}
end
redis.call('HSET', P .. 'res', ARGV[1], ARGV[3])
return {'ok'}
"""
)

_SETTLE = (
    _PRELUDE
    + """
redis.call('HDEL', P .. 'res', ARGV[1])
local already = tonumber(redis.call('HGET', P .. 'charged', ARGV[1]) or '0')
redis.call('HDEL', P .. 'charged', ARGV[1])
spend(tonumber(ARGV[2]) - already)
"""
)

_RELEASE = """
local P = KEYS[1]
redis.call('HDEL', P .. 'res', ARGV[1])
"""

# A slot: the model's next free time (µs, server clock) passed → grant, log, mark submitted.
_SLOT = """
local P = KEYS[1]
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local key = P .. 'next:' .. ARGV[1]
local free = tonumber(redis.call('GET', key) or '0')
if now < free then return {0, free - now} end
local interval = tonumber(ARGV[2])
redis.call('SET', key, now + interval, 'PX', math.floor(interval / 1000) + 1000)
local log = P .. 'grants:' .. ARGV[1]
redis.call('ZADD', log, now / 1000, ARGV[4] .. ' ' .. ARGV[3])
redis.call('ZREMRANGEBYSCORE', log, '-inf', now / 1000 - tonumber(ARGV[6]))
if ARGV[5] ~= '' then
  local raw = redis.call('HGET', P .. 'res', ARGV[5])
  if raw then
    local r = cjson.decode(raw)
    r.submitted = 1
    redis.call('HSET', P .. 'res', ARGV[5], cjson.encode(r))
  end
end
return {1, 0}
"""

_STATUS = (
    _PRELUDE
    + """
return {today, now, redis.call('HGET', P .. 'spend', today) or '0',
        redis.call('HGET', P .. 'spend', 'total') or '0',
        redis.call('GET', P .. 'expired') or '0'}
"""
)


def _public(url: str) -> str:
    """The URL without a password, for messages and status."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{parts.username or ''}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


class RedisCoordinator:
    """A team's coordinator on a Redis server (see the module docstring)."""

    def __init__(self, url: str, *, team: str = "default") -> None:
        self.team = team
        self.backend = f"redis {_public(url)}"
        self.prefix = f"imaginebuild:team:{team}:"
        try:
            self._pool = redis.ConnectionPool.from_url(
                url, socket_timeout=SOCKET_TIMEOUT_S, socket_connect_timeout=SOCKET_TIMEOUT_S
            )
            self._redis = redis.Redis(connection_pool=self._pool)
        except (ValueError, redis.RedisError) as exc:
            raise self._down(exc) from None
        self._scripts = {
            name: self._redis.register_script(body)
            for name, body in {
                "heartbeat": _HEARTBEAT, "forget": _FORGET, "reserve": _RESERVE,
                "settle": _SETTLE, "release": _RELEASE, "slot": _SLOT, "status": _STATUS,
            }.items()
        }  # fmt: skip
        self._caps_cache: tuple[float, TeamCaps] | None = None

    def _down(self, exc: Exception) -> CoordinatorUnavailable:
        return CoordinatorUnavailable(
            f"the team coordinator ({self.backend}) cannot be reached: {type(exc).__name__}: "
            f"{str(exc).strip() or 'no detail'}; no new paid call is started",
            hint="start Redis again and rerun (finished and journaled jobs are kept), or run "
            "with --no-coordinator to use local limits only",
        )

    def _script(self, name: str, *args: object) -> Any:
        try:
            return self._scripts[name](keys=[self.prefix], args=[str(a) for a in args])
        except (redis.RedisError, OSError) as exc:
            raise self._down(exc) from None

    # -- the Coordinator interface ----------------------------------------------------

    def heartbeat(self, runner: RunnerId, ttl_s: float) -> None:
        """Say `runner` is alive for `ttl_s` more seconds (server clock)."""
        self._script("heartbeat", str(runner), int(ttl_s * 1000))

    def forget(self, runner: RunnerId) -> None:
        """`runner` ends cleanly: anything it still holds expires on the next call."""
        self._script("forget", str(runner))
        self._script("status")

    def try_slot(self, model: str, runner: RunnerId, reservation: str | None) -> SlotAttempt:
        """A slot now if the model's bucket has its token, else the wait until it has."""
        interval_us = self._rate(model).interval_ns // 1000
        keep_ms = GRANT_LOG_KEEP_NS // 1_000_000
        granted, wait_us = self._script(
            "slot", model, interval_us, str(runner), uuid.uuid4().hex, reservation or "", keep_ms
        )
        return SlotAttempt(True) if granted == 1 else SlotAttempt(False, int(wait_us) / 1e6)

    def reserve(self, runner: RunnerId, request: ReservationRequest) -> Reservation:
        """Hold the request's ticks, or raise TeamCapReached."""
        if request.ticks < 0:
            raise ValueError(f"an estimate cannot be negative ({request.ticks} ticks)")
        made = Reservation(uuid.uuid4().hex, str(runner), request.asset, request.model,
                           request.ticks)  # fmt: skip
        body = json.dumps(
            {"runner": made.runner, "asset": made.asset, "model": made.model, "key": request.key,
             "ticks": made.ticks, "submitted": 0}
        )  # fmt: skip
        answer = self._script("reserve", made.id, made.ticks, body)
        if _text(answer[0]) == "ok":
            return made
        from imaginebuild.coordinator.base import cap_refusal

        which, cap, spent, reserved = _text(answer[0]), *(int(a) for a in answer[1:4])
        caps = TeamCaps(cap if which == "per_day" else None, cap if which == "total" else None)
        why = cap_refusal(caps, spent, spent, reserved, request.ticks) or f"{which} cap"
        raise TeamCapReached(
            f"{request.asset} not started: {why}",
            hint="the team caps are set with `imaginebuild team set`; "
            "see `imaginebuild team status`",
        )

    def settle(self, reservation: str, billed_ticks: int) -> None:
        """Count the bill for the day and drop the reservation."""
        if billed_ticks < 0:
            raise ValueError(f"a bill cannot be negative ({billed_ticks} ticks)")
        self._script("settle", reservation, billed_ticks)

    def release(self, reservation: str) -> None:
        """Drop the reservation unspent."""
        self._script("release", reservation)

    def caps(self) -> TeamCaps:
        """The team's caps and rates, read now."""
        try:
            limits = self._hash("caps")
            rates = self._hash("rates")
        except (redis.RedisError, OSError) as exc:
            raise self._down(exc) from None
        caps = TeamCaps(
            _opt_int(limits.get(b"per_day")),
            _opt_int(limits.get(b"total")),
            {_text(m): RateLimit.parse(_text(r)) for m, r in rates.items()},
        )
        self._caps_cache = (time.monotonic(), caps)
        return caps

    def set_caps(self, caps: TeamCaps) -> None:
        """Replace the caps and rates in one transaction."""
        try:
            with self._redis.pipeline(transaction=True) as pipe:
                pipe.delete(self.prefix + "caps", self.prefix + "rates")
                limits = {"per_day": caps.max_per_day_ticks, "total": caps.max_total_ticks}
                for field, value in limits.items():
                    if value is not None:
                        pipe.hset(self.prefix + "caps", field, str(value))
                for model, rate in caps.rates.items():
                    pipe.hset(self.prefix + "rates", model, str(rate))
                pipe.execute()
        except (redis.RedisError, OSError) as exc:
            raise self._down(exc) from None
        self._caps_cache = None

    def status(self) -> TeamStatus:
        """Spend, holdings per runner, rates in use, caps."""
        day, now, today, total, expired = self._script("status")
        caps = self.caps()
        try:
            held = self._hash("res")
            seen = self._hash("seen")
            logs = [_text(k) for k in self._redis.scan_iter(match=self.prefix + "grants:*")]
            usage = []
            models = {k.removeprefix(self.prefix + "grants:") for k in logs} | set(caps.rates)
            for model in sorted(models):
                rate = caps.rate_for(model)
                low = int(now) - rate.seconds * 1000
                log = self.prefix + "grants:" + model
                count: object = self._redis.zcount(log, f"({low}", "+inf")
                usage.append(ModelUsage(model, rate, int(_text(count))))
        except (redis.RedisError, OSError) as exc:
            raise self._down(exc) from None
        per_runner: dict[str, list[int]] = {_text(r): [] for r in seen}
        for raw in held.values():
            entry = json.loads(raw)
            per_runner.setdefault(str(entry["runner"]), []).append(int(entry["ticks"]))
        runners = tuple(
            RunnerUsage(r, len(t), sum(t), max(0, int(now) - int(seen.get(r.encode(), now))) / 1e3)
            for r, t in sorted(per_runner.items())
        )
        return TeamStatus(
            self.backend, self.team, _text(day), int(today), int(total), caps, tuple(usage),
            runners, int(expired),
        )  # fmt: skip

    def grants(self, model: str | None = None) -> tuple[Grant, ...]:
        """The logged grants, oldest first."""
        try:
            keys = (
                [self.prefix + "grants:" + model]
                if model is not None
                else [_text(k) for k in self._redis.scan_iter(match=self.prefix + "grants:*")]
            )
            found = []
            for key in keys:
                name = key.removeprefix(self.prefix + "grants:")
                raw = self._redis.zrange(key, 0, -1, withscores=True)
                entries = cast(list[tuple[bytes, float]], raw)
                for member, score in entries:
                    runner = _text(member).split(" ", 1)[1]
                    found.append(Grant(int(score * 1_000_000), name, runner))
        except (redis.RedisError, OSError) as exc:
            raise self._down(exc) from None
        return tuple(sorted(found, key=lambda g: g.time_ns))

    def close(self) -> None:
        """Close the connection pool."""
        self._pool.disconnect()

    def _hash(self, name: str) -> dict[bytes, bytes]:
        """One of the team's hashes (raises redis errors for the caller to translate)."""
        return cast(dict[bytes, bytes], self._redis.hgetall(self.prefix + name))

    def _rate(self, model: str) -> RateLimit:
        """The model's rate, from caps read at most a second ago (a change applies within 1 s)."""
        if self._caps_cache is None or time.monotonic() - self._caps_cache[0] > 1.0:
            self.caps()
        assert self._caps_cache is not None
        return self._caps_cache[1].rate_for(model)


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _opt_int(value: object) -> int | None:
    return None if value is None else int(_text(value))
