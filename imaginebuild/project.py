"""The facade: a loaded mediafile with its lockfile, caches and the decisions about it.

    load(path) ─▶ Project ─┬─ plan()/status()/why()  survey: facts → rebuild.decide (pure)
                           ├─ run()                   the no-op path here, else runner.Runner
                           ├─ checkout()/pull()/push() lockfile ↔ local and remote cache
                           └─ show()/gc()             provenance, garbage collection

`assess` gathers one asset's facts (input hashes, lockfile entry, cache) and
decides it; plan, status, why and every run step go through it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import os
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from imaginebuild.engine.estimates import Estimator
from imaginebuild.engine.facts import Facts, RunOptions, is_forced, url_pins
from imaginebuild.engine.graph import Dag
from imaginebuild.engine.keys import ActionFields, InputDigest, action_key
from imaginebuild.engine.rebuild import Action, Decision, decide
from imaginebuild.engine.results import AssetResult, CommandResult
from imaginebuild.errors import (
    CorruptBlob,
    ImaginebuildError,
    InputError,
    Interrupted,
    LockfileError,
    LockfileWouldChange,
    StoreError,
    UsageError,
)
from imaginebuild.events import (
    Message,
    NullReporter,
    Reporter,
    RunStarted,
    StepFinished,
)
from imaginebuild.gcpause import paused_gc
from imaginebuild.mediaprobe import media_type_for, sniff
from imaginebuild.model import Asset, InputPolicy, Mediafile, RefKind
from imaginebuild.providers.base import InputFile
from imaginebuild.remote.link import RemoteLink
from imaginebuild.store import settled
from imaginebuild.store.cache import BlobRef, Store, default_cache_dir
from imaginebuild.store.failures import FailureLog
from imaginebuild.store.hashing import StatCache
from imaginebuild.store.lockfile import LockEntry, read_lockfile, write_lockfile
from imaginebuild.store.projectlock import ProjectLock


def load(
    path: str | os.PathLike[str], *, policy: InputPolicy | None = None, **kwargs: Any
) -> Project:
    """Load and validate a mediafile; raises MediafileError with every problem found.

    `policy` says what inputs outside the project the user allows (default: the
    environment's IMAGINEBUILD_ALLOW_READ / IMAGINEBUILD_ALLOW_HTTP_LOOPBACK).
    """
    from imaginebuild.mediafile.load import load_mediafile

    if policy is None:
        policy = InputPolicy.from_env(kwargs.get("env") or os.environ)
    return Project(load_mediafile(Path(path), policy), **kwargs)


@dataclass(frozen=True)
class GcResult:
    """What gc dropped (or would drop, with dry_run)."""

    actions: int
    blobs: int
    bytes: int
    dry_run: bool


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
        from imaginebuild.store.credentials import SigningConfig

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

    # ------------------------------------------------------------------ public API

    def validate(self) -> None:
        """The mediafile was validated when loaded; kept for the library's symmetry."""

    @functools.cached_property
    def templates(self) -> dict[str, str]:
        """The matrix template of each asset expanded from one."""
        return {n: a.template for n, a in self.mediafile.assets.items() if a.template is not None}

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
            with paused_gc():
                settled_result = self._settled(wanted, options)
            if settled_result is not None:
                self._save_stat_cache()
                return dataclasses.replace(settled_result, seconds=self.clock() - started)
            settled.discard(self.mediafile.path)  # this run changes what the verdict rested on
            import asyncio

            from imaginebuild.engine.runner import (
                Runner,  # the event loop and scheduler load only now
            )

            runner = Runner(self, options)
            try:
                result = asyncio.run(runner.run(wanted))
            except KeyboardInterrupt:
                self._save_stat_cache()
                done = sum(1 for r in runner.results.values() if r.state in ("built", "restored"))
                raise Interrupted(
                    f"interrupted; {done} finished step(s) were kept",
                    hint="run again to finish: jobs in flight are resumed, not paid twice",
                ) from None
            self._save_stat_cache()
        result = result.with_templates(self.templates)
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
                f = self.assess(self.asset_for(name, options), known, forced=False, fetch=False)
            except ImaginebuildError:
                return None  # let the real run report it against the asset
            if f.decision.action is not Action.UP_TO_DATE:
                return None  # the run decides this one (and looks at the remote) itself
            facts[name] = f
            known[name] = f.outputs
        self._remember_settled(targets, options, facts)
        return settled.result("run", [_settled_asset(f) for f in facts.values()], self.reporter)

    def _settled_stamp(self, targets: Sequence[str], options: RunOptions) -> str | None:
        """The settled snapshot's fingerprint for this command (None: no snapshot)."""
        mediafile = self.mediafile
        if not mediafile.source_digest:
            return None  # built by hand, not loaded from a file
        return settled.fingerprint(
            mediafile.path,
            mediafile.source_digest,
            policy=mediafile.policy,
            targets=targets,
            provider=options.provider,
            env=self.env,
        )

    def _remember_settled(
        self, targets: Sequence[str], options: RunOptions, facts: Mapping[str, Facts]
    ) -> None:
        """Write the settled snapshot: the verdict, and every file it read with its hash."""
        stamp = self._settled_stamp(targets, options)
        if stamp is None:
            return
        files: dict[Path, str] = {}
        try:
            files[self.mediafile.lockfile_path] = self.stat_cache().sha256(
                self.mediafile.lockfile_path
            )
        except OSError:
            return
        for f in facts.values():
            for ref, given in zip(f.asset.inputs, f.inputs, strict=True):
                if ref.kind is not RefKind.ASSET:  # files and URL blobs; an upstream is its lock
                    files[given.path] = given.sha256
            locked = self.lock_entries()[f.asset.name]
            for out in locked.outputs:
                files[self.root / out.path] = out.sha256
        settled.write(
            self.mediafile.path, stamp, files, [_settled_asset(f) for f in facts.values()]
        )

    def checkout(self, targets: Iterable[str] = (), *, pull: bool = False) -> CommandResult:
        """Materialize the lockfile's outputs from the cache, fetching missing blobs from
        the remote cache; `pull` also brings the action entries into the local cache.
        Never calls a provider."""
        results: list[AssetResult] = []
        self._check_signing()
        wanted = tuple(targets)
        selected = self.dag.select(wanted) if wanted else ()  # unknown target: UsageError
        with ProjectLock(self.state_dir, self._wait_message):
            self._lock = None
            self._prune_lock(locked=False)
            self._tidy()
            entries = self.lock_entries()
            names = sorted(selected) if wanted else sorted(entries)
            self.reporter.emit(RunStarted(len(names)))
            for name in names:
                started = self.clock()
                entry = entries.get(name)
                done = (
                    self._checkout_one(name, entry, pull)
                    if entry is not None
                    else self._never_built(name)
                )
                results.append(done)
                self.reporter.emit(
                    StepFinished(
                        name, done.state, done.reason, self.clock() - started, error=done.error
                    )
                )
            self._save_stat_cache()
        failed = any(r.state == "failed" for r in results)
        command = "pull" if pull else "checkout"
        result = CommandResult(command, tuple(results), exit_code=1 if failed else 0)
        return result.with_templates(self.templates)

    def push(self, targets: Iterable[str] = ()) -> CommandResult:
        """Upload the locked builds of the targets (default: all) to the remote cache."""
        remote = self.remote.require("push")
        selected = self.dag.select(targets)
        results = []
        self.reporter.emit(RunStarted(len(selected)))
        for name in selected:
            started = self.clock()
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
            size = sum(o.size for o in entry.outputs)
            reason = f"{size / 1e6:.1f} MB" if pushed else "already in the remote cache"
            results.append(AssetResult(name, kind, state, reason, key=entry.key))
            self.reporter.emit(StepFinished(name, state, reason, self.clock() - started))
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
            keep_blobs |= {sha for e in entries for sha in url_pins(e).values()}
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
        targets = tuple(targets)
        selected = self.dag.select(targets)
        with paused_gc():
            facts = self.survey(selected, options)
        if command == "status" and all(
            f.decision.action is Action.UP_TO_DATE for f in facts.values()
        ):
            self._remember_settled(targets, options, facts)
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
                    template=f.asset.template,
                )
            )
        return CommandResult(command, tuple(results))

    def survey(self, selected: Iterable[str], options: RunOptions) -> dict[str, Facts]:
        """Decide every selected asset in order, assuming calls happen where needed."""
        facts: dict[str, Facts] = {}
        known: dict[str, tuple[BlobRef, ...] | None] = {}
        for name in selected:
            asset = self.asset_for(name, options)
            f = self.assess(asset, known, forced=is_forced(name, options), fetch=False)
            if f.decision.action is Action.CALL and f.key and not is_forced(name, options):
                f = f.with_remote(self.remote.get(f.key))
            if f.decision.action is Action.CALL:
                f.estimate_ticks = self._estimate(asset)
            facts[name] = f
            known[name] = f.outputs
        return facts

    def assess(
        self,
        asset: Asset,
        known: Mapping[str, tuple[BlobRef, ...] | None],
        *,
        forced: bool,
        fetch: bool,
        urls: Mapping[str, BlobRef] | None = None,
    ) -> Facts:
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
            return Facts(asset, None, None, decision, None)
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
        return Facts(asset, fields, key, decision, outputs, entry, inputs)

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
        pins = url_pins(locked)
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
                media = media_type_for(path) or "application/octet-stream"
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
            from imaginebuild.store.credentials import check_signing_config

            check_signing_config(self.signing)

    def asset_for(self, name: str, options: RunOptions) -> Asset:
        """The asset as this run builds it (`--provider` / IMAGINEBUILD_PROVIDER override)."""
        asset = self.mediafile.assets[name]
        provider = options.provider or self.env.get("IMAGINEBUILD_PROVIDER") or None
        if provider and provider != asset.provider:
            return dataclasses.replace(asset, provider=provider)
        return asset

    def materialize(
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
            from imaginebuild.store.credentials import sign_output

            self.store.verify_blob(blob.sha256)
            src = self.store.blob_path(blob.sha256)
            sign_output(src, dest, blob.media_type, dict(provenance), self.signing)
        # A signed file's bytes differ from the blob; the stat cache vouches for it as ours.
        self.stat_cache().remember(dest, blob.sha256)
        return True

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

    def _never_built(self, name: str) -> AssetResult:
        """A selected asset with no lockfile entry: nothing to restore."""
        asset = self.mediafile.assets[name]
        return AssetResult(
            name, asset.kind.value, "skipped", "never built", asset.outputs,
            hint=f"imaginebuild run {name}",
        )  # fmt: skip

    def _estimate(self, asset: Asset) -> int:
        return self.estimator.ticks(asset)

    def tmp_dir(self) -> Path:
        """A folder for work files on the cache's filesystem (so results move in by rename)."""
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

    def record_failure(self, asset: Asset, known: Mapping[str, tuple[BlobRef, ...]]) -> None:
        """Remember that `asset` failed under its current key (status says `failed`)."""
        with contextlib.suppress(ImaginebuildError, OSError):
            f = self.assess(asset, known, forced=False, fetch=False)
            if f.key:
                self.failures.record(asset.name, f.key)


# ---------------------------------------------------------------------- pure helpers


def _settled_asset(f: Facts) -> settled.SettledAsset:
    assert f.key is not None  # up to date means keyed
    return settled.SettledAsset(
        f.asset.name, f.asset.kind.value, f.key, f.asset.outputs, f.asset.template
    )


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


def _media_of_blob(path: Path) -> str:
    with path.open("rb") as f:
        return sniff(f.read(16)) or "application/octet-stream"
