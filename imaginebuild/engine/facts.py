"""What a run is asked to do, and what is known about each asset on the way.

`RunOptions` is the public knob set of `run`/`plan`; `Facts` is one asset's
state as a survey or a run step sees it (key, verdict, known outputs), shared
by the project's decisions and the runner's steps.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from decimal import Decimal

from imaginebuild.engine.keys import ActionFields
from imaginebuild.engine.rebuild import RESUMING, Action, Decision, Reason, ReasonCode
from imaginebuild.model import Asset
from imaginebuild.providers.base import InputFile
from imaginebuild.store.cache import ActionEntry, BlobRef
from imaginebuild.store.lockfile import LockEntry
from imaginebuild.untrusted import is_sha256


@dataclass(frozen=True)
class RunOptions:
    """How `run` behaves; the defaults are a plain `imaginebuild run`."""

    jobs: int = 8
    provider: str | None = None  # build every asset with this provider (changes keys)
    force: tuple[str, ...] | None = None  # names to re-roll; () means every selected asset
    keep_going: bool = False
    max_cost_usd: Decimal | float | int | None = None  # kept as Decimal (see usd_limit)
    offline: bool = False
    locked: bool = False
    retry_expired: bool = False
    no_push: bool = False  # do not upload new builds to the remote cache
    no_coordinator: bool = False  # local limits only: no team slots or caps (issue 19)

    def __post_init__(self) -> None:
        # A float is taken as the decimal it prints as (0.0001 → Decimal("0.0001")), so
        # `RunOptions(max_cost_usd=5.0)` means $5; money stays exact from here on.
        if self.max_cost_usd is not None:
            object.__setattr__(self, "max_cost_usd", usd_limit(self.max_cost_usd))

    @property
    def max_cost(self) -> Decimal | None:
        """`max_cost_usd` as the exact Decimal it was turned into (None: no per-run cap)."""
        assert self.max_cost_usd is None or isinstance(self.max_cost_usd, Decimal)
        return self.max_cost_usd


def usd_limit(value: object) -> Decimal:
    """A spending limit in USD as an exact Decimal: a Decimal, int, float or decimal text;
    raises ValueError for anything else, a negative amount, NaN or infinity."""
    if isinstance(value, bool) or not isinstance(value, Decimal | int | float | str):
        raise ValueError(f"max_cost_usd must be an amount in USD, not {type(value).__name__}")
    try:
        amount = Decimal(str(value))
    except ArithmeticError:
        raise ValueError(f"max_cost_usd {value!r} is not an amount in USD") from None
    if not amount.is_finite() or amount < 0:
        raise ValueError(f"max_cost_usd {value!r} must be a non-negative, finite amount in USD")
    return amount


@dataclass
class Facts:
    """What a survey learned about one asset: its key, verdict and known outputs."""

    asset: Asset
    fields: ActionFields | None
    key: str | None
    decision: Decision
    outputs: tuple[BlobRef, ...] | None  # None until built when the verdict is CALL
    entry: ActionEntry | None = None
    inputs: tuple[InputFile, ...] = ()
    estimate_ticks: int = 0
    remote: bool = False  # the entry is in the remote cache only (fetch before restoring)

    def with_remote(self, entry: ActionEntry | None) -> Facts:
        """A CALL turned into a restore from the remote cache, when the remote has the key."""
        if entry is None or RESUMING in self.decision.reasons:
            return self  # a paid job in flight is collected, not replaced by another take
        found = Reason(ReasonCode.REMOTE, "outputs are in the remote cache")
        decision = Decision(Action.RESTORE, (*self.decision.reasons, found))
        return dataclasses.replace(
            self, decision=decision, entry=entry, outputs=entry.outputs, remote=True
        )


def is_forced(name: str, options: RunOptions) -> bool:
    """Whether `--force` asks for a new take of `name`."""
    return options.force is not None and (not options.force or name in options.force)


def url_pins(locked: LockEntry | None) -> dict[str, str]:
    """URL inputs pinned by a lock entry: url → the sha256 it was fetched as."""
    if locked is None:
        return {}
    pins = {}
    inputs = locked.fields.get("inputs")
    for item in inputs if isinstance(inputs, list) else []:
        if not isinstance(item, dict):
            continue
        ref = str(item.get("ref", ""))
        sha = item.get("sha256")
        if ref.startswith(("https://", "http://")) and is_sha256(sha):  # never a path
            pins[ref] = str(sha)
    return pins
