"""One asset's facts gathered and decided: the question every command asks first.

`assess` hashes an asset's inputs (through the stat cache), reads its lockfile
entry and the action cache, and hands them to the pure `rebuild.decide`; plan,
status, why, the no-op fast path and every run step go through it. `survey`
decides a selection in order, assuming calls happen where needed.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
from collections.abc import Iterable, Mapping
from pathlib import Path

from imaginebuild.engine import takes
from imaginebuild.engine.estimates import Estimator
from imaginebuild.engine.facts import Facts, RunOptions, is_forced, url_pins
from imaginebuild.engine.graph import Dag
from imaginebuild.engine.keys import ActionFields, InputDigest, action_key
from imaginebuild.engine.rebuild import Action, Decision, decide
from imaginebuild.errors import ImaginebuildError, InputError
from imaginebuild.mediaprobe import media_type_for, sniff
from imaginebuild.model import Asset, Mediafile, RefKind
from imaginebuild.providers import provider_name
from imaginebuild.providers.base import InputFile
from imaginebuild.remote.link import RemoteLink
from imaginebuild.store.cache import ActionEntry, BlobRef, Store
from imaginebuild.store.failures import Failure
from imaginebuild.store.lockfile import LockEntry
from imaginebuild.store.state import ProjectState
from imaginebuild.store.takes import Take, TakeBook, TakeOrigin, retouched
from imaginebuild.untrusted import media_matches


class Assessor:
    """Gathers and decides the facts of one mediafile's assets against its state and caches."""

    def __init__(
        self,
        mediafile: Mediafile,
        *,
        dag: Dag,
        store: Store,
        state: ProjectState,
        remote: RemoteLink,
        estimator: Estimator,
        env: Mapping[str, str],
    ) -> None:
        self.mediafile = mediafile
        self.root = mediafile.root
        self.dag = dag
        self.store = store
        self.state = state
        self.remote = remote
        self.estimator = estimator
        self.env = env
        self._rejected_by_key: dict[str, tuple[str, Take]] | None = None

    def asset_for(self, name: str, options: RunOptions) -> Asset:
        """The asset as this run builds it (`--provider` / IMAGINEBUILD_PROVIDER override)."""
        asset = self.mediafile.assets[name]
        provider = options.provider or self.env.get("IMAGINEBUILD_PROVIDER") or None
        if provider and provider != asset.provider:
            return dataclasses.replace(asset, provider=provider_name(provider))
        return asset

    def survey(self, selected: Iterable[str], options: RunOptions) -> dict[str, Facts]:
        """Decide every selected asset in order, assuming calls happen where needed."""
        facts: dict[str, Facts] = {}
        known: dict[str, tuple[BlobRef, ...] | None] = {}
        for name in selected:
            asset = self.asset_for(name, options)
            f = self.assess(asset, known, forced=is_forced(name, options))
            if f.decision.action is Action.CALL and f.key and not is_forced(name, options):
                f = f.with_remote(self.remote.get(f.key))
            if f.decision.action is Action.CALL:
                f.estimate_ticks = self.estimator.ticks(asset)
            facts[name] = f
            known[name] = f.outputs
        return facts

    def assess(
        self,
        asset: Asset,
        known: Mapping[str, tuple[BlobRef, ...] | None],
        *,
        forced: bool,
        urls: Mapping[str, BlobRef] | None = None,
    ) -> Facts:
        """Gather an asset's facts (input hashes, lockfile, cache) and decide it."""
        locked = self.state.lock_entries().get(asset.name)
        inputs, digests, pending = self._inputs(asset, known, locked, urls or {})
        fields = ActionFields(
            kind=asset.kind.value,
            provider=str(asset.provider),  # the key hashes the plain spelling
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
            touched = self._retouched(asset, locked)
            decision = self._review(decision, asset, None, locked, touched, forced)
            return Facts(asset, None, None, decision, None)
        key = action_key(fields)
        up_to_date = locked is not None and locked.key == key and self._outputs_ok(asset, locked)
        entry = None if (up_to_date and not forced) else self.store.get_action(key)
        touched = () if up_to_date else self._retouched(asset, locked)  # issue 17: takes
        if not up_to_date:
            entry = takes.prefer_locked(self.store, locked, key, entry)
        if entry is not None and len(entry.outputs) != len(asset.outputs):
            entry = None  # a cache entry (or a picked take) of another shape cannot be restored
        decision = decide(
            fields=fields,
            key=key,
            locked_key=locked.key if locked else None,
            locked_fields=locked.fields if locked else None,
            outputs_ok=up_to_date,
            cached=entry is not None,
            forced=forced and not touched,
            resuming=self._uncollected_job(key, locked, entry),
        )
        decision = self._review(decision, asset, key, locked, touched, forced)
        outputs: tuple[BlobRef, ...] | None = None
        if decision.action is Action.UP_TO_DATE and locked is not None:
            outputs = tuple(BlobRef(o.sha256, o.size, o.media_type) for o in locked.outputs)
        elif decision.action is Action.RESTORE and entry is not None:
            outputs = entry.outputs
        return Facts(asset, fields, key, decision, outputs, entry, inputs)

    def _uncollected_job(
        self, key: str, locked: LockEntry | None, entry: ActionEntry | None
    ) -> bool:
        """Whether the journal holds a paid job of `key` that is not the take already
        stored (a run stopped after submitting a new take): it must be collected, or its
        bill would never reach the ledger."""
        record = self.state.journal_record(key)
        if record is None:
            return False
        entry = entry or self.store.get_action(key)
        stored = [t.record for t in (locked, entry) if t is not None and t.key == key]
        return not any(record.request_id in r.request_ids for r in stored)

    @functools.cached_property
    def takes_book(self) -> TakeBook:
        """Every take of every asset of the project, indexed in the cache folder."""
        return TakeBook.for_project(self.store, self.mediafile.lockfile_path)

    def _retouched(self, asset: Asset, locked: LockEntry | None) -> tuple[str, ...]:
        """Outputs edited by hand: their bytes match neither the lockfile nor any blob."""
        return retouched(
            asset.outputs, locked, self.root, self.state.stat_cache().sha256, self.store.has_blob
        )

    def _review(
        self,
        decision: Decision,
        asset: Asset,
        key: str | None,
        locked: LockEntry | None,
        touched: tuple[str, ...],
        forced: bool,
    ) -> Decision:
        """The decision after the asset's takes have their say (a hold, a stale pick)."""
        rejected = None
        if key is not None and decision.action is Action.CALL and not forced and not touched:
            rejected = self._rejected(asset.name, key)
        return takes.review(decision, name=asset.name, key=key, locked=locked, touched=touched,
                            forced=forced, rejected=rejected)  # fmt: skip

    def _rejected(self, name: str, key: str) -> tuple[str, Take] | None:
        """The rejected take waiting under `key`: the asset's own, else one another asset
        with the same action key paid for (the key is what was paid; read once a command)."""
        own = self.takes_book.read(name).rejected(key)
        if own is not None:
            return name, own
        if self._rejected_by_key is None:
            self._rejected_by_key = {}
            for index in self.takes_book.indexes():
                for take in index.takes:
                    if take.origin is TakeOrigin.REJECTED:
                        self._rejected_by_key[take.key] = (index.asset, take)
        return self._rejected_by_key.get(key)

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
                if outs is None or (ref.index or 0) >= len(outs):  # an entry may name too few
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
                    digest = self.state.stat_cache().sha256(path)
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
            path = self.root / out.path
            try:
                if self.state.stat_cache().sha256(path) != out.sha256:
                    return False
            except OSError:
                return False
            if not media_matches(path, out.path):  # a lockfile may pair any hash with any path
                return False
        return True

    def record_failure(
        self,
        asset: Asset,
        known: Mapping[str, tuple[BlobRef, ...]],
        error: ImaginebuildError | None = None,
    ) -> None:
        """Remember that `asset` failed under its current key, and why (status and why
        say `failed` with the reason until the key changes)."""
        with contextlib.suppress(ImaginebuildError, OSError):
            f = self.assess(asset, known, forced=False)
            if f.key:
                message = error.message if error is not None else ""
                hint = error.hint if error is not None else None
                self.state.failures.record(asset.name, Failure(f.key, message, hint))


def _media_of_blob(path: Path) -> str:
    with path.open("rb") as f:
        return sniff(f.read(16)) or "application/octet-stream"
