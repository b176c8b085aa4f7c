"""What a command reports back: per-asset results and totals, as data and as `--json`.

The JSON shape is a public contract (see README "JSON output"):

    {"command": "run", "assets": [{name, kind, state, reason, reasons, outputs, key,
      cost_usd, estimate_usd, request_ids, template, error?}], "counts": {state: n},
     "cost_usd": "0.44", "estimate_usd": "0.44", "seconds": 12.3, "exit_code": 0}
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from imaginebuild.events import AssetState
from imaginebuild.money import usd_json

if TYPE_CHECKING:
    from collections.abc import Sequence

    from imaginebuild.engine.rebuild import Reason
    from imaginebuild.events import Reporter
    from imaginebuild.store.settled import SettledAsset


@dataclass(frozen=True)
class AssetResult:
    """One asset's outcome in a command."""

    name: str
    kind: str
    state: AssetState
    reason: str
    outputs: tuple[str, ...] = ()
    key: str | None = None
    cost_ticks: int = 0
    estimate_ticks: int = 0
    request_ids: tuple[str, ...] = ()
    reasons: tuple[Reason, ...] = ()
    error: str | None = None
    hint: str | None = None
    template: str | None = None  # the matrix template the asset was expanded from
    unconfirmed_prices: tuple[str, ...] = ()  # price figures the estimate rests on, unconfirmed

    def to_json(self) -> dict[str, Any]:
        """The documented JSON object of an asset."""
        data: dict[str, Any] = {
            "name": self.name,
            "kind": self.kind,
            "state": self.state,
            "reason": self.reason,
            "reasons": [r.to_json() for r in self.reasons],
            "outputs": list(self.outputs),
            "key": self.key,
            "cost_usd": usd_json(self.cost_ticks),
            "estimate_usd": usd_json(self.estimate_ticks),
            "request_ids": list(self.request_ids),
            "template": self.template,
            "unconfirmed_prices": list(self.unconfirmed_prices),
        }
        if self.error is not None:
            data["error"] = self.error
        if self.hint is not None:
            data["hint"] = self.hint
        return data


@dataclass(frozen=True)
class CommandResult:
    """The outcome of run/plan/status/checkout: every asset plus totals and an exit code."""

    command: str
    assets: tuple[AssetResult, ...]
    seconds: float = 0.0
    exit_code: int = 0
    messages: tuple[str, ...] = field(default=())
    rate_limit_s: float | None = None  # plan: the least time xAI's rate limits imply

    @property
    def counts(self) -> dict[AssetState, int]:
        """How many assets ended in each state."""
        return dict(sorted(Counter(a.state for a in self.assets).items()))

    @property
    def cost_ticks(self) -> int:
        """What this command spent."""
        return sum(a.cost_ticks for a in self.assets)

    @property
    def estimate_ticks(self) -> int:
        """What the assets' calls were estimated to cost."""
        return sum(a.estimate_ticks for a in self.assets)

    def get(self, name: str) -> AssetResult:
        """The result of one asset (KeyError if it was not selected)."""
        for asset in self.assets:
            if asset.name == name:
                return asset
        raise KeyError(name)

    def causes(self, name: str) -> tuple[AssetResult, ...]:
        """The upstream assets behind `name`'s "will be built first" reasons, followed down
        the chain, nearest first: the last ones are where a field changed (or that were
        never built). Only assets in this result are followed."""
        from imaginebuild.engine.rebuild import ReasonCode  # `why` only: off the no-op path

        by_name = {a.name: a for a in self.assets}
        chain: list[AssetResult] = []
        queue = [name]
        while queue:
            current = by_name.get(queue.pop(0))
            for reason in current.reasons if current is not None else ():
                upstream = reason.asset if reason.code == ReasonCode.UPSTREAM else None
                if upstream in by_name and all(c.name != upstream for c in chain):
                    chain.append(by_name[upstream])
                    queue.append(upstream)
        return tuple(chain)

    def with_templates(self, templates: Mapping[str, str]) -> CommandResult:
        """This result with each matrix-expanded asset marked with its template."""
        if not templates:
            return self
        assets = tuple(
            replace(a, template=templates[a.name]) if a.name in templates else a
            for a in self.assets
        )
        return replace(self, assets=assets)

    def to_json(self) -> dict[str, Any]:
        """The documented JSON object of the command."""
        data: dict[str, Any] = {
            "command": self.command,
            "assets": [a.to_json() for a in self.assets],
            "counts": self.counts,
            "cost_usd": usd_json(self.cost_ticks),
            "estimate_usd": usd_json(self.estimate_ticks),
            "seconds": round(self.seconds, 3),
            "exit_code": self.exit_code,
            "messages": list(self.messages),
        }
        if self.command == "plan":  # the least time xAI's rate limits imply (None: no xai call)
            data["rate_limit_s"] = (
                None if self.rate_limit_s is None else round(self.rate_limit_s, 3)
            )
        return data


def without_name(asset: str, text: str) -> str:
    """An error's text without the asset's name in front, for a line that names it already
    (`failed banner: banner: …` reads `failed banner: …`)."""
    prefix = f"{asset}: "
    return text[len(prefix) :] if text.startswith(prefix) else text


def settled_result(
    command: str, assets: Sequence[SettledAsset], reporter: Reporter | None = None
) -> CommandResult:
    """The CommandResult of `command` when the settled snapshot says every asset is up to
    date (the fast path: no event loop, no action cache), told to `reporter`."""
    from imaginebuild.events import RunFinished, RunStarted, StepFinished

    rows = tuple(
        AssetResult(
            a.name, a.kind, AssetState.UP_TO_DATE, "up to date", a.outputs, a.key,
            template=a.template,
        )
        for a in assets
    )  # fmt: skip
    done = CommandResult(command, rows)
    if reporter is not None:
        reporter.emit(RunStarted(len(rows)))
        for row in rows:
            reporter.emit(StepFinished(row.name, AssetState.UP_TO_DATE, "up to date", 0.0))
        reporter.emit(RunFinished(done.counts, 0.0, 0))
    return done
