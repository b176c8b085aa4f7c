"""The facade that wires mediafile, rebuilder, scheduler, store, ledger and providers.

    load(path) ─▶ Project ─┬─ plan()/status()/why()  survey: facts → rebuild.decide (pure)
                           ├─ run()                   scheduler → one step per asset
                           └─ checkout()/show()/gc()  lockfile ↔ store

A run step: resolve inputs → key → decide → (up to date | restore from the
cache | reserve budget → call provider → check → store → materialize → lock →
ledger). Every finished step is recorded before the next event, so a crash
loses at most the steps in flight.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

from imaginebuild import __version__
from imaginebuild.errors import (
    BudgetExceeded,
    CorruptBlob,
    ImaginebuildError,
    InputError,
    Interrupted,
    InvalidMedia,
    JobFailed,
    LockfileError,
    LockfileWouldChange,
    ModerationRefused,
    OfflineCallNeeded,
    ProviderError,
    StoreError,
    UsageError,
)
from imaginebuild.estimates import Estimator
from imaginebuild.events import (
    Message,
    NullReporter,
    Reporter,
    RunFinished,
    RunStarted,
    StepFinished,
    StepPhase,
    StepStarted,
)
from imaginebuild.failures import FailureLog
from imaginebuild.graph import Dag
from imaginebuild.hashing import StatCache, sha256_file
from imaginebuild.keys import ActionFields, InputDigest, action_key
from imaginebuild.lockfile import LockedOutput, LockEntry, read_lockfile, write_lockfile
from imaginebuild.model import Asset, InputPolicy, Media, Mediafile, RefKind
from imaginebuild.projectlock import ProjectLock
from imaginebuild.providers.base import GenerationRequest, InputFile, Phase, Provider
from imaginebuild.rebuild import Action, Decision, Reason, decide
from imaginebuild.remotelink import BuiltElsewhere, RemoteLink
from imaginebuild.results import AssetResult, CommandResult, usd
from imaginebuild.store import ActionEntry, BlobRef, Store, default_cache_dir

if TYPE_CHECKING:  # asyncio and the scheduler load only when something must be built
    import asyncio

    from imaginebuild.scheduler import StepStatus

_MEDIA_BY_SUFFIX = {
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".webp": "image/webp",
    ".mp4": "video/mp4",
}
# Rough seconds per step, only to rank the critical path (videos are the slow ones).
_WEIGHT_IMAGE_S = 10.0
_WEIGHT_VIDEO_BASE_S = 60.0
_WEIGHT_VIDEO_PER_S = 15.0


def load(
    path: str | os.PathLike[str], *, policy: InputPolicy | None = None, **kwargs: Any
) -> Project:
    """Load and validate a mediafile; raises MediafileError with every problem found.

    `policy` says what inputs outside the project the user allows (default: the
    environment's IMAGINEBUILD_ALLOW_READ / IMAGINEBUILD_ALLOW_HTTP_LOOPBACK).
    """
    from imaginebuild.mediafile import load_mediafile

    if policy is None:
        policy = InputPolicy.from_env(kwargs.get("env") or os.environ)
    return Project(load_mediafile(Path(path), policy), **kwargs)


@dataclass(frozen=True)
class RunOptions:
    """How `run` behaves; the defaults are a plain `imaginebuild run`."""

    jobs: int = 8
    provider: str | None = None  # build every asset with this provider (changes keys)
    force: tuple[str, ...] | None = None  # names to re-roll; () means every selected asset
    keep_going: bool = False
    max_cost_usd: Decimal | None = None
    offline: bool = False
    locked: bool = False
    retry_expired: bool = False
    no_push: bool = False  # do not upload new builds to the remote cache


@dataclass(frozen=True)
class GcResult:
    """What gc dropped (or would drop, with dry_run)."""

    actions: int
    blobs: int
    bytes: int
    dry_run: bool


@dataclass
class _Facts:
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


@dataclass
class _RunState:
    """Mutable bookkeeping of one run (touched only from the event loop's thread)."""

    options: RunOptions
    run_id: str
    outputs: dict[str, tuple[BlobRef, ...]] = field(default_factory=dict)
    results: dict[str, AssetResult] = field(default_factory=dict)
    providers: dict[str, Provider] = field(default_factory=dict)
    pools: dict[str, asyncio.Semaphore] = field(default_factory=dict)
    refused: list[str] = field(default_factory=list)


class Project:
    """One mediafile with its lockfile, cache and providers."""

    def __init__(
        self,
        mediafile: Mediafile,
        *,
        env: Mapping[str, str] | None = None,
        reporter: Reporter | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.mediafile = mediafile
        self.root = mediafile.root
        self.env: Mapping[str, str] = dict(os.environ if env is None else env)
        self.reporter: Reporter = reporter or NullReporter()
        self.clock = clock
        self.state_dir = self.root / ".imaginebuild"
        self.store = Store(default_cache_dir(self.root, dict(self.env)))
        self.dag = Dag.from_assets(mediafile.assets)
        self._lock: dict[str, LockEntry] | None = None
        self._stat: StatCache | None = None
        from imaginebuild.credentials import SigningConfig

        self.signing = SigningConfig.from_env(self.env)  # C2PA signing of outputs, if configured
        self.remote = RemoteLink(
            mediafile,
            self.env,
            self.store,
            warn=lambda text: self.reporter.emit(Message("warning", text)),
            info=lambda text: self.reporter.emit(Message("info", text)),
        )
        self.estimator = Estimator(mediafile)
        self.failures = FailureLog(self.state_dir)
        self._budget: Any = None

    # ------------------------------------------------------------------ public API

    def validate(self) -> None:
        """The mediafile was validated when loaded; kept for the library's symmetry."""

    def lock_entries(self) -> dict[str, LockEntry]:
        """The lockfile's entries (read once)."""
        if self._lock is None:
            self._lock = read_lockfile(
                self.mediafile.lockfile_path,
                lambda text: self.reporter.emit(Message("warning", text)),
            )
        return self._lock

    def status(self, targets: Iterable[str] = ()) -> CommandResult:
        """Each selected asset: up_to_date / stale / never_built / failed, with reasons."""
        return self._survey_result("status", targets, RunOptions())

    def plan(self, targets: Iterable[str] = (), options: RunOptions | None = None) -> CommandResult:
        """What `run` would do, why, and what it would cost; calls nothing, writes nothing."""
        return self._survey_result("plan", targets, options or RunOptions())

    def why(self, name: str) -> AssetResult:
        """Why one asset is (or is not) up to date: the fields changed since its last build."""
        if name not in self.mediafile.assets:
            self.dag.select([name])  # raises UsageError with did-you-mean
        return self.status([name]).get(name)

    def show(self, name: str) -> dict[str, Any]:
        """The provenance record of an asset's last build, and its earlier takes in the cache."""
        if name not in self.mediafile.assets:
            self.dag.select([name])
        entry = self.lock_entries().get(name)
        if entry is None:
            raise UsageError(f"{name!r} has never been built", hint=f"imaginebuild run {name}")
        takes: list[list[dict[str, object]]] = []
        cached = self.store.get_action(entry.key)
        if cached is not None:
            takes = [[o.to_json() for o in take] for take in cached.takes]
        return {
            "name": name,
            "kind": self.mediafile.assets[name].kind.value,
            "key": entry.key,
            **dict(entry.fields),
            "outputs": [o.to_json() for o in entry.outputs],
            "record": dict(entry.record),
            "earlier_takes": takes,
        }

    def run(self, targets: Iterable[str] = (), options: RunOptions | None = None) -> CommandResult:
        """Build the targets (default: all) and what they need; the sync entry point."""
        options = options or RunOptions()
        wanted = tuple(targets)
        self._check_options(options)
        self._check_signing()
        started = self.clock()
        with ProjectLock(self.state_dir, self._wait_message):
            self._lock = None  # another process may have written it while we waited
            self._prune_lock(options.locked)
            self._tidy()
            state = _RunState(options, uuid.uuid4().hex[:12])
            settled = self._settled(wanted, options)
            if settled is not None:
                self._save_stat_cache()
                return dataclasses.replace(settled, seconds=self.clock() - started)
            import asyncio

            try:
                result = asyncio.run(self._run(wanted, state))
            except KeyboardInterrupt:
                self._save_stat_cache()
                done = sum(1 for r in state.results.values() if r.state in ("built", "restored"))
                raise Interrupted(
                    f"interrupted; {done} finished step(s) were kept",
                    hint="run again to finish: jobs in flight are resumed, not paid twice",
                ) from None
            self._save_stat_cache()
        return dataclasses.replace(result, seconds=self.clock() - started)

    def _settled(self, targets: tuple[str, ...], options: RunOptions) -> CommandResult | None:
        """The run's result if every selected asset is already up to date, else None.

        The no-op path: decided synchronously from the lockfile and the stat
        cache, without starting an event loop or opening the action cache.
        """
        if options.force is not None:
            return None
        selected = self.dag.select(targets)
        try:
            facts = self._survey(selected, options)
        except ImaginebuildError:
            return None  # let the real run report it against the asset
        if any(f.decision.action is not Action.UP_TO_DATE for f in facts.values()):
            return None
        self.reporter.emit(RunStarted(len(selected)))
        results = []
        for name in selected:
            f = facts[name]
            results.append(
                AssetResult(
                    name, f.asset.kind.value, "up_to_date", "up to date", f.asset.outputs, f.key
                )
            )
            self.reporter.emit(StepFinished(name, "up_to_date", "up to date", 0.0))
        result = CommandResult("run", tuple(results))
        self.reporter.emit(RunFinished(result.counts, 0.0, "0"))
        return result

    def checkout(self, targets: Iterable[str] = (), *, pull: bool = False) -> CommandResult:
        """Materialize the lockfile's outputs from the cache, fetching missing blobs from
        the remote cache; `pull` also brings the action entries into the local cache.
        Never calls a provider."""
        results: list[AssetResult] = []
        self._check_signing()
        wanted = set(self.dag.select(targets)) if tuple(targets) else None
        with ProjectLock(self.state_dir, self._wait_message):
            self._lock = None
            self._prune_lock(locked=False)
            self._tidy()
            for name, entry in sorted(self.lock_entries().items()):
                if wanted is None or name in wanted:
                    results.append(self._checkout_one(name, entry, pull))
            self._save_stat_cache()
        failed = any(r.state == "failed" for r in results)
        command = "pull" if pull else "checkout"
        return CommandResult(command, tuple(results), exit_code=1 if failed else 0)

    def push(self, targets: Iterable[str] = ()) -> CommandResult:
        """Upload the locked builds of the targets (default: all) to the remote cache."""
        remote = self.remote.require("push")
        selected = self.dag.select(targets)
        results = []
        for name in selected:
            kind = self.mediafile.assets[name].kind.value
            locked = self.lock_entries().get(name)
            entry = self.store.get_action(locked.key) if locked else None
            if locked is None or entry is None:
                why = "never built" if locked is None else "not in the local cache"
                results.append(AssetResult(name, kind, "skipped", why))
                continue
            try:
                pushed = remote.push(entry, self.store)
            except StoreError as exc:
                results.append(AssetResult(name, kind, "failed", exc.message, error=exc.message))
                continue
            state = "pushed" if pushed else "up_to_date"
            results.append(AssetResult(name, kind, state, state.replace("_", " "), key=entry.key))
        failed = any(r.state == "failed" for r in results)
        return CommandResult("push", tuple(results), exit_code=1 if failed else 0)

    def gc_remote(self, *, dry_run: bool = True) -> GcResult:
        """Drop remote entries and blobs this project's lockfile does not reference.

        A remote shared by several projects must be collected from a checkout
        that knows all their lockfiles; hence a dry run by default.
        """
        remote = self.remote.require("gc --remote")
        entries = self.lock_entries()
        keep_blobs = {o.sha256 for e in entries.values() for o in e.outputs}
        dropped = remote.gc({e.key for e in entries.values()}, keep_blobs, dry_run=dry_run)
        return GcResult(
            len(dropped.drop_keys), len(dropped.drop_blobs), dropped.freed_bytes, dry_run
        )

    def gc(self, *, dry_run: bool = False) -> GcResult:
        """Drop cache entries and blobs that the lockfile does not reference."""
        with ProjectLock(self.state_dir, self._wait_message):
            self._lock = None
            self._prune_lock(locked=False)
            entries = list(self.lock_entries().values())
            for lockfile in self.store.registered_lockfiles():
                if lockfile != self.mediafile.lockfile_path:
                    entries += read_lockfile(lockfile).values()  # a shared cache: keep theirs
            keep_keys = {e.key for e in entries}
            keep_blobs = {o.sha256 for e in entries for o in e.outputs}
            keep_blobs |= {sha for e in entries for sha in _url_pins(e).values()}
            drop_keys = []
            for key in self.store.action_keys():
                entry = self.store.get_action(key)
                if key in keep_keys and entry is not None:
                    keep_blobs |= {o.sha256 for take in (entry.outputs, *entry.takes) for o in take}
                else:
                    drop_keys.append(key)
            drop_blobs = [sha for sha in self.store.iter_blobs() if sha not in keep_blobs]
            freed = sum(self.store.blob_path(sha).stat().st_size for sha in drop_blobs)
            if not dry_run:
                for key in drop_keys:
                    self.store.delete_action(key)
                for sha in drop_blobs:
                    self.store.delete_blob(sha)
        return GcResult(len(drop_keys), len(drop_blobs), freed, dry_run)

    # ------------------------------------------------------------------ surveys

    def _survey_result(
        self, command: str, targets: Iterable[str], options: RunOptions
    ) -> CommandResult:
        selected = self.dag.select(targets)
        facts = self._survey(selected, options)
        self._save_stat_cache()
        failures = self.failures.read()
        results = []
        for name in selected:
            f = facts[name]
            state = _survey_state(f.decision, command)
            if state != "up_to_date" and failures.get(name) == f.key and f.key is not None:
                state = "failed"
            results.append(
                AssetResult(
                    name=name,
                    kind=f.asset.kind.value,
                    state=state,
                    reason=_plan_reason(f.decision) if command == "plan" else f.decision.summary,
                    outputs=f.asset.outputs,
                    key=f.key,
                    estimate_ticks=f.estimate_ticks,
                    reasons=f.decision.reasons,
                )
            )
        return CommandResult(command, tuple(results))

    def _survey(self, selected: Iterable[str], options: RunOptions) -> dict[str, _Facts]:
        """Decide every selected asset in order, assuming calls happen where needed."""
        facts: dict[str, _Facts] = {}
        known: dict[str, tuple[BlobRef, ...] | None] = {}
        for name in selected:
            asset = self._asset(name, options)
            f = self._assess(asset, known, forced=_forced(name, options), fetch=False)
            if f.decision.action is Action.CALL and f.key and not _forced(name, options):
                f = self._from_remote(f, self.remote.get(f.key))
            if f.decision.action is Action.CALL:
                f.estimate_ticks = self._estimate(asset)
            facts[name] = f
            known[name] = f.outputs
        return facts

    def _assess(
        self,
        asset: Asset,
        known: Mapping[str, tuple[BlobRef, ...] | None],
        *,
        forced: bool,
        fetch: bool,
        urls: Mapping[str, BlobRef] | None = None,
    ) -> _Facts:
        """Gather an asset's facts (input hashes, lockfile, cache) and decide it."""
        locked = self.lock_entries().get(asset.name)
        inputs, digests, pending = self._inputs(asset, known, locked, urls or {})
        fields = ActionFields(
            kind=asset.kind.value,
            provider=asset.provider,
            model=asset.model,
            params=asset.params(),
            prompt=asset.prompt,
            variant=asset.variant,
            inputs=digests,
        )
        if pending:
            decision = decide(
                fields=fields,
                key=None,
                locked_key=locked.key if locked else None,
                locked_fields=locked.fields if locked else None,
                outputs_ok=False,
                cached=False,
                pending=pending,
            )
            return _Facts(asset, None, None, decision, None)
        key = action_key(fields)
        up_to_date = locked is not None and locked.key == key and self._outputs_ok(asset, locked)
        entry = None if (up_to_date and not forced) else self.store.get_action(key)
        decision = decide(
            fields=fields,
            key=key,
            locked_key=locked.key if locked else None,
            locked_fields=locked.fields if locked else None,
            outputs_ok=up_to_date,
            cached=entry is not None,
            forced=forced,
        )
        outputs: tuple[BlobRef, ...] | None = None
        if decision.action is Action.UP_TO_DATE and locked is not None:
            outputs = tuple(BlobRef(o.sha256, o.size, o.media_type) for o in locked.outputs)
        elif decision.action is Action.RESTORE and entry is not None:
            outputs = entry.outputs
        return _Facts(asset, fields, key, decision, outputs, entry, inputs)

    def _inputs(
        self,
        asset: Asset,
        known: Mapping[str, tuple[BlobRef, ...] | None],
        locked: LockEntry | None,
        urls: Mapping[str, BlobRef],
    ) -> tuple[tuple[InputFile, ...], tuple[InputDigest, ...], tuple[str, ...]]:
        """Resolve `inputs:` to hashed local files; names upstream assets not built yet."""
        files: list[InputFile] = []
        digests: list[InputDigest] = []
        pending: list[str] = []
        pins = _url_pins(locked)
        for ref in asset.inputs:
            if ref.kind is RefKind.ASSET:
                assert ref.asset is not None
                outs = known.get(ref.asset)
                if outs is None:
                    if ref.asset not in pending:
                        pending.append(ref.asset)
                    continue
                index = ref.index or 0
                blob = outs[index]
                path = self.store.blob_path(blob.sha256)
                if not path.is_file():
                    # An up-to-date upstream whose outputs came from git, not the cache:
                    # its materialized file was just verified against this hash.
                    path = self.root / self.mediafile.assets[ref.asset].outputs[index]
                files.append(InputFile(path, blob.sha256, blob.media_type))
                digests.append(InputDigest(ref.raw, blob.sha256, ref.asset))
            elif ref.kind is RefKind.FILE:
                assert ref.path is not None
                path = self.root / ref.path
                try:
                    digest = self.stat_cache().sha256(path)
                except OSError as exc:
                    raise InputError(
                        f"{asset.name}: cannot read input {ref.raw!r}: {exc.strerror}"
                    ) from exc
                media = _MEDIA_BY_SUFFIX.get(path.suffix.lower(), "application/octet-stream")
                files.append(InputFile(path, digest, media))
                digests.append(InputDigest(ref.raw, digest))
            else:
                assert ref.url is not None
                blob_or_none = urls.get(ref.url)
                if blob_or_none is None and ref.url in pins and self.store.has_blob(pins[ref.url]):
                    sha = pins[ref.url]
                    media = _media_of_blob(self.store.blob_path(sha))
                    blob_or_none = BlobRef(sha, self.store.blob_path(sha).stat().st_size, media)
                if blob_or_none is None:
                    pending.append(ref.url)
                    continue
                path = self.store.blob_path(blob_or_none.sha256)
                files.append(InputFile(path, blob_or_none.sha256, blob_or_none.media_type, ref.url))
                digests.append(InputDigest(ref.raw, blob_or_none.sha256))
        return tuple(files), tuple(digests), tuple(pending)

    def _outputs_ok(self, asset: Asset, locked: LockEntry) -> bool:
        """Whether the materialized outputs are exactly what the lockfile says."""
        if tuple(o.path for o in locked.outputs) != asset.outputs:
            return False
        for out in locked.outputs:
            try:
                if self.stat_cache().sha256(self.root / out.path) != out.sha256:
                    return False
            except OSError:
                return False
        return True

    # ------------------------------------------------------------------ the run

    async def _run(self, targets: tuple[str, ...], state: _RunState) -> CommandResult:
        from imaginebuild.scheduler import StepStatus, run_steps

        options = state.options
        selected = self.dag.select(targets)
        if options.locked:
            self._refuse_if_lock_would_change(selected, options)
        self.reporter.emit(RunStarted(len(selected)))
        self._budget = self._make_budget(options)
        started = self.clock()
        priorities = self.dag.priorities(selected, lambda n: _weight(self.mediafile.assets[n]))
        try:
            statuses = await run_steps(
                selected,
                self.dag.parents,
                priorities,
                lambda name: self._step(name, state),
                jobs=options.jobs,
                keep_going=options.keep_going,
            )
        finally:
            for provider in state.providers.values():
                with contextlib.suppress(Exception):
                    await provider.aclose()
        results = []
        for name in selected:
            if name in state.results:
                results.append(state.results[name])
            else:
                asset = self.mediafile.assets[name]
                failed_parents = [
                    p for p in self.dag.parents[name] if statuses.get(p) != StepStatus.OK
                ]
                why = (
                    f"input {failed_parents[0]!r} was not built"
                    if failed_parents
                    else "not started: the run stopped after a failure"
                )
                results.append(
                    AssetResult(
                        name, asset.kind.value, "skipped", why, asset.outputs,
                        estimate_ticks=self._estimate(asset),
                    )
                )  # fmt: skip
                self.reporter.emit(StepFinished(name, "skipped", why, 0.0))
        exit_code = _exit_code(statuses)
        messages = self._refusal_messages(state, results)
        result = CommandResult("run", tuple(results), exit_code=exit_code, messages=messages)
        self.reporter.emit(
            RunFinished(result.counts, self.clock() - started, usd(result.cost_ticks))
        )
        return result

    async def _step(self, name: str, state: _RunState) -> StepStatus:
        """Build one asset; every error becomes a FAILED or REFUSED status with a result."""
        asset = self._asset(name, state.options)
        started = self.clock()
        self.reporter.emit(StepStarted(name, "check"))
        try:
            urls = await self._fetch_urls(asset)
            f = self._assess(
                asset, state.outputs, forced=_forced(name, state.options), fetch=True, urls=urls
            )
            if f.decision.action is Action.CALL and f.key and not _forced(name, state.options):
                f = self._from_remote(f, await self.remote.get_async(f.key))
            if f.remote:
                f = await self._fetch_remote(f)
            if f.decision.action is Action.RESTORE:
                try:
                    return self._finish(state, f, self._restore(f), "restored", started)
                except CorruptBlob as exc:
                    self.reporter.emit(Message("warning", f"{name}: {exc}; building it again"))
                    self.store.delete_action(f.key or "")
                    f = dataclasses.replace(
                        f, decision=Decision(Action.CALL, f.decision.reasons), entry=None
                    )
            if f.decision.action is Action.UP_TO_DATE:
                assert f.outputs is not None
                return self._finish(state, f, None, "up_to_date", started)
            try:
                return await self._call(state, f, started)
            except BuiltElsewhere:
                assert f.key is not None
                f = await self._fetch_remote(
                    self._from_remote(f, await self.remote.get_async(f.key))
                )
                if f.decision.action is not Action.RESTORE:
                    return await self._call(state, f, started)
                return self._finish(state, f, self._restore(f), "restored", started)
        except ImaginebuildError as exc:
            return self._fail(state, asset, exc, started)

    async def _call(self, state: _RunState, f: _Facts, started: float) -> StepStatus:
        asset = f.asset
        assert f.key is not None and f.fields is not None
        estimate = self._estimate(asset)
        billable = 0 if asset.provider == "local" else estimate  # rehearsals cost nothing
        if state.options.offline:
            raise OfflineCallNeeded(
                f"{asset.name} needs a provider call ({f.decision.summary}) and --offline was given"
            )
        if not self._budget.reserve(asset.name, billable):
            state.refused.append(asset.name)
            raise BudgetExceeded(
                f"{asset.name} not started: its estimated {usd(estimate)} USD would pass the budget"
            )
        provider = self._provider(asset.provider, state)
        self._drop_stored_job(f.key, f.entry or self.store.get_action(f.key))
        inputs = tuple(self._verified_input(asset, i) for i in f.inputs)
        self.reporter.emit(StepStarted(asset.name, "call"))
        workdir = Path(tempfile.mkdtemp(prefix=f"work-{os.getpid()}-", dir=self._tmp_dir()))
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
            )

            def progress(phase: Phase, detail: str) -> None:
                self.reporter.emit(StepPhase(asset.name, phase.value, detail))

            try:
                async with (
                    self.remote.lease(f.key, state.run_id, state.options.no_push),
                    state.pools[asset.provider],
                ):
                    result = await provider.generate(request, progress)
            except ProviderError as exc:
                self._record_billed_failure(state, asset, f.key, exc, estimate)
                raise
            except BaseException:
                self._budget.release(asset.name)
                raise
            billed = result.reported_ticks
            self._budget.settle(asset.name, billed if billed is not None else billable)
            self._record_ledger(state, asset, f.key, result, estimate)
            from imaginebuild.outputcheck import check_outputs

            try:
                check_outputs(asset, result.outputs, inputs)
            except InvalidMedia:
                self._forget_job(f.key)  # bad at the source: resuming the job cannot help
                raise
            blobs = tuple(
                self.store.put_file(o.path, o.media_type, move=True) for o in result.outputs
            )
            cost = billed if billed is not None else (0 if asset.provider == "local" else estimate)
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
                        "cost_usd": None if c.cost_ticks is None else usd(c.cost_ticks),
                        "retries": c.retries,
                        "started_at": _iso(c.started_at) if c.started_at else None,
                        "duration_s": round(c.duration_s, 3),
                    }
                    for c in result.calls
                ],
            }
            previous = f.entry or self.store.get_action(f.key)
            takes = (*previous.takes, previous.outputs) if previous is not None else ()
            entry = ActionEntry(f.key, blobs, record, takes)
            self.store.put_action(entry)
            self._materialize(asset, blobs, {"key": f.key, **f.fields.to_json(), **record})
            self._forget_job(f.key)
            await self.remote.push_async(entry, state.options.no_push)
            built = dataclasses.replace(f, outputs=blobs, entry=entry)
            return self._finish(state, built, entry, "built", started)
        finally:
            shutil.rmtree(workdir, ignore_errors=True)

    def _from_remote(self, f: _Facts, entry: ActionEntry | None) -> _Facts:
        """Turn a CALL into a restore from the remote cache when the remote has the key."""
        if entry is None:
            return f
        found = Reason("remote", "outputs are in the remote cache")
        decision = Decision(Action.RESTORE, (*f.decision.reasons, found))
        return dataclasses.replace(
            f, decision=decision, entry=entry, outputs=entry.outputs, remote=True
        )

    async def _fetch_remote(self, f: _Facts) -> _Facts:
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
                candidate = self.root / upstream.outputs[ref.index or 0]
                with contextlib.suppress(OSError):
                    if sha256_file(candidate) == item.sha256:
                        self.reporter.emit(Message("warning", f"{exc}; using {candidate.name}"))
                        return dataclasses.replace(item, path=candidate)
            raise

    def _restore(self, f: _Facts) -> ActionEntry:
        assert f.entry is not None and f.fields is not None and f.key is not None
        self._drop_stored_job(f.key, f.entry)
        provenance = {"key": f.key, **f.fields.to_json(), **f.entry.record}
        self._materialize(f.asset, f.entry.outputs, provenance)
        return f.entry

    def _finish(
        self,
        state: _RunState,
        f: _Facts,
        entry: ActionEntry | None,
        outcome: str,
        started: float,
    ) -> StepStatus:
        """Record a finished step: lockfile first, then the result and the event."""
        from imaginebuild.scheduler import StepStatus

        assert f.key is not None and f.fields is not None
        outputs = entry.outputs if entry is not None else f.outputs
        assert outputs is not None
        if entry is not None:
            self._lock_asset(f.asset, f.key, f.fields, outputs, entry.record)
        state.outputs[f.asset.name] = outputs
        self.failures.clear(f.asset.name)
        record: Mapping[str, Any] = entry.record if entry is not None else {}
        cost = _ticks_of(record.get("cost_usd")) if outcome == "built" else 0
        reason = f.decision.summary if outcome != "up_to_date" else "up to date"
        state.results[f.asset.name] = AssetResult(
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

    def _fail(
        self, state: _RunState, asset: Asset, exc: ImaginebuildError, started: float
    ) -> StepStatus:
        from imaginebuild.scheduler import StepStatus

        refused = isinstance(exc, (BudgetExceeded, OfflineCallNeeded))
        state_name = "skipped" if refused else "failed"
        if not refused:
            self._record_failure(asset, state.outputs)
        state.results[asset.name] = AssetResult(
            name=asset.name,
            kind=asset.kind.value,
            state=state_name,
            reason=exc.message,
            outputs=asset.outputs,
            estimate_ticks=self._estimate(asset) if refused else 0,
            error=exc.message,
            hint=exc.hint,
        )
        self.reporter.emit(
            StepFinished(
                asset.name, state_name, exc.message, self.clock() - started, error=exc.message
            )
        )
        return StepStatus.REFUSED if refused else StepStatus.FAILED

    # ------------------------------------------------------------------ helpers of the run

    def _check_options(self, options: RunOptions) -> None:
        if options.jobs < 1:
            raise UsageError("--jobs must be at least 1")
        for name in options.force or ():
            if name not in self.mediafile.assets:
                self.dag.select([name])
        if options.provider is not None and options.provider not in ("xai", "local"):
            raise UsageError(f"unknown provider {options.provider!r}", hint="use xai or local")

    def _check_signing(self) -> None:
        """Refuse a broken signing setup before any call is paid for."""
        if self.signing is not None:
            from imaginebuild.credentials import check_signing_config

            check_signing_config(self.signing)

    def _asset(self, name: str, options: RunOptions) -> Asset:
        asset = self.mediafile.assets[name]
        provider = options.provider or self.env.get("IMAGINEBUILD_PROVIDER") or None
        if provider and provider != asset.provider:
            return dataclasses.replace(asset, provider=provider)
        return asset

    def _provider(self, name: str, state: _RunState) -> Provider:
        if name not in state.providers:
            from imaginebuild.providers import create_provider
            from imaginebuild.providers.base import ProviderContext

            context = ProviderContext(
                settings=self.mediafile.settings(name),
                state_dir=self.state_dir,
                env=self.env,
                retry_expired=state.options.retry_expired,
            )
            provider = create_provider(name, context)
            state.providers[name] = provider
            import asyncio

            state.pools[name] = asyncio.Semaphore(max(1, provider.max_concurrency))
        return state.providers[name]

    async def _fetch_urls(self, asset: Asset) -> dict[str, BlobRef]:
        """Fetch URL inputs that are not pinned in the lockfile (or whose blob is gone)."""
        from imaginebuild.fetch import fetch_to_file

        pins = _url_pins(self.lock_entries().get(asset.name))
        fetched: dict[str, BlobRef] = {}
        for ref in asset.inputs:
            if ref.kind is not RefKind.URL or ref.url is None:
                continue
            if ref.url in pins and self.store.has_blob(pins[ref.url]):
                continue
            path, media = await fetch_to_file(ref.url, self._tmp_dir(), self.env)
            fetched[ref.url] = self.store.put_file(path, media, move=True)
        return fetched

    def _materialize(
        self, asset: Asset, blobs: tuple[BlobRef, ...], provenance: Mapping[str, Any]
    ) -> bool:
        """Put an asset's outputs in place; False if they all were there already."""
        changed = False
        for rel, blob in zip(asset.outputs, blobs, strict=True):
            changed |= self._place(rel, blob, provenance)
        return changed

    def _place(self, rel: str, blob: BlobRef, provenance: Mapping[str, Any]) -> bool:
        """Copy (or sign) one blob to its output path unless it is already there."""
        dest = self.root / rel
        with contextlib.suppress(OSError):
            if self.stat_cache().sha256(dest) == blob.sha256:
                return False
        if not self.store.has_blob(blob.sha256):
            raise CorruptBlob(f"{rel}: blob {blob.sha256[:12]} is not in the cache")
        if self.signing is None:
            self.store.materialize(blob, dest)
        else:
            from imaginebuild.credentials import sign_output

            self.store.verify_blob(blob.sha256)
            src = self.store.blob_path(blob.sha256)
            sign_output(src, dest, blob.media_type, dict(provenance), self.signing)
        # A signed file's bytes differ from the blob; the stat cache vouches for it as ours.
        self.stat_cache().remember(dest, blob.sha256)
        return True

    def _lock_asset(
        self,
        asset: Asset,
        key: str,
        fields: ActionFields,
        blobs: tuple[BlobRef, ...],
        record: Mapping[str, Any],
    ) -> None:
        entries = self.lock_entries()
        entries[asset.name] = LockEntry(
            key=key,
            fields=fields.to_json(),
            outputs=tuple(
                LockedOutput(path, b.sha256, b.size, b.media_type)
                for path, b in zip(asset.outputs, blobs, strict=True)
            ),
            record=record,
        )
        write_lockfile(self.mediafile.lockfile_path, entries)

    def _tidy(self) -> None:
        """Clear what killed runs left behind (under the project lock): temp files of
        atomic writes in the output folders, work folders of dead processes; and note
        this project in the cache so gc from another project keeps its entries."""
        folders = {
            (self.root / rel).parent for a in self.mediafile.assets.values() for rel in a.outputs
        }
        for folder in folders:
            for stray in folder.glob(".*.tmp") if folder.is_dir() else []:
                with contextlib.suppress(OSError):
                    stray.unlink()
        self.store.clean_tmp()
        self.store.register_project(self.mediafile.lockfile_path)

    def _prune_lock(self, locked: bool) -> None:
        """Drop lockfile entries of assets no longer in the mediafile (read errors surface here)."""
        entries = self.lock_entries()
        removed = sorted(n for n in entries if n not in self.mediafile.assets)
        if not removed:
            return
        if locked:
            raise LockfileWouldChange(
                f"--locked: the lockfile still lists removed assets: {', '.join(removed)}",
                hint="run without --locked and commit mediafile.lock",
            )
        for name in removed:
            del entries[name]
        write_lockfile(self.mediafile.lockfile_path, entries)

    def _checkout_one(self, name: str, entry: LockEntry, pull: bool) -> AssetResult:
        asset = self.mediafile.assets.get(name)
        kind = asset.kind.value if asset else str(entry.fields.get("kind", "?"))
        paths = tuple(o.path for o in entry.outputs)
        blobs = [BlobRef(o.sha256, o.size, o.media_type) for o in entry.outputs]
        if self.remote.active and (pull or not all(self.store.has_blob(b.sha256) for b in blobs)):
            try:
                remote = self.remote.cache()
                if pull and self.store.get_action(entry.key) is None:
                    found = remote.get_action(entry.key)
                    if found is not None:
                        remote.fetch(found, self.store)
                remote.fetch_blobs(blobs, self.store)
            except StoreError as exc:
                self.reporter.emit(Message("warning", f"{name}: {exc}"))
        provenance = {"key": entry.key, **dict(entry.fields), **dict(entry.record)}
        try:
            if asset is None or asset.outputs != paths:
                raise LockfileError(
                    f"{name}: the lockfile's outputs {list(paths)} are not what the mediafile "
                    "declares; nothing written",
                    hint="run `imaginebuild run` to bring the lockfile up to date",
                )
            changed = False
            for out in entry.outputs:
                blob = BlobRef(out.sha256, out.size, out.media_type)
                changed |= self._place(out.path, blob, provenance)
        except ImaginebuildError as exc:
            return AssetResult(
                name, kind, "failed", exc.message, paths, entry.key, error=exc.message,
                hint="run `imaginebuild run` to rebuild it (or pull it from the remote cache)",
            )  # fmt: skip
        state = "restored" if changed else "up_to_date"
        return AssetResult(
            name, kind, state, "from the cache" if changed else "up to date", paths, entry.key
        )

    def _refuse_if_lock_would_change(self, selected: tuple[str, ...], options: RunOptions) -> None:
        facts = self._survey(selected, options)
        changing = [
            n
            for n, f in facts.items()
            if f.decision.action is Action.CALL
            or (f.decision.action is Action.RESTORE and self.lock_entries().get(n) is None)
            or (
                f.decision.action is Action.RESTORE
                and (entry := self.lock_entries().get(n)) is not None
                and entry.key != f.key
            )
        ]
        if changing:
            raise LockfileWouldChange(
                f"--locked: the lockfile would change for {', '.join(changing)}",
                hint="run without --locked and commit mediafile.lock",
            )

    def _make_budget(self, options: RunOptions) -> Any:
        from imaginebuild.budget import Budget, effective_limit

        return Budget(effective_limit(self.mediafile.budget_usd, options.max_cost_usd))

    def _estimate(self, asset: Asset) -> int:
        return self.estimator.ticks(asset)

    def _record_ledger(
        self, state: _RunState, asset: Asset, key: str, result: Any, estimate: int
    ) -> None:
        if asset.provider == "local":
            return  # rehearsals bill nothing; their would-be cost is in the record
        from imaginebuild.ledger import Ledger, LedgerEntry, format_time

        ledger = Ledger(self.state_dir / "ledger.jsonl")
        calls = list(result.calls)
        for i, call in enumerate(calls):
            estimated = call.cost_ticks is None
            ticks = call.cost_ticks if call.cost_ticks is not None else (estimate if i == 0 else 0)
            ledger.append(
                LedgerEntry(
                    time=format_time((call.started_at or time.time()) + call.duration_s),
                    run_id=state.run_id,
                    asset=asset.name,
                    key=key,
                    provider=asset.provider,
                    model=call.model or asset.model,
                    endpoint=call.endpoint,
                    request_id=call.request_id,
                    ticks=ticks,
                    estimated=estimated,
                    retries=call.retries,
                    duration_s=round(call.duration_s, 3),
                )
            )

    def _record_billed_failure(
        self, state: _RunState, asset: Asset, key: str, exc: ProviderError, estimate: int
    ) -> None:
        """A call that failed after the API accepted it is (or may be) spent money: a
        moderation refusal reports its bill; a failed job reports none, so its estimate
        is recorded, marked as such. Either goes to the budget and the ledger."""
        accepted = isinstance(exc, (JobFailed, ModerationRefused)) and exc.info.request_id
        ticks = exc.info.cost_ticks
        if asset.provider == "local" or (ticks is None and not accepted):
            self._budget.release(asset.name)
            return
        self._budget.settle(asset.name, ticks if ticks is not None else estimate)
        from imaginebuild.providers.base import CallRecord, GenerationResult

        call = CallRecord(
            endpoint=exc.info.endpoint or "",
            model=asset.model,
            request_id=exc.info.request_id,
            cost_ticks=ticks,
            retries=exc.info.retries,
            started_at=time.time(),
        )
        self._record_ledger(state, asset, key, GenerationResult((), (call,)), estimate)

    def _drop_stored_job(self, key: str, entry: ActionEntry | None) -> None:
        """Forget a journaled job whose result is already stored (a kill can fall between
        storing it and forgetting it): resuming it would pass an old take off as new."""
        if entry is None or not (self.state_dir / "journal").is_dir():
            return
        from imaginebuild.journal import Journal

        journal = Journal(self.state_dir / "journal")
        record = journal.get(key)
        stored = {str(r) for r in entry.record.get("request_ids", [])}
        if record is not None and record.request_id in stored:
            journal.remove(key)

    def _forget_job(self, key: str) -> None:
        if (self.state_dir / "journal").is_dir():
            from imaginebuild.journal import Journal

            Journal(self.state_dir / "journal").remove(key)

    def _refusal_messages(self, state: _RunState, results: list[AssetResult]) -> tuple[str, ...]:
        if not state.refused:
            return ()
        left = [r for r in results if r.state == "skipped"]
        would = sum(self._estimate(self.mediafile.assets[r.name]) for r in left)
        names = ", ".join(r.name for r in left)
        return (f"budget reached: left unbuilt {names} (estimated {usd(would)} USD more)",)

    def _tmp_dir(self) -> Path:
        folder = self.store.folder / "tmp"
        folder.mkdir(parents=True, exist_ok=True)
        return folder

    def _wait_message(self, holder: str) -> None:
        self.reporter.emit(
            Message("warning", f"waiting for another imaginebuild process ({holder}) to finish")
        )

    def stat_cache(self) -> StatCache:
        """The project's stat cache (opened on first use)."""
        if self._stat is None:
            self._stat = StatCache(self.state_dir / "statcache.json")
        return self._stat

    def _save_stat_cache(self) -> None:
        if self._stat is not None and self.state_dir.is_dir():
            self._stat.save()

    def _record_failure(self, asset: Asset, known: Mapping[str, tuple[BlobRef, ...]]) -> None:
        with contextlib.suppress(ImaginebuildError, OSError):
            f = self._assess(asset, known, forced=False, fetch=False)
            if f.key:
                self.failures.record(asset.name, f.key)


# ---------------------------------------------------------------------- pure helpers


def _forced(name: str, options: RunOptions) -> bool:
    return options.force is not None and (not options.force or name in options.force)


def _survey_state(decision: Decision, command: str) -> str:
    if decision.action is Action.UP_TO_DATE:
        return "up_to_date"
    if any(r.code == "never_built" for r in decision.reasons):
        return "never_built"
    return "stale"


def _plan_reason(decision: Decision) -> str:
    verb = {
        Action.UP_TO_DATE: "up to date",
        Action.RESTORE: "restore from cache",
        Action.CALL: "call",
    }
    head = verb[decision.action]
    return head if not decision.reasons else f"{head}: {decision.summary}"


def _weight(asset: Asset) -> float:
    if asset.output_media is Media.IMAGE:
        return _WEIGHT_IMAGE_S
    return _WEIGHT_VIDEO_BASE_S + _WEIGHT_VIDEO_PER_S * (asset.duration or 8)


def _exit_code(statuses: Mapping[str, StepStatus]) -> int:
    from imaginebuild.scheduler import StepStatus

    values = set(statuses.values())
    if StepStatus.FAILED in values:
        return 1
    if StepStatus.REFUSED in values:
        return 3
    return 0


def _url_pins(locked: LockEntry | None) -> dict[str, str]:
    if locked is None:
        return {}
    pins = {}
    for item in locked.fields.get("inputs") or []:
        ref = str(item.get("ref", ""))
        if ref.startswith(("https://", "http://")):
            pins[ref] = str(item.get("sha256"))
    return pins


def _media_of_blob(path: Path) -> str:
    from imaginebuild.mediaprobe import sniff

    with path.open("rb") as f:
        return sniff(f.read(16)) or "application/octet-stream"


def _ticks_of(value: object) -> int:
    if value is None:
        return 0
    from imaginebuild.pricing import usd_to_ticks

    return usd_to_ticks(str(value))


def _utc_now() -> str:
    return _iso(time.time())


def _iso(unix_time: float) -> str:
    from imaginebuild.ledger import format_time

    return format_time(unix_time)
