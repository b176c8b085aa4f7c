"""The commands on takes: list them, pick one, accept a rejected one, adopt a hand retouch.

None of them calls a provider. Each works on a project through the small surface
`ProjectView` names (the project wires itself in; the engine does not import it),
under the project lock the caller holds:

    listing(name)        every take, oldest first, with which is current or picked
    pick(name, take)     a take becomes current; the lockfile records the pick
    accept(name)         the rejected take of the current key becomes current
    adopt(name)          the outputs as edited by hand become the current take
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol

from imaginebuild.engine import takes
from imaginebuild.engine.facts import Facts, RunOptions
from imaginebuild.engine.graph import Dag
from imaginebuild.engine.rebuild import changes_since
from imaginebuild.engine.results import AssetResult, CommandResult
from imaginebuild.errors import StoreError, UsageError
from imaginebuild.events import AssetState, Message, MessageLevel, Reporter
from imaginebuild.model import Asset, Mediafile
from imaginebuild.store.cache import ActionEntry, BlobRef, Store
from imaginebuild.store.failures import FailureLog
from imaginebuild.store.lockfile import LockEntry, LockPick
from imaginebuild.store.takes import Take, TakeBook, TakeOrigin


class ProjectView(Protocol):
    """What the take commands use of a project."""

    mediafile: Mediafile
    root: Path
    store: Store
    reporter: Reporter
    remote: Any
    dag: Dag

    @property
    def failures(self) -> FailureLog:
        """The last failure of each asset."""

    @property
    def takes_book(self) -> TakeBook:
        """The project's takes indexes."""

    def lock_entries(self) -> dict[str, LockEntry]:
        """The lockfile's entries."""

    def assess(
        self, asset: Asset, known: Mapping[str, tuple[BlobRef, ...] | None], *, forced: bool
    ) -> Facts:
        """One asset's facts and decision."""

    def asset_for(self, name: str, options: RunOptions) -> Asset:
        """The asset as a run builds it."""

    def materialize(
        self, asset: Asset, blobs: tuple[BlobRef, ...], provenance: Mapping[str, Any]
    ) -> bool:
        """Put an asset's outputs in place."""


class TakeDesk:
    """The take commands of one project."""

    def __init__(self, project: ProjectView) -> None:
        self.project = project
        self.book = project.takes_book

    def listing(self, name: str) -> tuple[takes.TakeRow, ...]:
        """Every take of `name`, oldest first."""
        self.project.dag.select((name,))
        locked = self.project.lock_entries().get(name)
        return takes.listing(self.book, self.project.store, name, locked)

    def pick(self, name: str, wanted: str) -> CommandResult:
        """Make take `wanted` current for `name` as declared now, without a call."""
        f = self._current(name)
        assert f.key is not None and f.fields is not None
        rows = self.listing(name)
        row = takes.choose(rows, name, wanted)
        _check_pickable(row, f, name)
        take = row.take
        record = take.record.marked(picked={"take": take.id, "at": takes.now_iso()})
        current = takes.Current(name, f.asset.outputs, f.key, f.fields.to_json(), take.outputs,
                                record, LockPick(take.id, take.key))  # fmt: skip
        self._make_current(f.asset, current)
        self.book.pick(name, f.key, take.id)
        current_now = f"take {row.number} ({take.id}) is current"
        return self._result("pick", f.asset, AssetState.PICKED, current_now)

    def accept(self, name: str) -> CommandResult:
        """Make the rejected take of `name`'s current key current, despite the output check."""
        f = self._current(name)
        assert f.key is not None and f.fields is not None
        take = self.book.read(name).rejected(f.key)
        if take is None:
            raise UsageError(
                f"{name} has no rejected take for its current prompt and inputs",
                hint=f"`imaginebuild takes {name}` lists its takes",
            )
        record = take.record.marked(
            accepted_despite_check=take.reason or "failed the output check",
            accepted_at=takes.now_iso(),
        )
        current = takes.Current(name, f.asset.outputs, f.key, f.fields.to_json(), take.outputs,
                                record, LockPick(take.id, take.key))  # fmt: skip
        self._make_current(f.asset, current)
        self.book.change(name, take.id, TakeOrigin.ACCEPTED, take.reason)
        accepted = f"take {take.id} accepted despite the check: {take.reason}"
        return self._result("accept", f.asset, AssetState.ACCEPTED, accepted)

    def adopt(self, name: str) -> CommandResult:
        """Make the outputs of `name` as edited by hand its current take (dependants rebuild)."""
        self.project.dag.select((name,))
        asset = self.project.mediafile.assets[name]
        locked = self.project.lock_entries().get(name)
        if locked is None or tuple(o.path for o in locked.outputs) != asset.outputs:
            raise UsageError(f"{name} has no generated take to adopt a retouch of",
                             hint=f"imaginebuild run {name}")  # fmt: skip
        changed = self._changed(asset, locked)
        if not changed:
            raise UsageError(f"{name}: its outputs are as generated; nothing to adopt")
        blobs = takes.current_blobs(asset.outputs, locked, self.project.root, self.project.store)
        origin = takes.take_id(takes.blobs_of(locked))
        record = locked.record.marked(
            retouched={"from_take": origin, "files": list(changed), "at": takes.now_iso()}
        )
        chosen = LockPick(takes.take_id(blobs), locked.key)
        current = takes.Current(name, asset.outputs, locked.key, locked.fields, blobs, record,
                                chosen)  # fmt: skip
        self._make_current(asset, current)
        reason = f"retouched by hand from take {origin}"
        self.book.add(name, Take(locked.key, blobs, TakeOrigin.RETOUCHED, takes.now_iso(),
                                 record, locked.fields, reason))  # fmt: skip
        return self._result("adopt", asset, AssetState.ADOPTED, f"{', '.join(changed)}: {reason}")

    # ------------------------------------------------------------------ helpers

    def _current(self, name: str) -> Facts:
        """`name`'s facts as declared now; its inputs must be built."""
        known: dict[str, tuple[BlobRef, ...] | None] = {}
        f = None
        for each in self.project.dag.select((name,)):
            asset = self.project.asset_for(each, RunOptions())
            f = self.project.assess(asset, known, forced=False)
            known[each] = f.outputs
        assert f is not None
        if f.key is None or f.fields is None:
            raise UsageError(
                f"{name}: its inputs are not built yet ({f.decision.summary})",
                hint="build them first: `imaginebuild run` with the inputs as targets",
            )
        return f

    def _changed(self, asset: Asset, locked: LockEntry) -> tuple[str, ...]:
        """Outputs whose file differs from the lockfile, each checked to be the right media."""
        from imaginebuild.mediaprobe import sniff_file
        from imaginebuild.store.hashing import sha256_file

        family = asset.output_media.value + "/"
        by_path = {o.path: o.sha256 for o in locked.outputs}
        changed = []
        for rel in asset.outputs:
            path = self.project.root / rel
            try:
                if sha256_file(path) == by_path.get(rel):
                    continue
                media = sniff_file(path) or "unknown"
            except OSError:
                continue  # a missing output keeps its generated take
            if not media.startswith(family):
                raise UsageError(f"{rel} is not {asset.output_media.value} media ({media}); "
                                 "nothing adopted")  # fmt: skip
            changed.append(rel)
        return tuple(changed)

    def _make_current(self, asset: Asset, current: takes.Current) -> None:
        project = self.project
        entry = takes.make_current(
            project.store, project.lock_entries(), project.mediafile.lockfile_path, current,
            lambda blobs, provenance: project.materialize(asset, blobs, provenance),
        )  # fmt: skip
        project.failures.clear(asset.name)
        self._share(entry)

    def _share(self, entry: ActionEntry) -> None:
        """Push the new entry to the remote cache (if one is set and writable), so teammates
        and CI restore the same take; a remote that fails only warns."""
        link = self.project.remote
        remote = link.cache() if link.active else None
        if remote is None or remote.readonly:
            return
        try:
            remote.push(entry, self.project.store)
        except StoreError as exc:
            self.project.reporter.emit(Message(MessageLevel.WARNING, f"remote cache: {exc}"))

    def _result(self, command: str, asset: Asset, state: AssetState, reason: str) -> CommandResult:
        locked = self.project.lock_entries()[asset.name]
        one = AssetResult(asset.name, asset.kind.value, state, reason, asset.outputs, locked.key)
        return CommandResult(command, (one,))


def _check_pickable(row: takes.TakeRow, f: Facts, name: str) -> None:
    """A take may stand for the asset as declared if it was made from the same request
    (only `variant` may differ), is in the cache and passed the output check."""
    assert f.fields is not None
    take = row.take
    if take.origin is TakeOrigin.REJECTED:
        raise UsageError(
            f"take {row.number} of {name} failed the output check ({take.reason})",
            hint=f"`imaginebuild accept {name}` uses it despite the check",
        )
    if not row.available:
        raise UsageError(f"take {row.number} of {name} is no longer in the cache")
    if take.key == f.key or take.origin in (TakeOrigin.RETOUCHED, TakeOrigin.SET_ASIDE):
        return
    if not take.fields:
        raise UsageError(f"take {row.number} of {name} was made from another request")
    changes = [r for r in changes_since(take.fields, f.fields) if r.field != "variant"]
    if changes:
        raise UsageError(
            f"take {row.number} of {name} was made from another request "
            f"({'; '.join(r.text for r in changes)}); it cannot stand for {name} as declared",
            hint="pick a take made from the current prompt and inputs (`variant` may differ)",
        )
