"""The run's lockfile entries: each finished step recorded, the writes paced (at most one
pending write, scheduled on the event loop), and `--locked`'s check that none would change."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from pathlib import Path

from imaginebuild.engine.facts import Facts
from imaginebuild.engine.keys import ActionFields
from imaginebuild.engine.rebuild import Action
from imaginebuild.engine.takes import kept_pick
from imaginebuild.errors import LockfileWouldChange
from imaginebuild.model import Asset
from imaginebuild.provenance import Provenance
from imaginebuild.store.cache import BlobRef
from imaginebuild.store.lockfile import LockedOutput, LockEntry, PacedWriter


class LockKeeper:
    """Records finished steps in the lock entries and writes them paced (see PacedWriter)."""

    def __init__(self, path: Path, entries: dict[str, LockEntry]) -> None:
        self.entries = entries
        self.writer = PacedWriter(path, entries, time.monotonic)
        self._timer: asyncio.TimerHandle | None = None

    def record(
        self,
        asset: Asset,
        key: str,
        fields: ActionFields,
        blobs: tuple[BlobRef, ...],
        record: Provenance,
    ) -> None:
        """The asset's entry now names `blobs` built under `key`; written when due."""
        self.entries[asset.name] = LockEntry(  # a restore keeps the pick
            pick=kept_pick(self.entries.get(asset.name), key, blobs),
            key=key,
            fields=fields.to_json(),
            outputs=tuple(
                LockedOutput(path, b.sha256, b.size, b.media_type)
                for path, b in zip(asset.outputs, blobs, strict=True)
            ),
            record=record,
        )
        self.writer.changed()
        if self.writer.pending and self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(
                self.writer.due_in(), self._write_pending
            )

    def flush(self) -> None:
        """Write what is pending now (the run's end: every finished step is in the file)."""
        self.writer.flush()

    def _write_pending(self) -> None:
        self._timer = None
        self.writer.flush()

    def refuse_changes(self, facts: Mapping[str, Facts]) -> None:
        """`--locked`: raise when building `facts` would change an entry."""
        changing = [
            n
            for n, f in facts.items()
            if f.decision.action is Action.CALL
            or (f.decision.action is Action.RESTORE and self.entries.get(n) is None)
            or (
                f.decision.action is Action.RESTORE
                and (entry := self.entries.get(n)) is not None
                and entry.key != f.key
            )
        ]
        if changing:
            raise LockfileWouldChange(
                f"--locked: the lockfile would change for {', '.join(changing)}",
                hint="run without --locked and commit mediafile.lock",
            )
