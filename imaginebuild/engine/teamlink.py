"""The run's link to the team coordinator: one hold in the team's rate and spend caps per
paid step, opened lazily so a run that is all cached or local never connects."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from imaginebuild.errors import CoordinatorUnavailable, TeamCapReached
from imaginebuild.model import Asset
from imaginebuild.spelled import ProviderName

if TYPE_CHECKING:
    from imaginebuild.coordinator.session import SubmitGate, TeamHold, TeamSession


class TeamLink:
    """The run's link to the team coordinator (issue 19): opened on the first paid call,
    never for a run that is all cached or local; `--no-coordinator` keeps it shut."""

    def __init__(self, disabled: bool, env: Mapping[str, str]) -> None:
        if not disabled:  # a malformed setting is bad input: refused before any step
            from imaginebuild.coordinator.config import check_settings

            check_settings(env)
        self.disabled = disabled
        self.env = env
        self.session: TeamSession | None = None
        self.failed: CoordinatorUnavailable | None = None
        self.refused = 0
        self.capped = 0

    def hold(self, asset: Asset, key: str, ticks: int) -> TeamHold | None:
        """The step's hold in the team caps (None: local provider, or no coordinator)."""
        if self.disabled or asset.provider == ProviderName.LOCAL:
            return None
        from imaginebuild.coordinator.session import TeamSession

        try:
            if self.failed is not None:
                raise self.failed
            if self.session is None:
                self.session = TeamSession.open(self.env)
            return self.session.hold(asset.name, asset.model or asset.kind.spec.default_model,
                                     key, ticks)  # fmt: skip
        except TeamCapReached:
            self.capped += 1
            raise
        except CoordinatorUnavailable as exc:
            self.failed, self.refused = exc, self.refused + 1
            raise CoordinatorUnavailable(f"{asset.name} not started: {exc.message}",
                                         hint=exc.hint) from None  # fmt: skip

    def gate(self, hold: TeamHold) -> SubmitGate:
        """The slot wait before each submission of `hold`'s step."""
        assert self.session is not None
        return self.session.gate(hold)

    def finish(
        self, hold: TeamHold | None, billed: int | None, error: BaseException | None, estimate: int
    ) -> None:
        """Settle or release the step's hold (nothing without one)."""
        if hold is not None and self.session is not None:
            self.session.finish(hold, billed, error, estimate)

    def messages(self) -> tuple[str, ...]:
        """What the run's summary says about the team limits."""
        if self.disabled:
            return ("team coordinator: off (--no-coordinator): local limits only",)
        found = list(self.session.warnings) if self.session is not None else []
        if self.capped:
            found.append(f"team cap reached: {self.capped} paid step(s) not started")
        if self.failed is not None:
            found.append(
                f"team coordinator unavailable: {self.refused} paid step(s) not started; "
                f"{self.failed.message}"
            )
            if self.failed.hint:
                found.append(f"hint: {self.failed.hint}")
        return tuple(found)

    def close(self) -> None:
        """Stop the heartbeat and sign off."""
        if self.session is not None:
            self.session.close()
            self.session = None
