"""The lockfile against the caches: checkout, pull, push, gc and clean.

`checkout` puts the lockfile's outputs in place from the local cache (fetching
missing blobs from the remote cache); `pull` also brings the action entries in;
`push` uploads locked builds; `gc` drops what no known lockfile references
(in a git work tree, in any committed version); `clean` removes outputs of
assets the mediafile no longer declares. None of them ever calls a provider.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass

from imaginebuild.engine import takes
from imaginebuild.engine.facts import url_pins
from imaginebuild.engine.results import AssetResult, CommandResult
from imaginebuild.errors import ImaginebuildError, LockfileError, StoreError
from imaginebuild.events import AssetState, Message, MessageLevel, RunStarted, StepFinished
from imaginebuild.project.wiring import ProjectCore
from imaginebuild.store import orphans
from imaginebuild.store.cache import GC_GRACE_S, BlobRef, gc_busy_message
from imaginebuild.store.collect import GcPlan, collect, survey
from imaginebuild.store.history import References, lockfile_history
from imaginebuild.store.lockfile import LockEntry, read_lockfile


@dataclass(frozen=True)
class GcResult:
    """What gc dropped (or would drop, with dry_run)."""

    actions: int
    blobs: int
    bytes: int
    dry_run: bool


class SyncCommands(ProjectCore):
    """checkout, pull, push, gc and clean."""

    def checkout(self, targets: Iterable[str] = (), *, pull: bool = False) -> CommandResult:
        """Materialize the lockfile's outputs from the cache, fetching missing blobs from
        the remote cache; `pull` also brings the action entries into the local cache.
        Never calls a provider."""
        results: list[AssetResult] = []
        self._check_signing()
        wanted = tuple(targets)
        selected = self.dag.select(wanted) if wanted else ()  # unknown target: UsageError
        with self.state.exclusive(self._wait_message):
            self.state.forget_lock_entries()
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
            self.state.save_stat_cache()
        failed = any(r.state == AssetState.FAILED for r in results)
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
                results.append(AssetResult(name, kind, AssetState.SKIPPED, why))
                continue
            try:
                pushed = remote.push(entry, self.store)
            except StoreError as exc:
                results.append(
                    AssetResult(name, kind, AssetState.FAILED, exc.message, error=exc.message)
                )
                continue
            state = AssetState.PUSHED if pushed else AssetState.UP_TO_DATE
            size = sum(o.size for o in entry.outputs)
            reason = f"{size / 1e6:.1f} MB" if pushed else "already in the remote cache"
            results.append(AssetResult(name, kind, state, reason, key=entry.key))
            self.reporter.emit(StepFinished(name, state, reason, self.clock() - started))
        failed = any(r.state == AssetState.FAILED for r in results)
        return CommandResult("push", tuple(results), exit_code=1 if failed else 0)

    def gc_remote(self, *, dry_run: bool = True, min_age: float = GC_GRACE_S) -> GcResult:
        """Drop remote entries and blobs this project's lockfile does not reference.

        A remote shared by several projects must be collected from a checkout
        that knows all their lockfiles; hence a dry run by default.
        """
        remote = self.remote.require("gc --remote")
        entries = self.lock_entries()
        keep_blobs = {o.sha256 for e in entries.values() for o in e.outputs}
        keep_keys = {e.key for e in entries.values()}
        dropped = remote.gc(keep_keys, keep_blobs, dry_run=dry_run, min_age=min_age)
        return GcResult(
            len(dropped.drop_keys), len(dropped.drop_blobs), dropped.freed_bytes, dry_run
        )

    def gc(
        self,
        *,
        dry_run: bool = False,
        only_current: bool = False,
        min_age: float = GC_GRACE_S,
        agreed: GcPlan | None = None,
    ) -> GcPlan:
        """Drop cache entries and blobs no lockfile references: this one, other projects'
        on the same cache and, in a git work tree, every committed version of each (unless
        `only_current`). `dry_run` only surveys; `agreed` drops no more than that plan.

        Blobs stored or reused less than `min_age` seconds ago are kept, and nothing
        is collected while another run uses the cache: what a run elsewhere has just
        paid for may not be in its lockfile yet."""
        with self.state.exclusive(self._wait_message):
            self.state.forget_lock_entries()
            self._prune_lock(locked=False)
            busy = self.store.live_runs()
            if busy:  # another project's run may hold blobs no lockfile names yet
                self.reporter.emit(Message(MessageLevel.WARNING, gc_busy_message(busy)))
                return GcPlan((), ())
            refs, versions = self._gc_references(only_current)
            found = dataclasses.replace(
                survey(self.store, refs, min_age), history_versions=versions
            )
            if dry_run:
                return found
            dropped = collect(self.store, agreed or found, refs, min_age)
            takes.gc_forget(self.store, {b.sha256 for b in dropped.blobs})
            return dropped

    def _gc_references(self, only_current: bool) -> tuple[References, int]:
        """What gc keeps, and how many committed lockfile versions that includes."""
        lockfiles = [self.mediafile.lockfile_path]
        entries = list(self.lock_entries().values())
        for lockfile in self.store.registered_lockfiles():
            if lockfile != self.mediafile.lockfile_path:
                lockfiles.append(lockfile)
                # a shared cache: keep theirs (named in full if it cannot be read)
                entries += read_lockfile(lockfile, label=str(lockfile)).values()
        blobs = {o.sha256 for e in entries for o in e.outputs}
        blobs |= {sha for e in entries for sha in url_pins(e).values()}
        refs = References(frozenset(e.key for e in entries), frozenset(blobs))
        versions = 0
        warned: set[str] = set()

        def warn(text: str) -> None:
            if text not in warned:
                warned.add(text)
                self.reporter.emit(Message(MessageLevel.WARNING, text))

        for lockfile in () if only_current else lockfiles:
            history = lockfile_history(lockfile, warn)
            if history is not None:
                refs |= history.references
                versions += history.versions
        picked_keys, _ = takes.gc_keep(self.store, set(refs.keys))  # a picked take stays
        _, take_blobs = takes.gc_keep(self.store, set(refs.keys) | picked_keys)
        return refs | References(frozenset(picked_keys), frozenset(take_blobs)), versions

    def clean(self, *, dry_run: bool = True) -> list[orphans.Finding]:
        """Remove outputs of assets the mediafile no longer declares, when their bytes are
        still what imaginebuild wrote; returns what was (or, `dry_run`, would be) done."""
        with self.state.exclusive(self._wait_message):
            self.state.forget_lock_entries()
            self._prune_lock(locked=False)
            record = self._orphan_record()
            known, in_use = record.read(), self._paths_in_use()
            findings = orphans.judge(self.root, known.values(), in_use)
            if dry_run:
                return findings
            removed = orphans.remove(self.root, findings)
            done = {f.orphan.path for f in removed} | (known.keys() & in_use)  # owned again
            done |= {f.orphan.path for f in findings if f.verdict is orphans.Verdict.GONE}
            record.write({p: o for p, o in known.items() if p not in done})
            return [f for f in findings if f.verdict is not orphans.Verdict.REMOVE or f in removed]

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
                self.reporter.emit(Message(MessageLevel.WARNING, f"{name}: {exc}"))
        provenance = {"key": entry.key, **dict(entry.fields), **entry.record.to_json()}
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
                changed |= self.materializer.place(name, out.path, blob, provenance)
        except ImaginebuildError as exc:
            return AssetResult(
                name, kind, AssetState.FAILED, exc.message, paths, entry.key, error=exc.message,
                hint=exc.hint or "run `imaginebuild run` to rebuild it (or pull it from the "
                "remote cache)",
            )  # fmt: skip
        state = AssetState.RESTORED if changed else AssetState.UP_TO_DATE
        return AssetResult(
            name, kind, state, "from the cache" if changed else "up to date", paths, entry.key
        )

    def _never_built(self, name: str) -> AssetResult:
        """A selected asset with no lockfile entry: nothing to restore."""
        asset = self.mediafile.assets[name]
        return AssetResult(
            name, asset.kind.value, AssetState.SKIPPED, "never built", asset.outputs,
            hint=f"imaginebuild run {name}",
        )  # fmt: skip
