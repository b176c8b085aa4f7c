"""One run: the selected steps scheduled and each carried to up to date, restored or built.

A step: resolve inputs → key → decide (the pure rebuild decision) → nothing
(up to date) | restore from the local or remote cache | reserve the budget,
take the remote lease, call the provider, check, store, materialize, lock,
bill, push. Every finished step is recorded before the next event, so a crash
loses at most the steps in flight.
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
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from imaginebuild.engine.estimates import expected_seconds
from imaginebuild.engine.facts import Facts, RunOptions, is_forced, url_pins
from imaginebuild.engine.keys import ActionFields
from imaginebuild.engine.rebuild import Action, Decision
from imaginebuild.engine.results import AssetResult, CommandResult, usd
from imaginebuild.engine.scheduler import StepStatus, run_steps
from imaginebuild.engine.takes import (
    REASON_SET_ASIDE,
    hold_error,
    keep_rejected,
    kept_pick,
    note,
    set_aside,
)
from imaginebuild.errors import (
    AssetOnHold,
    BudgetExceeded,
    CoordinatorUnavailable,
    CorruptBlob,
    ImaginebuildError,
    InvalidMedia,
    LockfileWouldChange,
    OfflineCallNeeded,
    RejectedTake,
    StoreError,
    TeamCapReached,
    UnsettledCall,
)
from imaginebuild.events import (
    Message,
    RunFinished,
    RunStarted,
    StepFinished,
    StepPhase,
    StepStarted,
)
from imaginebuild.model import Asset, RefKind
from imaginebuild.money import format_usd
from imaginebuild.providers.base import (
    GenerationRequest,
    GenerationResult,
    InputFile,
    Phase,
    Provider,
)
from imaginebuild.remote.link import BuiltElsewhere
from imaginebuild.store.cache import ActionEntry, BlobRef
from imaginebuild.store.hashing import sha256_file
from imaginebuild.store.lockfile import LockedOutput, LockEntry, PacedWriter
from imaginebuild.store.takes import TakeBook
from imaginebuild.untrusted import check_inputs_for_api
from imaginebuild.version import __version__

if TYPE_CHECKING:
    from imaginebuild.coordinator.session import SubmitGate, TeamHold, TeamSession
    from imaginebuild.engine.assess import Assessor
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
        from imaginebuild.engine.budget import Budget, run_allowance

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
        from imaginebuild.engine.billing import BillingBook
        from imaginebuild.engine.samekey import KeyTurns
        from imaginebuild.store.paid import PaidResults

        self.budget = Budget.for_run(run_allowance(self.mediafile, options.max_cost, state.folder))
        self.billing = BillingBook(state.layout.ledger, self.run_id, self.budget)
        self.paid = PaidResults(self.store.folder / "paid")
        self.key_turns = KeyTurns()
        self.outputs: dict[str, tuple[BlobRef, ...]] = {}
        self.results: dict[str, AssetResult] = {}
        self.providers: dict[str, Provider] = {}
        self.pools: dict[str, asyncio.Semaphore] = {}
        self.refused: list[str] = []
        self.lock_writer = PacedWriter(
            self.mediafile.lockfile_path, state.lock_entries(), time.monotonic
        )
        self._lock_timer: asyncio.TimerHandle | None = None
        self.team = _TeamLink(options.no_coordinator, self.env)  # issue 19
        self.takes = TakeBook.for_project(  # issue 17: every result an asset had
            self.store, self.mediafile.lockfile_path,
            lambda text: self.reporter.emit(Message("warning", text)),
        )  # fmt: skip
        self.rejected_keys: dict[str, tuple[str, str]] = {}  # key -> (asset, rejected take id)

    async def run(self, targets: tuple[str, ...]) -> CommandResult:
        """Schedule the selected steps and carry each one through; the run's result."""
        from imaginebuild.engine.scheduler import StepStatus

        options = self.options
        selected = self.dag.select(targets)
        if options.locked:
            self._refuse_if_lock_would_change(selected, options)
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
            self.lock_writer.flush()  # every finished step is in the lockfile before we return
            for provider in self.providers.values():
                with contextlib.suppress(Exception):
                    await provider.aclose()
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
                    name, asset.kind.value, "skipped", why, asset.outputs,
                    estimate_ticks=self.estimator.ticks(asset),
                )
            )  # fmt: skip
            self.reporter.emit(StepFinished(name, "skipped", why, 0.0))
        ledger_messages = self.billing.finish()
        exit_code = _exit_code(statuses) or (1 if ledger_messages else 0)
        messages = (
            *self._refusal_messages(results),
            *self.team.messages(),  # issue 19
            *ledger_messages,
        )
        result = CommandResult("run", tuple(results), exit_code=exit_code, messages=messages)
        self.reporter.emit(
            RunFinished(result.counts, self.clock() - started, usd(result.cost_ticks))
        )
        return result

    def _up_to_date_unstarted(self, name: str) -> bool:
        """Whether a step the run never started (it stopped after a failure) needed no
        work: then it is reported up to date, not skipped. Decided as `status` would."""
        asset = self.assessor.asset_for(name, self.options)
        try:
            forced = is_forced(name, self.options)
            f = self.assessor.assess(asset, self.outputs, forced=forced, fetch=False)
        except ImaginebuildError:
            return False
        if f.decision.action is not Action.UP_TO_DATE or f.outputs is None:
            return False
        self.outputs[name] = f.outputs
        self.results[name] = AssetResult(
            name, asset.kind.value, "up_to_date", "up to date", asset.outputs, f.key
        )
        self.reporter.emit(StepFinished(name, "up_to_date", "up to date", 0.0))
        return True

    async def _step(self, name: str) -> StepStatus:
        """Build one asset; every error becomes a FAILED or REFUSED status with a result."""
        asset = self.assessor.asset_for(name, self.options)
        started = self.clock()
        self.reporter.emit(StepStarted(name, "check"))
        try:
            urls = await self._fetch_urls(asset)
            f = self.assessor.assess(
                asset, self.outputs, forced=is_forced(name, self.options), fetch=True, urls=urls
            )
            await self._takes_first(f)  # a hold stops here; a retouch is set aside first
            if f.decision.action is Action.CALL and f.key:
                async with self.key_turns.turn(f.key) as again:  # a key is paid once per run
                    if again:
                        forced = is_forced(name, self.options) and f.key not in self.key_turns.built
                        f = self.assessor.assess(asset, self.outputs, forced=forced, fetch=True,
                                                 urls=urls)  # fmt: skip
                        self._hold_after_turn(f)
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
                return self._finish(f, restored, "restored", started)
            except CorruptBlob as exc:
                self.reporter.emit(Message("warning", f"{name}: {exc}; building it again"))
                self.store.delete_action(f.key or "")
                self.remote.distrust(f.key or "", f.entry.outputs if f.entry else ())
                f = dataclasses.replace(
                    f, decision=Decision(Action.CALL, f.decision.reasons), entry=None
                )
        if f.decision.action is Action.UP_TO_DATE:
            assert f.outputs is not None
            return self._finish(f, None, "up_to_date", started)
        try:
            return await self._call(f, started)
        except BuiltElsewhere:
            assert f.key is not None
            f = await self._fetch_remote(f.with_remote(await self.remote.get_async(f.key)))
            if f.decision.action is not Action.RESTORE:
                return await self._call(f, started)
            restored = await asyncio.to_thread(self._restore, f)
            return self._finish(f, restored, "restored", started)

    async def _call(self, f: Facts, started: float) -> StepStatus:
        asset = f.asset
        assert f.key is not None and f.fields is not None
        estimate = self.estimator.ticks(asset)
        billable = 0 if asset.provider == "local" else estimate  # rehearsals cost nothing
        if self.options.offline:
            raise OfflineCallNeeded(
                f"{asset.name} needs a provider call ({f.decision.summary}) and --offline was given"
            )
        if asset.provider != "local":  # the API's input limits, checked before it is paid
            check_inputs_for_api(asset.name, f.inputs)
        forced = is_forced(asset.name, self.options)
        if forced:
            self.paid.discard(f.key)
        elif self.paid.get(f.key) is not None:
            return await self._store_kept(f, started)
        self._refuse_unsettled(asset, f.key, forced)
        if not self.budget.reserve(asset.name, billable):
            self.refused.append(asset.name)
            raise BudgetExceeded(self.budget.refusal(asset.name, estimate))
        provider = self._provider(asset.provider)
        self._drop_stored_job(f.key, f.entry or self.store.get_action(f.key))
        inputs = tuple(self._verified_input(asset, i) for i in f.inputs)
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
                roll=self._roll(asset.name, f.key),
                on_billed=account.on_billed,  # record first: the ledger line before all else
            )

            def progress(phase: Phase, detail: str) -> None:
                self.reporter.emit(StepPhase(asset.name, phase.value, detail))

            hold = None
            try:
                # The lease is held until the build is pushed (closed below), so a machine
                # waiting on it finds the entry, never a released lease and nothing to fetch.
                await held.enter_async_context(
                    self.remote.lease(f.key, self.run_id, self.options.no_push)
                )
                async with self.pools[asset.provider]:
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
            billed = result.reported_ticks
            cost = account.billed  # what the ledger says this step's calls were billed
            self.team.finish(hold, cost if account.reported else billed, None, estimate)
            record = {
                "imaginebuild": __version__,
                "built_at": _utc_now(),
                "provider": asset.provider,
                "model": asset.model,
                "request_ids": list(result.request_ids),
                "cost_usd": usd(cost),
                "cost_estimated": billed is None and asset.provider != "local",
                "estimate_usd": usd(estimate),
                "calls": [
                    {
                        "endpoint": c.endpoint,
                        "request_id": c.request_id,
                        "x_request_id": c.http_request_id,  # the API's id of the submission
                        "cost_usd": None if c.cost_ticks is None else usd(c.cost_ticks),
                        "retries": c.retries,
                        "started_at": _iso(c.started_at) if c.started_at else None,
                        "duration_s": round(c.duration_s, 3),
                    }
                    for c in result.calls
                ],
            }
            entry = await self._store_paid(f, result, inputs, record)
            self._forget_job(f.key)
            await self.remote.push_async(entry, self.options.no_push)
            built = dataclasses.replace(f, outputs=entry.outputs, entry=entry)
            self.key_turns.built.add(f.key)
            return self._finish(built, entry, "built", started)
        finally:
            await held.aclose()
            shutil.rmtree(workdir, ignore_errors=True)

    def _keep(
        self,
        f: Facts,
        result: GenerationResult,
        inputs: tuple[InputFile, ...],
        record: dict[str, Any],
    ) -> ActionEntry:
        """Check a call's outputs, store them, record the action and put them in place."""
        from imaginebuild.engine.outputcheck import check_outputs

        assert f.key is not None and f.fields is not None
        try:
            check_outputs(f.asset, result.outputs, inputs)
        except InvalidMedia as exc:
            self._forget_job(f.key)  # bad at the source: resuming the job cannot help
            files = [(o.path, o.media_type) for o in result.outputs]
            kept = keep_rejected(self.store, self.takes, f.asset.name, f.key, f.fields.to_json(),
                                 files, record, exc.message)  # fmt: skip
            if kept is None:
                raise
            self.rejected_keys[f.key] = (f.asset.name, kept.id)
            raise RejectedTake(
                f"{exc.message}; the paid result is kept as rejected take {kept.id}",
                info=exc.info,
                hint=f"`imaginebuild accept {f.asset.name}` uses it despite the check; "
                f"`imaginebuild run --force {f.asset.name}` pays for a new take",
            ) from exc
        blobs = tuple(self.store.put_file(o.path, o.media_type, move=True) for o in result.outputs)
        previous = f.entry or self.store.get_action(f.key)
        takes = (*previous.takes, previous.outputs) if previous is not None else ()
        entry = ActionEntry(f.key, blobs, record, takes)
        self.store.put_action(entry)
        self.materializer.materialize(
            f.asset, blobs, {"key": f.key, **f.fields.to_json(), **record}
        )
        return entry

    def _hold_after_turn(self, f: Facts) -> None:
        """Hold a step assessed again after another step's turn on its key: on hold as
        such, or because that step just paid for the key and had the result rejected (a
        key is paid once per run; that result waits for `accept` or `--force`)."""
        if f.decision.action is Action.HOLD:
            raise hold_error(f.asset.name, f.decision)
        if f.decision.action is not Action.CALL or f.key not in self.rejected_keys:
            return
        if is_forced(f.asset.name, self.options):
            return
        other, take = self.rejected_keys[f.key]
        raise AssetOnHold(
            f"{f.asset.name}: the same request was just paid for {other} and its result "
            f"failed the output check (rejected take {take}); not paid for again",
            hint=f"`imaginebuild accept {other}` and run again, or "
            f"`imaginebuild run --force {f.asset.name}`",
        )

    def _roll(self, name: str, key: str) -> int:
        """Which take of `key` a call makes: a `--force` asks for the next one; any other
        call for the first (a deterministic provider then remakes the same bytes)."""
        if not is_forced(name, self.options):
            return 0
        return sum(t.key == key for t in self.takes.read(name).takes)

    async def _takes_first(self, f: Facts) -> None:
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
            self.reporter.emit(Message("warning", f"{f.asset.name}: the outputs retouched by "
                                       f"hand are kept as take {kept.id} "
                                       f"(`imaginebuild takes {f.asset.name}`)"))  # fmt: skip

    async def _store_paid(
        self,
        f: Facts,
        result: GenerationResult,
        inputs: tuple[InputFile, ...],
        record: dict[str, Any],
    ) -> ActionEntry:
        """Check and store a result that was paid for; whatever fails, it stays kept under
        its key (see engine/paidresults.py) so no later run pays for it again."""
        from imaginebuild.engine.paidresults import keep_received

        assert f.key is not None
        paid = f.asset.provider != "local" and keep_received(self.paid, f.key, result, record)
        try:
            # Decoding, hashing, copying and fsyncs take milliseconds per output: done on a
            # worker thread, so the event loop keeps polling and starting other steps.
            entry = await asyncio.to_thread(self._keep, f, result, inputs, record)
        except (ImaginebuildError, OSError) as exc:
            if isinstance(exc, RejectedTake):
                self.paid.discard(f.key)  # kept once, as the rejected take: not also here
            elif paid and self.store.get_action(f.key) is None:
                self.paid.note(f.key, str(exc))
                if isinstance(exc, OSError):
                    raise StoreError(
                        f"{f.asset.name}: the result was paid for but could not be stored "
                        f"({exc}); it is kept in {self.paid.folder} and stored by the next run "
                        "without a call"
                    ) from exc
            else:
                self.paid.discard(f.key)
            raise
        if paid:
            self.paid.discard(f.key)
        return entry

    async def _store_kept(self, f: Facts, started: float) -> StepStatus:
        """Store the result an earlier run paid for and could not keep: no call, no bill."""
        from imaginebuild.engine.paidresults import take_kept

        assert f.key is not None
        workdir = Path(tempfile.mkdtemp(prefix=f"work-{os.getpid()}-", dir=self.store.tmp_dir()))
        try:
            kept = take_kept(self.paid, f.key, workdir)
            if kept is None:
                raise StoreError(f"{f.asset.name}: the kept result of {f.key[:12]} is unreadable")
            result, record, why = kept
            self.reporter.emit(
                Message("info", f"{f.asset.name}: storing the result paid for earlier ({why})")
            )
            inputs = tuple(self._verified_input(f.asset, i) for i in f.inputs)
            entry = await self._store_paid(f, result, inputs, dict(record))
            self._forget_job(f.key)
            stored = dataclasses.replace(f, outputs=entry.outputs, entry=entry)
            return self._finish(stored, entry, "restored", started)
        finally:
            shutil.rmtree(workdir, ignore_errors=True)

    def _refuse_unsettled(self, asset: Asset, key: str, forced: bool) -> None:
        """A key whose last call may have been billed (its answer was lost) is not sent
        again unless forced; a journaled job of it is resumed instead, at no charge."""
        held = self.billing.unsettled(key)
        if held is None or forced or asset.provider == "local":
            return
        from imaginebuild.store.journal import Journal

        if Journal(self.state.layout.journal).get(key) is not None:
            return
        raise UnsettledCall(
            f"{asset.name} not started: its last call ({held.request_id or 'no request id'}, "
            f"{held.time}) may have been billed {format_usd(held.ticks)} and its answer was lost",
            hint=f"run `imaginebuild run --force {asset.name}` to pay for a new call",
        )

    async def _fetch_remote(self, f: Facts) -> Facts:
        """Bring a remote entry's blobs into the local store; on failure, build instead."""
        assert f.entry is not None
        self.reporter.emit(
            StepPhase(f.asset.name, Phase.DOWNLOADING.value, "from the remote cache")
        )
        if await self.remote.fetch_async(f.entry):
            return dataclasses.replace(f, remote=False)
        reasons = tuple(r for r in f.decision.reasons if r.code != "remote")
        return dataclasses.replace(
            f, decision=Decision(Action.CALL, reasons), entry=None, outputs=None, remote=False
        )

    def _verified_input(self, asset: Asset, item: InputFile) -> InputFile:
        """An input whose bytes were just checked against its hash: a paid call never
        starts from a corrupt cache blob. A corrupt blob is dropped and the asset's
        materialized copy used instead when that one is intact."""
        if item.path.parent.parent != self.store.blobs:
            return item  # a project file or an output just hashed by the survey
        try:
            self.store.verify_blob(item.sha256)
            return item
        except CorruptBlob as exc:
            for ref in asset.inputs:
                if ref.kind is not RefKind.ASSET or ref.asset is None:
                    continue
                upstream = self.mediafile.assets[ref.asset]
                candidate = self.assessor.root / upstream.outputs[ref.index or 0]
                with contextlib.suppress(OSError):
                    if sha256_file(candidate) == item.sha256:
                        self.reporter.emit(Message("warning", f"{exc}; using {candidate.name}"))
                        return dataclasses.replace(item, path=candidate)
            raise

    def _restore(self, f: Facts) -> ActionEntry:
        assert f.entry is not None and f.fields is not None and f.key is not None
        self._drop_stored_job(f.key, f.entry)
        provenance = {"key": f.key, **f.fields.to_json(), **f.entry.record}
        self.materializer.materialize(f.asset, f.entry.outputs, provenance)
        return f.entry

    def _finish(
        self,
        f: Facts,
        entry: ActionEntry | None,
        outcome: str,
        started: float,
    ) -> StepStatus:
        """Record a finished step: lockfile first, then the result and the event."""
        from imaginebuild.engine.scheduler import StepStatus

        assert f.key is not None and f.fields is not None
        outputs = entry.outputs if entry is not None else f.outputs
        assert outputs is not None
        if entry is not None:
            self._lock_asset(f.asset, f.key, f.fields, outputs, entry.record)
            note(self.takes, f.asset.name, entry, f.fields.to_json(), outcome == "built")
        self.outputs[f.asset.name] = outputs
        self.state.failures.clear(f.asset.name)
        record: Mapping[str, Any] = entry.record if entry is not None else {}
        cost = _ticks_of(record.get("cost_usd")) if outcome == "built" else 0
        reason = f.decision.summary if outcome != "up_to_date" else "up to date"
        self.results[f.asset.name] = AssetResult(
            name=f.asset.name,
            kind=f.asset.kind.value,
            state=outcome,
            reason=reason,
            outputs=f.asset.outputs,
            key=f.key,
            cost_ticks=cost,
            estimate_ticks=_ticks_of(record.get("estimate_usd")) if outcome == "built" else 0,
            request_ids=tuple(record.get("request_ids", ())) if outcome == "built" else (),
            reasons=f.decision.reasons,
        )
        self.reporter.emit(
            StepFinished(f.asset.name, outcome, reason, self.clock() - started, usd(cost))
        )
        return StepStatus.OK

    def _fail(self, asset: Asset, exc: ImaginebuildError, started: float) -> StepStatus:
        from imaginebuild.engine.scheduler import StepStatus

        refused = isinstance(
            exc, (BudgetExceeded, OfflineCallNeeded, CoordinatorUnavailable, UnsettledCall)
        )
        billed = self.billing.billed.get(asset.name, 0)  # a billed failure keeps its cost
        state_name = "skipped" if refused else "failed"
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
                asset.name, state_name, exc.message, self.clock() - started, usd(billed),
                error=exc.message,
            )
        )  # fmt: skip
        return StepStatus.REFUSED if refused else StepStatus.FAILED

    def _provider(self, name: str) -> Provider:
        if name not in self.providers:
            from imaginebuild.providers import create_provider
            from imaginebuild.providers.base import ProviderContext

            context = ProviderContext(
                settings=self.mediafile.settings(name),
                state_dir=self.state.folder,
                env=self.env,
                retry_expired=self.options.retry_expired,
            )
            provider = create_provider(name, context)
            self.providers[name] = provider
            import asyncio

            self.pools[name] = asyncio.Semaphore(max(1, provider.max_concurrency))
        return self.providers[name]

    async def _fetch_urls(self, asset: Asset) -> dict[str, BlobRef]:
        """Fetch URL inputs that are not pinned in the lockfile (or whose blob is gone)."""
        from imaginebuild.engine.fetch import fetch_to_file

        pins = url_pins(self.state.lock_entries().get(asset.name))
        fetched: dict[str, BlobRef] = {}
        for ref in asset.inputs:
            if ref.kind is not RefKind.URL or ref.url is None:
                continue
            if ref.url in pins and self.store.has_blob(pins[ref.url]):
                continue
            path, media = await fetch_to_file(ref.url, self.store.tmp_dir(), self.env)
            fetched[ref.url] = self.store.put_file(path, media, move=True)
        return fetched

    def _lock_asset(
        self,
        asset: Asset,
        key: str,
        fields: ActionFields,
        blobs: tuple[BlobRef, ...],
        record: Mapping[str, Any],
    ) -> None:
        entries = self.state.lock_entries()
        entries[asset.name] = LockEntry(
            key=key,
            fields=fields.to_json(),
            outputs=tuple(
                LockedOutput(path, b.sha256, b.size, b.media_type)
                for path, b in zip(asset.outputs, blobs, strict=True)
            ),
            record=record,
            pick=kept_pick(entries.get(asset.name), key, blobs),  # a restore keeps the pick
        )
        self.lock_writer.changed()
        if self.lock_writer.pending and self._lock_timer is None:
            self._lock_timer = asyncio.get_running_loop().call_later(
                self.lock_writer.due_in(), self._write_pending_lock
            )

    def _write_pending_lock(self) -> None:
        self._lock_timer = None
        self.lock_writer.flush()

    def _drop_stored_job(self, key: str, entry: ActionEntry | None) -> None:
        """Forget a journaled job whose result is already stored (a kill can fall between
        storing it and forgetting it): resuming it would pass an old take off as new."""
        if entry is None or not self.state.layout.journal.is_dir():
            return
        from imaginebuild.store.journal import Journal

        journal = Journal(self.state.layout.journal)
        record = journal.get(key)
        stored = {str(r) for r in entry.record.get("request_ids", [])}
        if record is not None and record.request_id in stored:
            journal.remove(key)

    def _forget_job(self, key: str) -> None:
        if self.state.layout.journal.is_dir():
            from imaginebuild.store.journal import Journal

            Journal(self.state.layout.journal).remove(key)

    def _refusal_messages(self, results: list[AssetResult]) -> tuple[str, ...]:
        if not self.refused:
            return ()
        left = [r for r in results if r.state == "skipped"]
        would = sum(self.estimator.ticks(self.mediafile.assets[r.name]) for r in left)
        names = ", ".join(r.name for r in left)
        return (
            f"{self.budget.limit_name()} budget reached: left unbuilt {names} "
            f"(estimated {format_usd(would)} more)",
        )

    def _refuse_if_lock_would_change(self, selected: tuple[str, ...], options: RunOptions) -> None:
        facts = self.assessor.survey(selected, options)
        changing = [
            n
            for n, f in facts.items()
            if f.decision.action is Action.CALL
            or (f.decision.action is Action.RESTORE and self.state.lock_entries().get(n) is None)
            or (
                f.decision.action is Action.RESTORE
                and (entry := self.state.lock_entries().get(n)) is not None
                and entry.key != f.key
            )
        ]
        if changing:
            raise LockfileWouldChange(
                f"--locked: the lockfile would change for {', '.join(changing)}",
                hint="run without --locked and commit mediafile.lock",
            )


class _TeamLink:
    """The run's link to the team coordinator (issue 19): opened on the first paid call,
    never for a run that is all cached or local; `--no-coordinator` keeps it shut."""

    def __init__(self, disabled: bool, env: Mapping[str, str]) -> None:
        self.disabled = disabled
        self.env = env
        self.session: TeamSession | None = None
        self.failed: CoordinatorUnavailable | None = None
        self.refused = 0
        self.capped = 0

    def hold(self, asset: Asset, key: str, ticks: int) -> TeamHold | None:
        """The step's hold in the team caps (None: local provider, or no coordinator)."""
        if self.disabled or asset.provider == "local":
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


def _exit_code(statuses: Mapping[str, StepStatus]) -> int:
    from imaginebuild.engine.scheduler import StepStatus

    values = set(statuses.values())
    if StepStatus.FAILED in values:
        return 1
    if StepStatus.REFUSED in values:
        return 3
    return 0


def _ticks_of(value: object) -> int:
    if value is None:
        return 0
    from imaginebuild.money import usd_to_ticks

    return usd_to_ticks(str(value))


def _utc_now() -> str:
    return _iso(time.time())


def _iso(unix_time: float) -> str:
    from imaginebuild.store.ledger import format_time

    return format_time(unix_time)
