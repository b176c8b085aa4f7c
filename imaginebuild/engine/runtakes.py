"""What a run does about takes before it calls: an asset on hold stops, outputs retouched
by hand are set aside as a take before `--force` replaces them, a key whose paid result
was just rejected is not paid for again, and a forced call asks for the next take."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from imaginebuild.engine.facts import Facts, RunOptions, is_forced
from imaginebuild.engine.rebuild import Action
from imaginebuild.engine.takes import REASON_SET_ASIDE, hold_error, set_aside
from imaginebuild.errors import AssetOnHold
from imaginebuild.model import Mediafile
from imaginebuild.store.cache import Store
from imaginebuild.store.state import ProjectState
from imaginebuild.store.takes import TakeBook


class RunTakes:
    """The take rules of one run; `rejected` maps a key to (asset, rejected take id) as the
    run's result keeper rejects paid results."""

    def __init__(
        self,
        takes: TakeBook,
        store: Store,
        state: ProjectState,
        mediafile: Mediafile,
        options: RunOptions,
        rejected: dict[str, tuple[str, str]],
    ) -> None:
        self.takes = takes
        self.store = store
        self.state = state
        self.mediafile = mediafile
        self.options = options
        self.rejected = rejected

    async def first(self, f: Facts, warn: Callable[[str], None]) -> None:
        """Stop an asset on hold (a rejected take, an output retouched by hand); keep the
        retouched outputs as a take before `--force` restores the generated ones."""
        if f.decision.action is Action.HOLD:
            raise hold_error(f.asset.name, f.decision)
        if f.key is not None and any(r.code == REASON_SET_ASIDE for r in f.decision.reasons):
            locked = self.state.lock_entries().get(f.asset.name)
            kept = await asyncio.to_thread(
                set_aside,
                self.store,
                self.takes,
                f.asset.name,
                f.asset.outputs,
                locked,
                self.mediafile.root,
                f.key,
            )
            warn(
                f"{f.asset.name}: the outputs retouched by hand are kept as take {kept.id} "
                f"(`imaginebuild takes {f.asset.name}`)"
            )

    def hold_after_turn(self, f: Facts) -> None:
        """Hold a step assessed again after another step's turn on its key: on hold as
        such, or because that step just paid for the key and had the result rejected (a
        key is paid once per run; that result waits for `accept` or `--force`)."""
        if f.decision.action is Action.HOLD:
            raise hold_error(f.asset.name, f.decision)
        if f.decision.action is not Action.CALL or f.key not in self.rejected:
            return
        if is_forced(f.asset.name, self.options):
            return
        other, take = self.rejected[f.key]
        raise AssetOnHold(
            f"{f.asset.name}: the same request was just paid for {other} and its result "
            f"failed the output check (rejected take {take}); not paid for again",
            hint=f"`imaginebuild accept {other}` and run again, or "
            f"`imaginebuild run --force {f.asset.name}`",
        )

    def roll(self, name: str, key: str) -> int:
        """Which take of `key` a call makes: a `--force` asks for the next one; any other
        call for the first (a deterministic provider then remakes the same bytes)."""
        if not is_forced(name, self.options):
            return 0
        return sum(t.key == key for t in self.takes.read(name).takes)
