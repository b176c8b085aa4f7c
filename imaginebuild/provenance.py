"""The provenance record of a built step, typed: who built it, when, with what, what it cost.

One record travels with a build into the action cache entry, the lockfile, the take
book, the kept-results folder and each output's sidecar. On disk it is a JSON object
whose bytes must not change from one version to the next, and whatever is read back
from disk is untrusted. So `from_json` never fails: a typed field whose stored text is
not exactly what `to_json` would write (a stray type, `"0.10"` for `"0.1"`) keeps its
stored text verbatim in `extra`, as do the keys this version does not type (the marks
`takes` adds: `picked`, `retouched`, `accepted_despite_check`…), and `to_json` writes
the stored text back. A record read and written again is the record that was read.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from imaginebuild.money import ticks_of_text, usd_json


@dataclass(frozen=True)
class CallProvenance:
    """One provider request of a build: its endpoint, ids, bill, retries and timing."""

    endpoint: str = ""
    request_id: str | None = None  # None: the request failed before the API named it
    x_request_id: str | None = None  # the API's id of the submission (its response header)
    cost_ticks: int | None = None  # None: the provider did not say
    retries: int = 0
    started_at: str | None = None
    duration_s: float = 0.0

    def to_json(self) -> dict[str, Any]:
        """The record's spelling of the call."""
        return {
            "endpoint": self.endpoint,
            "request_id": self.request_id,
            "x_request_id": self.x_request_id,
            "cost_usd": _usd_or_none(self.cost_ticks),
            "retries": self.retries,
            "started_at": self.started_at,
            "duration_s": self.duration_s,
        }

    @classmethod
    def from_json(cls, data: object) -> CallProvenance:
        """A call read defensively from a stored record (odd values become defaults)."""
        raw = data if isinstance(data, dict) else {}
        duration = raw.get("duration_s")
        retries = raw.get("retries")
        return cls(
            endpoint=_text(raw.get("endpoint")) or "",
            request_id=_text(raw.get("request_id")),
            x_request_id=_text(raw.get("x_request_id")),
            cost_ticks=_ticks_or_none(raw.get("cost_usd")),
            retries=retries if isinstance(retries, int) and not isinstance(retries, bool) else 0,
            started_at=_text(raw.get("started_at")),
            duration_s=float(duration)
            if isinstance(duration, (int, float)) and not isinstance(duration, bool)
            else 0.0,
        )


# The typed keys, each with how it is written; `from_json` reads them back.
_ENCODERS: dict[str, Callable[[Provenance], Any]] = {
    "imaginebuild": lambda p: p.imaginebuild,
    "built_at": lambda p: p.built_at,
    "provider": lambda p: p.provider,
    "model": lambda p: p.model,
    "request_ids": lambda p: list(p.request_ids),
    "cost_usd": lambda p: _usd_or_none(p.cost_ticks),
    "cost_estimated": lambda p: p.cost_estimated,
    "estimate_usd": lambda p: _usd_or_none(p.estimate_ticks),
    "calls": lambda p: [c.to_json() for c in p.calls],
}


@dataclass(frozen=True)
class Provenance:
    """The record of one build. A record made in code has every typed field;
    `NO_RECORD` has none (an entry with an empty record, `{}`)."""

    imaginebuild: str | None = None  # the version that built it
    built_at: str | None = None  # UTC, as the ledger writes time
    provider: str | None = None
    model: str | None = None
    request_ids: tuple[str, ...] = ()
    cost_ticks: int | None = None  # what the ledger says its calls were billed (None: unsaid)
    cost_estimated: bool = False  # the provider did not report the cost: priced from the table
    estimate_ticks: int | None = None  # what the price table expected (None: unsaid)
    calls: tuple[CallProvenance, ...] = ()
    # Stored text kept verbatim: untyped keys and typed ones not spelled as written here.
    extra: Mapping[str, Any] = field(default_factory=dict)
    present: frozenset[str] = frozenset(_ENCODERS)  # the typed keys the record has

    def to_json(self) -> dict[str, Any]:
        """The record as stored (a fresh dict; key order is irrelevant: writers sort keys)."""
        data = {k: encode(self) for k, encode in _ENCODERS.items() if k in self.present}
        data.update(self.extra)
        return data

    @classmethod
    def from_json(cls, data: object) -> Provenance:
        """Read a stored record defensively: never raises; `to_json` gives back `data`."""
        raw: Mapping[str, Any] = data if isinstance(data, dict) else {}
        ids = raw.get("request_ids")
        calls = raw.get("calls")
        parsed = cls(
            imaginebuild=_text(raw.get("imaginebuild")),
            built_at=_text(raw.get("built_at")),
            provider=_text(raw.get("provider")),
            model=_text(raw.get("model")),
            request_ids=tuple(str(i) for i in ids if i) if isinstance(ids, list) else (),
            cost_ticks=_ticks_or_none(raw.get("cost_usd")),
            cost_estimated=bool(raw.get("cost_estimated")),
            estimate_ticks=_ticks_or_none(raw.get("estimate_usd")),
            calls=tuple(CallProvenance.from_json(c) for c in calls)
            if isinstance(calls, list)
            else (),
            present=frozenset(k for k in _ENCODERS if k in raw),
        )
        typed = parsed.to_json()
        extra = {k: v for k, v in raw.items() if k not in typed or not _same(v, typed[k])}
        return replace(parsed, extra=extra)

    def marked(self, **marks: Any) -> Provenance:
        """This record with notes added beside its fields (a take picked, accepted…)."""
        return replace(self, extra={**self.extra, **marks})


def _same(stored: object, typed: object) -> bool:
    """Whether a stored value is exactly its typed spelling, JSON types included
    (`1 == True` and `3 == 3.0` in Python, not in the file)."""
    if type(stored) is not type(typed):
        return False
    if isinstance(stored, list) and isinstance(typed, list):
        return len(stored) == len(typed) and all(map(_same, stored, typed))
    if isinstance(stored, dict) and isinstance(typed, dict):
        return stored.keys() == typed.keys() and all(_same(v, typed[k]) for k, v in stored.items())
    return stored == typed


NO_RECORD = Provenance(present=frozenset())


def _text(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _ticks_or_none(value: object) -> int | None:
    """The ticks of a stored amount; None when there is none (0 for one that is not an
    amount: a display never fails on one bad figure)."""
    return None if value is None else ticks_of_text(value)


def _usd_or_none(ticks: int | None) -> str | None:
    return None if ticks is None else usd_json(ticks)


__all__ = ["NO_RECORD", "CallProvenance", "Provenance"]
