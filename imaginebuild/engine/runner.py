"""One run: the selected steps scheduled and each carried to up to date, restored or built.

A step: resolve inputs → key → decide (the pure rebuild decision) → nothing
(up to date) | restore from the local or remote cache | reserve the budget,
take the remote lease, call the provider (each billed call in the ledger first),
check, store, materialize, lock, push. A finished step is in the cache before its
event; the lockfile is written paced and flushed when the run ends, so a crash
loses at most the last interval's entries, which the next run restores without a call.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from imaginebuild.engine.billing import BillingBook
from imaginebuild.engine.budget import Budget, run_allowance
from imaginebuild.engine.callrecord import call_record
from imaginebuild.engine.estimates import expected_seconds
from imaginebuild.engine.facts import Facts, RunOptions, is_forced
from imaginebuild.engine.jobs import JobBook, refuse_unsettled
from imaginebuild.engine.locking import LockKeeper
from imaginebuild.engine.paidresults import ResultKeeper, take_kept
from imaginebuild.engine.providerpool import ProviderPool
from imaginebuild.engine.rebuild import Action, Decision, ReasonCode
from imaginebuild.engine.results import AssetResult, CommandResult
from imaginebuild.engine.runtakes import RunTakes
from imaginebuild.engine.samekey import KeyTurns
from imaginebuild.engine.scheduler import StepStatus, exit_code_of, run_steps
from imaginebuild.engine.stepinputs import fetch_urls, verified_input
from imaginebuild.engine.takes import note
from imaginebuild.engine.teamlink import TeamLink
from imaginebuild.errors import (
    BudgetExceeded,
    CoordinatorUnavailable,
    CorruptBlob,
    ImaginebuildError,
    OfflineCallNeeded,
    StoreError,
    UnsettledCall,
)
from imaginebuild.events import (
    AssetState,
    Message,
    MessageLevel,
    RunFinished,
    RunStarted,
    StepFinished,
    StepPhase,
    StepStarted,
)
from imaginebuild.model import Asset
from imaginebuild.provenance import NO_RECORD
from imaginebuild.providers.base import (
    GenerationRequest,
    GenerationResult,
    InputFile,
    Phase,
    Provider,
)
from imaginebuild.remote.link import BuiltElsewhere
from imaginebuild.spelled import ProviderName
from imaginebuild.store.cache import ActionEntry, BlobRef
from imaginebuild.store.paid import PaidResults
from imaginebuild.store.takes import TakeBook
from imaginebuild.untrusted import check_inputs_for_api

if TYPE_CHECKING:
    from imaginebuild.engine.assess import Assessor
    from imaginebuild.engine.billing import CallAccount
    from imaginebuild.events import Reporter
    from imaginebuild.store.materialize import Materializer
    from imaginebuild.store.state import ProjectState


class Runner:
    """The state of one run (touched only from the event loop's thread)."""

    def __init__(
        self,
        options: RunOptions,
        *,
        assessor: Assessor,
        state: ProjectState,
        materializer: Materializer,
        reporter: Reporter,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.assessor = assessor
        self.state = state
        self.materializer = materializer
        self.options = options
        self.run_id = uuid.uuid4().hex[:12]
        self.mediafile = assessor.mediafile
        self.dag = assessor.dag
        self.store = assessor.store
        self.remote = assessor.remote
        self.estimator = assessor.estimator
        self.env = assessor.env
        self.reporter = reporter
        self.clock = clock
        self.budget = Budget.for_run(run_allowance(self.mediafile, options.max_cost, state.folder))
        self.billing = BillingBook(state.layout.ledger, self.run_id, self.budget)
        self.paid = PaidResults(self.store.folder / "paid")
        self.jobs = JobBook(state.layout.journal)
        self.takes = TakeBook.for_project(  # issue 17: every result an asset had
            self.store, self.mediafile.lockfile_path,
            lambda text: self.reporter.emit(Message(MessageLevel.WARNING, text)),
        )  # fmt: skip
        self.keeper = ResultKeeper(self.store, self.paid, materializer, self.jobs, self.takes)
        self.take_rules = RunTakes(
            self.takes, self.store, state, self.mediafile, options, self.keeper.rejected_keys
        )
        self.key_turns = KeyTurns()
        self.outputs: dict[str, tuple[BlobRef, ...]] = {}
        self.results: dict[str, AssetResult] = {}
        self.providers = ProviderPool(self.mediafile, state.folder, self.env, options.retry_expired)
        self.refused: list[str] = []
        self.lock = LockKeeper(self.mediafile.lockfile_path, state.lock_entries())
        self.team = TeamLink(options.no_coordinator, self.env)  # issue 19

    async def run(self, targets: tuple[str, ...]) -> CommandResult:
        """Schedule the selected steps and carry each one through; the run's result."""
        options = self.options
        selected = self.dag.select(targets)
        if options.locked:
            self.lock.refuse_changes(self.assessor.survey(selected, options))
        self.billing.start()
        expected = {n: expected_seconds(self.mediafile.assets[n]) for n in selected}
        self.reporter.emit(RunStarted(len(selected), tuple(expected.items())))
        started = self.clock()
        priorities = self.dag.priorities(selected, expected.__getitem__)
        try:
            statuses = await run_steps(
                selected,
                self.dag.parents,
                priorities,
                self._step,
                jobs=options.jobs,
                keep_going=options.keep_going,
            )
        finally:
            self.lock.flush()  # every finished step is in the lockfile before we return
            await self.providers.aclose()
            self.team.close()  # issue 19
        results = []
        for name in selected:
            if name in self.results:
                results.append(self.results[name])
                continue
            asset = self.mediafile.assets[name]
            failed_parents = [p for p in self.dag.parents[name] if statuses.get(p) != StepStatus.OK]
            if not failed_parents and self._up_to_date_unstarted(name):
                results.append(self.results[name])  # the run stopped before it: still current
                continue
            why = (
                f"input {failed_parents[0]!r} was not built"
                if failed_parents
                else "not started: the run stopped after a failure"
            )
            results.append(
                AssetResult(
                    name, asset.kind.value, AssetState.SKIPPED, why, asset.outputs,
                    estimate_ticks=self.estimator.ticks(asset),
                )
            )  # fmt: skip
            self.reporter.emit(StepFinished(name, AssetState.SKIPPED, why, 0.0))
        ledger_messages = self.billing.finish()
        exit_code = exit_code_of(statuses) or (1 if ledger_messages else 0)
        messages = (
            *self._refusal_messages(results),
            *self.team.messages(),  # issue 19
            *ledger_messages,
        )
        result = CommandResult("run", tuple(results), exit_code=exit_code, messages=messages)
        self.reporter.emit(RunFinished(result.counts, self.clock() - started, result.cost_ticks))
        return result

    def _up_to_date_unstarted(self, name: str) -> bool:
        """Whether a step the run never started (it stopped after a failure) needed no
        work: then it is reported up to date, not skipped. Decided as `status` would."""
        asset = self.assessor.asset_for(name, self.options)
        try:
            forced = is_forced(name, self.options)
            f = self.assessor.assess(asset, self.outputs, forced=forced)
        except ImaginebuildError:
            return False
        if f.decision.action is not Action.UP_TO_DATE or f.outputs is None:
            return False
        self.outputs[name] = f.outputs
        self.results[name] = AssetResult(
            name, asset.kind.value, AssetState.UP_TO_DATE, "up to date", asset.outputs, f.key
        )
        self.reporter.emit(StepFinished(name, AssetState.UP_TO_DATE, "up to date", 0.0))
        return True

    async def _step(self, name: str) -> StepStatus:
        """Build one asset; every error becomes a FAILED or REFUSED status with a result."""
        asset = self.assessor.asset_for(name, self.options)
        started = self.clock()
        self.reporter.emit(StepStarted(name, "check"))
        try:
            urls = await fetch_urls(
                self.store, self.state.lock_entries().get(name), self.env, asset
            )
            f = self.assessor.assess(
                asset, self.outputs, forced=is_forced(name, self.options), urls=urls
            )
            await self.take_rules.first(f, self._warn)  # a hold stops; a retouch is set aside
            if f.decision.action is Action.CALL and f.key:
                async with self.key_turns.turn(f.key) as again:  # a key is paid once per run
                    if again:
                        forced = is_forced(name, self.options) and f.key not in self.key_turns.built
                        f = self.assessor.assess(asset, self.outputs, forced=forced,
                                                 urls=urls)  # fmt: skip
                        self.take_rules.hold_after_turn(f)
                    return await self._carry(f, started)
            return await self._carry(f, started)
        except ImaginebuildError as exc:
            return self._fail(asset, exc, started)

    async def _carry(self, f: Facts, started: float) -> StepStatus:
        """Carry an assessed step through: restore, leave up to date, or call."""
        name = f.asset.name
        if f.decision.action is Action.CALL and f.key and not is_forced(name, self.options):
            f = f.with_remote(await self.remote.get_async(f.key))
        if f.remote:
            f = await self._fetch_remote(f)
        if f.decision.action is Action.RESTORE:
            try:
                restored = await asyncio.to_thread(self._restore, f)  # copies: off the loop
                return self._finish(f, restored, AssetState.RESTORED, started)
            except CorruptBlob as exc:
                self._warn(f"{name}: {exc}; building it again")
                self.store.delete_action(f.key or "")
                self.remote.distrust(f.key or "", f.entry.outputs if f.entry else ())
                f = dataclasses.replace(
                    f, decision=Decision(Action.CALL, f.decision.reasons), entry=None
                )
        if f.decision.action is Action.UP_TO_DATE:
            assert f.outputs is not None
            return self._finish(f, None, AssetState.UP_TO_DATE, started)
        try:
            return await self._call(f, started)
        except BuiltElsewhere:
            assert f.key is not None
            f = await self._fetch_remote(f.with_remote(await self.remote.get_async(f.key)))
            if f.decision.action is not Action.RESTORE:
                return await self._call(f, started)
            restored = await asyncio.to_thread(self._restore, f)
            return self._finish(f, restored, AssetState.RESTORED, started)

    async def _call(self, f: Facts, started: float) -> StepStatus:
        """Refuse a call that must not be paid for, store a result paid for earlier, or
        reserve the estimate and build."""
        asset = f.asset
        assert f.key is not None
        estimate = self.estimator.ticks(asset)
        rehearsal = asset.provider == ProviderName.LOCAL
        billable = 0 if rehearsal else estimate  # rehearsals cost nothing
        if self.options.offline:
            raise OfflineCallNeeded(
                f"{asset.name} needs a provider call ({f.decision.summary}) and --offline was given"
            )
        if not rehearsal:  # the API's input limits, checked before it is paid
            check_inputs_for_api(asset.name, f.inputs)
        forced = is_forced(asset.name, self.options)
        if forced:
            self.paid.discard(f.key)
        elif self.paid.get(f.key) is not None:
            return await self._store_kept(f, started)
        refuse_unsettled(self.billing, self.jobs, asset, f.key, forced)
        if not self.budget.reserve(asset.name, billable):
            self.refused.append(asset.name)
            raise BudgetExceeded(self.budget.refusal(asset.name, estimate))
        return await self._build(f, estimate, started)

    async def _build(self, f: Facts, estimate: int, started: float) -> StepStatus:
        """Call the provider, then store, push and record what it returned."""
        asset = f.asset
        assert f.key is not None
        provider = self.providers.get(asset.provider)
        self.jobs.drop_stored(f.key, f.entry or self.store.get_action(f.key))
        inputs = self._verified_inputs(f)
        self.reporter.emit(StepStarted(asset.name, "call"))
        workdir = Path(tempfile.mkdtemp(prefix=f"work-{os.getpid()}-", dir=self.store.tmp_dir()))
        held = contextlib.AsyncExitStack()
        account = self.billing.account(asset, f.key, estimate)
        try:
            request = GenerationRequest(
                asset=asset.name,
                kind=asset.kind,
                key=f.key,
                prompt=asset.prompt,
                model=asset.model,
                params=asset.params(),
                inputs=inputs,
                workdir=workdir,
                roll=self.take_rules.roll(asset.name, f.key),
                on_billed=account.on_billed,  # record first: the ledger line before all else
            )
            result = await self._generate(f, provider, request, account, held)
            cost = account.billed  # what the ledger says this step's calls were billed
            record = call_record(asset, result, cost, estimate)
            entry = await self.keeper.store_paid(f, result, inputs, record)
            self.jobs.forget(f.key)
            await self.remote.push_async(entry, self.options.no_push)
            built = dataclasses.replace(f, outputs=entry.outputs, entry=entry)
            self.key_turns.built.add(f.key)
            return self._finish(built, entry, AssetState.BUILT, started)
        finally:
            await held.aclose()
            shutil.rmtree(workdir, ignore_errors=True)

    async def _generate(
        self,
        f: Facts,
        provider: Provider,
        request: GenerationRequest,
        account: CallAccount,
        held: contextlib.AsyncExitStack,
    ) -> GenerationResult:
        """The provider's answer, under the remote lease (entered into `held`, which the
        caller closes after the push), the provider's pool and the team's caps; either
        way the account and the team hold are settled."""
        asset = f.asset
        assert f.key is not None
        estimate = account.estimate
        billable = 0 if asset.provider == ProviderName.LOCAL else estimate

        def progress(phase: Phase, detail: str) -> None:
            self.reporter.emit(StepPhase(asset.name, phase.value, detail))

        hold = None
        try:
            # The lease is held until the build is pushed (closed by the caller), so a machine
            # waiting on it finds the entry, never a released lease and nothing to fetch.
            await held.enter_async_context(
                self.remote.lease(f.key, self.run_id, self.options.no_push)
            )
            async with self.providers.slots[asset.provider]:
                # -- team coordinator hook (issue 19): hold the estimate in the team's
                # caps, take a slot before each POST, settle or release below.
                hold = self.team.hold(asset, f.key, billable)
                if hold is not None:
                    request = dataclasses.replace(request, gate=self.team.gate(hold))
                result = await provider.generate(request, progress)
        except BaseException as exc:
            account.failed(exc)  # keeps what was (or may have been) billed
            ticks = account.billed if account.reported else None  # as the ledger says
            self.team.finish(hold, ticks, exc, estimate)  # issue 19
            raise
        account.succeeded(result)
        billed = account.billed if account.reported else result.reported_ticks
        self.team.finish(hold, billed, None, estimate)
        return result

    async def _store_kept(self, f: Facts, started: float) -> StepStatus:
        """Store the result an earlier run paid for and could not keep: no call, no bill."""
        assert f.key is not None
        workdir = Path(tempfile.mkdtemp(prefix=f"work-{os.getpid()}-", dir=self.store.tmp_dir()))
        try:
            kept = take_kept(self.paid, f.key, workdir)
            if kept is None:
                raise StoreError(f"{f.asset.name}: the kept result of {f.key[:12]} is unreadable")
            result, record, why = kept
            self.reporter.emit(
                Message(
                    MessageLevel.INFO,
                    f"{f.asset.name}: storing the result paid for earlier ({why})",
                )
            )
            inputs = self._verified_inputs(f)
            entry = await self.keeper.store_paid(f, result, inputs, record)
            self.jobs.forget(f.key)
            stored = dataclasses.replace(f, outputs=entry.outputs, entry=entry)
            return self._finish(stored, entry, AssetState.RESTORED, started)
        finally:
            shutil.rmtree(workdir, ignore_errors=True)

    async def _fetch_remote(self, f: Facts) -> Facts:
        """Bring a remote entry's blobs into the local store; on failure, build instead."""
        assert f.entry is not None
        self.reporter.emit(
            StepPhase(f.asset.name, Phase.DOWNLOADING.value, "from the remote cache")
        )
        if await self.remote.fetch_async(f.entry):
            return dataclasses.replace(f, remote=False)
        reasons = tuple(r for r in f.decision.reasons if r.code != ReasonCode.REMOTE)
        return dataclasses.replace(
            f, decision=Decision(Action.CALL, reasons), entry=None, outputs=None, remote=False
        )

    def _warn(self, text: str) -> None:
        self.reporter.emit(Message(MessageLevel.WARNING, text))

    def _verified_inputs(self, f: Facts) -> tuple[InputFile, ...]:
        """The step's inputs, each cached blob checked against its hash (stepinputs)."""
        root = self.assessor.root
        return tuple(
            verified_input(self.store, self.mediafile, root, self._warn, f.asset, i)
            for i in f.inputs
        )

    def _restore(self, f: Facts) -> ActionEntry:
        assert f.entry is not None and f.fields is not None and f.key is not None
        self.jobs.drop_stored(f.key, f.entry)
        provenance = {"key": f.key, **f.fields.to_json(), **f.entry.record.to_json()}
        self.materializer.materialize(f.asset, f.entry.outputs, provenance)
        return f.entry

    def _finish(
        self,
        f: Facts,
        entry: ActionEntry | None,
        outcome: AssetState,
        started: float,
    ) -> StepStatus:
        """Record a finished step: lockfile first, then the result and the event."""
        assert f.key is not None and f.fields is not None
        outputs = entry.outputs if entry is not None else f.outputs
        assert outputs is not None
        if entry is not None:
            self.lock.record(f.asset, f.key, f.fields, outputs, entry.record)
            note(self.takes, f.asset.name, entry, f.fields.to_json(), outcome == AssetState.BUILT)
        self.outputs[f.asset.name] = outputs
        self.state.failures.clear(f.asset.name)
        built = entry.record if entry is not None and outcome == AssetState.BUILT else NO_RECORD
        cost = built.cost_ticks or 0
        reason = f.decision.summary if outcome != AssetState.UP_TO_DATE else "up to date"
        self.results[f.asset.name] = AssetResult(
            name=f.asset.name,
            kind=f.asset.kind.value,
            state=outcome,
            reason=reason,
            outputs=f.asset.outputs,
            key=f.key,
            cost_ticks=cost,
            estimate_ticks=built.estimate_ticks or 0,
            request_ids=built.request_ids,
            reasons=f.decision.reasons,
        )
        self.reporter.emit(
            StepFinished(f.asset.name, outcome, reason, self.clock() - started, cost)
        )
        return StepStatus.OK

    def _fail(self, asset: Asset, exc: ImaginebuildError, started: float) -> StepStatus:
        refused = isinstance(
            exc, (BudgetExceeded, OfflineCallNeeded, CoordinatorUnavailable, UnsettledCall)
        )
        billed = self.billing.billed.get(asset.name, 0)  # a billed failure keeps its cost
        state_name = AssetState.SKIPPED if refused else AssetState.FAILED
        if not refused:
            self.assessor.record_failure(asset, self.outputs, exc)
        self.results[asset.name] = AssetResult(
            name=asset.name,
            kind=asset.kind.value,
            state=state_name,
            reason=exc.message,
            outputs=asset.outputs,
            key=self.billing.keys.get(asset.name),
            cost_ticks=billed,
            estimate_ticks=self.estimator.ticks(asset) if refused or billed else 0,
            error=exc.message,
            hint=exc.hint,
        )
        self.reporter.emit(
            StepFinished(
                asset.name, state_name, exc.message, self.clock() - started, billed,
                error=exc.message,
            )
        )  # fmt: skip
        return StepStatus.REFUSED if refused else StepStatus.FAILED

    def _refusal_messages(self, results: list[AssetResult]) -> tuple[str, ...]:
        if not self.refused:
            return ()
        assets = self.mediafile.assets
        left = {
            r.name: self.estimator.ticks(assets[r.name])
            for r in results
            if r.state == AssetState.SKIPPED
        }
        return (self.budget.stopped(left),)
