"""The run command: the project lock, the no-op fast path, else a Runner.

Under the project lock the lockfile is read again, pruned and the leftovers of
killed runs cleared; if every selected asset is up to date the result comes
from the lockfile and stat cache alone (no event loop, no action cache),
otherwise the engine's Runner builds it with the project's collaborators.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable

from imaginebuild.engine.facts import Facts, RunOptions
from imaginebuild.engine.rebuild import Action
from imaginebuild.engine.results import CommandResult, settled_result
from imaginebuild.errors import ImaginebuildError, Interrupted, UsageError
from imaginebuild.gcpause import paused_gc
from imaginebuild.project.wiring import ProjectCore, _settled_asset
from imaginebuild.spelled import PROVIDERS
from imaginebuild.store import settled
from imaginebuild.store.cache import BlobRef


class RunCommands(ProjectCore):
    """run, with its no-op fast path."""

    def run(self, targets: Iterable[str] = (), options: RunOptions | None = None) -> CommandResult:
        """Build the targets (default: all) and what they need; the sync entry point."""
        options = options or RunOptions()
        wanted = tuple(targets)
        self._check_options(options)
        self._check_signing()
        started = self.clock()
        with self.state.exclusive(self._wait_message):
            self.state.forget_lock_entries()  # another process may have written it while we waited
            self._prune_lock(options.locked)
            self._tidy()
            with paused_gc():
                fast = self._settled(wanted, options)
            if fast is not None:
                self.state.save_stat_cache()
                fast = self._with_orphan_note(fast)
                return dataclasses.replace(fast, seconds=self.clock() - started)
            settled.discard(self.mediafile.path)  # this run changes what the verdict rested on
            import asyncio

            from imaginebuild.engine.runner import (
                Runner,  # the event loop and scheduler load only now
            )

            runner = Runner(
                options,
                assessor=self.assessor,
                state=self.state,
                materializer=self.materializer,
                reporter=self.reporter,
                clock=self.clock,
            )
            try:
                with self.store.live_run():  # gc elsewhere leaves this cache alone meanwhile
                    result = asyncio.run(runner.run(wanted))
            except KeyboardInterrupt:
                self.state.save_stat_cache()
                done = sum(1 for r in runner.results.values() if r.state in ("built", "restored"))
                raise Interrupted(
                    f"interrupted; {done} finished step(s) were kept",
                    hint="run again to finish: jobs in flight are resumed, not paid twice",
                ) from None
            self.state.save_stat_cache()
        result = self._with_orphan_note(result.with_templates(self.templates))
        return dataclasses.replace(result, seconds=self.clock() - started)

    def _settled(self, targets: tuple[str, ...], options: RunOptions) -> CommandResult | None:
        """The run's result if every selected asset is already up to date, else None.

        The no-op path: decided synchronously from the lockfile and the stat
        cache, without starting an event loop or opening the action cache. The
        verdict is remembered in the settled snapshot for the next command.
        """
        if options.force is not None:
            return None
        selected = self.dag.select(targets)
        facts: dict[str, Facts] = {}
        known: dict[str, tuple[BlobRef, ...] | None] = {}
        for name in selected:
            try:
                f = self.assess(self.asset_for(name, options), known, forced=False)
            except ImaginebuildError:
                return None  # let the real run report it against the asset
            if f.decision.action is not Action.UP_TO_DATE:
                return None  # the run decides this one (and looks at the remote) itself
            facts[name] = f
            known[name] = f.outputs
        self._remember_settled(targets, options, facts)
        return settled_result("run", [_settled_asset(f) for f in facts.values()], self.reporter)

    def _check_options(self, options: RunOptions) -> None:
        if options.jobs < 1:
            raise UsageError("--jobs must be at least 1")
        for name in options.force or ():
            if name not in self.mediafile.assets:
                self.dag.select([name])
        if options.provider is not None and options.provider not in PROVIDERS:
            raise UsageError(f"unknown provider {options.provider!r}", hint="use xai or local")
