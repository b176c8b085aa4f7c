"""Garbage collection of the local cache: what nothing references, and dropping it.

    references (lockfiles: current, other projects', git history)
        │
        ▼
    survey(store, refs) ─▶ GcPlan (entries and blobs with sizes) ─▶ collect(store, plan, refs)

A kept action entry keeps every blob it names, earlier takes included, and a blob
stored or reused less than `min_age` seconds ago is kept too (a run elsewhere may
hold it before any lockfile names it). `collect`
takes the plan the user agreed to and the references as they are *now* (read
again under the project lock): it drops only what both say is garbage, so a run
that finished between the question and the answer loses nothing.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from imaginebuild.store.cache import GC_GRACE_S, Store
from imaginebuild.store.history import References


@dataclass(frozen=True)
class DroppedBlob:
    """A blob gc drops: its hash, size on disk and media type (when an entry named it)."""

    sha256: str
    size: int
    media_type: str = ""


@dataclass(frozen=True)
class GcPlan:
    """What gc drops (or would drop): action entries and blobs."""

    keys: tuple[str, ...]
    blobs: tuple[DroppedBlob, ...]
    history_versions: int = 0  # committed lockfile versions whose references were kept

    @property
    def bytes(self) -> int:
        """The bytes the dropped blobs free."""
        return sum(b.size for b in self.blobs)

    @property
    def empty(self) -> bool:
        """Whether there is nothing to drop."""
        return not self.keys and not self.blobs


def survey(store: Store, refs: References, min_age: float = GC_GRACE_S) -> GcPlan:
    """The action entries and blobs of `store` that `refs` does not keep, leaving blobs
    younger than `min_age` seconds alone."""
    now = time.time()
    keep_blobs = set(refs.blobs)
    media: dict[str, str] = {}
    drop_keys = []
    for key in store.action_keys():
        entry = store.get_action(key)
        if entry is not None:
            for take in (entry.outputs, *entry.takes):
                media.update((o.sha256, o.media_type) for o in take)
        if key in refs.keys and entry is not None:
            keep_blobs |= {o.sha256 for take in (entry.outputs, *entry.takes) for o in take}
        else:
            drop_keys.append(key)
    blobs = []
    for sha in store.iter_blobs():
        if sha not in keep_blobs and store.collectable(sha, now, min_age):
            try:
                size = store.blob_path(sha).stat().st_size
            except OSError:
                continue  # gone since it was listed
            blobs.append(DroppedBlob(sha, size, media.get(sha, "")))
    return GcPlan(tuple(drop_keys), tuple(blobs))


def collect(store: Store, agreed: GcPlan, refs: References, min_age: float = GC_GRACE_S) -> GcPlan:
    """Drop what `agreed` names and a fresh survey against `refs` still finds garbage;
    returns what was dropped."""
    now = survey(store, refs, min_age)
    keys = tuple(k for k in now.keys if k in set(agreed.keys))
    wanted = {b.sha256 for b in agreed.blobs}
    blobs = tuple(b for b in now.blobs if b.sha256 in wanted)
    for key in keys:
        store.delete_action(key)
    for blob in blobs:
        store.delete_blob(blob.sha256)
    return GcPlan(keys, blobs, agreed.history_versions)
