"""Takes in a run and around it: what waits for a word, what is kept, what is made current.

    review(decision, …)   the rebuild decision seen through the takes (pure): a
                          rejected take or an output retouched by hand holds the
                          asset (Action.HOLD, nothing paid or overwritten); a pick
                          that no longer applies is named
    retouched(…)          outputs whose bytes match neither the lockfile nor a blob
    prefer_locked(…)      for the locked key, the lockfile's outputs (a pick, an
                          adopted retouch) win over the action cache's latest take
    note / keep_rejected / set_aside     takes recorded during a run
    make_current(…)       pick, accept and adopt: a take becomes the asset's outputs
                          in the action cache, out/ and the lockfile, without a call

The index itself lives in `store.takes`; this module decides what goes into it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from imaginebuild.engine.rebuild import Action, Decision, Reason, ReasonCode
from imaginebuild.errors import AssetOnHold, StoreError, UsageError
from imaginebuild.provenance import NO_RECORD, Provenance
from imaginebuild.store.cache import ActionEntry, BlobRef, Store
from imaginebuild.store.lockfile import LockedOutput, LockEntry, LockPick, write_lockfile
from imaginebuild.store.takes import (
    RETOUCH_HINT,
    Take,
    TakeBook,
    TakeOrigin,
    retouch_text,
    retouched,
    take_id,
)
from imaginebuild.untrusted import confine, media_matches, wrong_media

__all__ = [
    "REASON_PICK_STALE", "REASON_REJECTED", "REASON_RETOUCHED", "REASON_SET_ASIDE", "Current",
    "TakeRow", "blobs_of", "choose", "current_blobs", "export", "gc_forget", "gc_keep",
    "hold_error", "keep_rejected", "kept_pick", "listing", "make_current", "note", "now_iso",
    "prefer_locked", "retouched", "review", "set_aside", "take_id",
]  # fmt: skip

REASON_RETOUCHED = ReasonCode.RETOUCHED
REASON_SET_ASIDE = ReasonCode.SET_ASIDE
REASON_REJECTED = ReasonCode.REJECTED
REASON_PICK_STALE = ReasonCode.PICK_STALE


def now_iso() -> str:
    """The current UTC time as the ledger and provenance write it."""
    from imaginebuild.store.ledger import format_time

    return format_time(time.time())


def blobs_of(entry: LockEntry) -> tuple[BlobRef, ...]:
    """A lock entry's outputs as blob references."""
    return tuple(BlobRef(o.sha256, o.size, o.media_type) for o in entry.outputs)


# ---------------------------------------------------------------------- decisions


def review(
    decision: Decision,
    *,
    name: str,
    key: str | None,
    locked: LockEntry | None,
    touched: tuple[str, ...],
    forced: bool,
    rejected: tuple[str, Take] | None,
) -> Decision:
    """The decision after the takes have their say (pure).

    `decision` was made without `--force` when outputs were retouched (`touched`):
    forced, the retouch is set aside and the generated outputs come back; not
    forced, the asset holds. A `rejected` take under the key (with the asset it was
    paid for: this one, or another with the same action key) holds a call.
    """
    files = ", ".join(touched)
    if touched and not forced:
        text = retouch_text(name, touched)
        return Decision(Action.HOLD, (Reason(REASON_RETOUCHED, text, field="outputs"),))
    if touched:
        text = f"{files} retouched by hand: kept as a take, the generated one restored"
        decision = Decision(decision.action, (*decision.reasons, Reason(REASON_SET_ASIDE, text)))
    elif rejected is not None and decision.action is Action.CALL and not forced:
        owner, take = rejected
        why = take.reason or "failed the check"
        if owner == name:
            text = f"rejected take — accept or --force ({why})"
            return Decision(Action.HOLD, (Reason(REASON_REJECTED, text),))
        text = (
            f"the same call was paid for {owner} and rejected — accept {owner} or --force ({why})"
        )
        return Decision(Action.HOLD, (Reason(REASON_REJECTED, text, asset=owner),))
    if (
        locked is not None
        and locked.pick is not None
        and key != locked.key
        and decision.action is not Action.UP_TO_DATE
    ):
        text = f"the pick of take {locked.pick.take} no longer applies"
        decision = Decision(decision.action, (*decision.reasons, Reason(REASON_PICK_STALE, text)))
    return decision


def hold_error(name: str, decision: Decision) -> AssetOnHold:
    """The error a run step stops with when its decision is HOLD."""
    reason = decision.reasons[0] if decision.reasons else Reason(ReasonCode.HOLD, "on hold")
    if reason.code == REASON_REJECTED:
        hint = (
            f"`imaginebuild accept {reason.asset or name}` uses the paid result; "
            f"`imaginebuild run --force {name}` pays for a new take"
        )
        return AssetOnHold(f"{name}: {reason.text}; not paid again", hint=hint)
    return AssetOnHold(f"{name}: {reason.text}; nothing overwritten", hint=RETOUCH_HINT(name))


def prefer_locked(
    store: Store, locked: LockEntry | None, key: str, entry: ActionEntry | None
) -> ActionEntry | None:
    """The entry to restore `key` from: the lockfile's outputs when it locks this key with
    a take chosen by hand (picked, accepted, adopted: maybe on another machine) whose blobs
    are here, else the action cache's. Without a pick naming exactly those outputs, the
    lockfile's hashes are not trusted over the key's entry."""
    if locked is None or locked.key != key or locked.pick is None:
        return entry
    blobs = blobs_of(locked)
    if locked.pick.take != take_id(blobs):
        return entry
    if entry is not None and [b.sha256 for b in entry.outputs] == [b.sha256 for b in blobs]:
        return entry
    if not blobs or not all(store.has_blob(b.sha256) for b in blobs):
        return entry
    return ActionEntry(key, blobs, locked.record, entry.takes if entry is not None else ())


def kept_pick(previous: LockEntry | None, key: str, blobs: Sequence[BlobRef]) -> LockPick | None:
    """The pick a new lock entry keeps: the previous one's, when it locks the same key and
    the same outputs (a restore of the picked take), else none."""
    if previous is None or previous.pick is None or previous.key != key:
        return None
    same = [o.sha256 for o in previous.outputs] == [b.sha256 for b in blobs]
    return previous.pick if same else None


# ---------------------------------------------------------------------- takes of a run


def note(
    book: TakeBook, name: str, entry: ActionEntry, fields: Mapping[str, Any], built: bool
) -> None:
    """Index the outputs a run step built or restored (once per set of outputs)."""
    origin = TakeOrigin.BUILT if built else TakeOrigin.RESTORED
    made_at = entry.record.built_at or now_iso()
    try:
        book.add(name, Take(entry.key, entry.outputs, origin, made_at, entry.record, fields))
    except OSError as exc:
        book.warn(f"{name}: the take was not indexed ({exc})")


def keep_rejected(
    store: Store,
    book: TakeBook,
    name: str,
    key: str,
    fields: Mapping[str, Any],
    files: Sequence[tuple[Path, str]],
    record: Provenance,
    reason: str,
) -> Take | None:
    """Keep a paid result that failed the output check as a rejected take of `key`
    (`files`: path and media type of each output received); None if nothing came."""
    blobs = []
    try:
        for path, media_type in files:
            if path.is_file() and path.stat().st_size > 0:  # an empty file: nothing came
                blobs.append(store.put_file(path, media_type, move=True))
        if not blobs:
            return None
        made_at = record.built_at or now_iso()
        take = Take(key, tuple(blobs), TakeOrigin.REJECTED, made_at, record, fields, reason)
        return book.add(name, take)
    except (StoreError, OSError) as exc:
        book.warn(f"{name}: the rejected result could not be kept ({exc})")
        return None


def current_blobs(
    outputs: Sequence[str], locked: LockEntry | None, root: Path, store: Store
) -> tuple[BlobRef, ...]:
    """The asset's output files as they are now, each stored as a blob (copied, so an edit
    is never lost); a missing file counts as its locked blob."""
    from imaginebuild.mediaprobe import sniff_file

    by_path = {o.path: o for o in locked.outputs} if locked is not None else {}
    blobs = []
    for rel in outputs:
        path = confine(root, rel, UsageError)  # a link out of the project is not read
        if not path.is_file() and rel in by_path:
            out = by_path[rel]
            blobs.append(BlobRef(out.sha256, out.size, out.media_type))
            continue
        try:
            media = sniff_file(path) or "application/octet-stream"
        except OSError as exc:
            raise UsageError(f"cannot read {rel}: {exc.strerror or exc}") from None
        blobs.append(store.put_file(path, media))
    return tuple(blobs)


def set_aside(
    store: Store,
    book: TakeBook,
    name: str,
    outputs: Sequence[str],
    locked: LockEntry | None,
    root: Path,
    key: str,
) -> Take:
    """Keep retouched outputs as a take before `--force` restores the generated ones."""
    blobs = current_blobs(outputs, locked, root, store)
    origin_take = take_id(blobs_of(locked)) if locked is not None else None
    reason = (
        f"retouched by hand from take {origin_take}"
        if origin_take
        else "found in the output folder"
    ) + "; set aside by run --force"
    fields = dict(locked.fields) if locked is not None else {}
    record = locked.record if locked is not None else NO_RECORD
    take = Take(locked.key if locked else key, blobs, TakeOrigin.SET_ASIDE, now_iso(), record,
                fields, reason)  # fmt: skip
    return book.add(name, take)


# ---------------------------------------------------------------------- making a take current


@dataclass(frozen=True)
class Current:
    """What a take becomes when it is made current: its key, fields, outputs and record."""

    name: str
    paths: tuple[str, ...]  # the asset's output paths, in order
    key: str
    fields: Mapping[str, Any]
    blobs: tuple[BlobRef, ...]
    record: Provenance
    pick: LockPick | None = None


def make_current(
    store: Store,
    lock_entries: dict[str, LockEntry],
    lockfile: Path,
    current: Current,
    place: Callable[[tuple[BlobRef, ...], Mapping[str, Any]], object],
) -> ActionEntry:
    """Put a take in place, then make it the key's entry in the action cache (the earlier
    outputs stay as its takes) and the asset's entry in the lockfile. No call."""
    missing = [b.sha256[:12] for b in current.blobs if not store.has_blob(b.sha256)]
    if missing:
        raise UsageError(
            f"{current.name}: blob {missing[0]} of that take is not in the cache",
            hint="`imaginebuild pull` may bring it from the remote cache",
        )
    place(current.blobs, {"key": current.key, **current.fields, **current.record.to_json()})
    previous = store.get_action(current.key)
    earlier = () if previous is None else (*previous.takes, previous.outputs)
    mine = [b.sha256 for b in current.blobs]
    kept: list[tuple[BlobRef, ...]] = []
    for outs in earlier:
        if [b.sha256 for b in outs] != mine and outs not in kept:
            kept.append(outs)
    entry = ActionEntry(current.key, current.blobs, current.record, tuple(kept))
    store.put_action(entry)
    lock_entries[current.name] = LockEntry(
        key=current.key,
        fields=dict(current.fields),
        outputs=tuple(
            LockedOutput(path, b.sha256, b.size, b.media_type)
            for path, b in zip(current.paths, current.blobs, strict=True)
        ),
        record=current.record,
        pick=current.pick,
    )
    write_lockfile(lockfile, lock_entries)
    return entry


# ---------------------------------------------------------------------- listing


@dataclass(frozen=True)
class TakeRow:
    """One take as `takes NAME` lists it: numbered from 1, oldest first."""

    number: int
    take: Take
    current: bool  # its outputs are the lockfile's
    picked: bool  # chosen with `pick`
    available: bool  # every blob is in the local cache

    def to_json(self) -> dict[str, Any]:
        """JSON-ready form."""
        from imaginebuild.money import usd_json

        record = self.take.record
        cost = record.cost_ticks
        return {
            "number": self.number,
            "id": self.take.id,
            "origin": self.take.origin.value,
            "made_at": self.take.made_at or None,
            "key": self.take.key,
            "variant": self.take.fields.get("variant"),
            "cost_usd": None if cost is None else usd_json(cost),
            "request_ids": list(record.request_ids),
            "outputs": [o.to_json() for o in self.take.outputs],
            "reason": self.take.reason,
            "current": self.current,
            "picked": self.picked,
            "available": self.available,
        }


def listing(
    book: TakeBook, store: Store, name: str, locked: LockEntry | None
) -> tuple[TakeRow, ...]:
    """Every take of `name`, oldest first: what the cache and the lockfile know that the
    index does not (takes older than the index), then the index."""
    index = book.read(name)
    older = _unindexed(store, locked, {t.id for t in index.takes})
    current = take_id(blobs_of(locked)) if locked is not None else None
    picked = {index.picks.get(locked.key)} if locked is not None else set()
    if locked is not None and locked.pick is not None:
        picked.add(locked.pick.take)
    rows = []
    for number, take in enumerate([*older, *index.takes], start=1):
        available = all(store.has_blob(b.sha256) for b in take.outputs)
        rows.append(TakeRow(number, take, take.id == current, take.id in picked, available))
    return tuple(rows)


def _unindexed(store: Store, locked: LockEntry | None, known: set[str]) -> list[Take]:
    """Takes of the locked key that only the action cache and the lockfile know of."""
    if locked is None:
        return []
    cached = store.get_action(locked.key)
    found: list[tuple[tuple[BlobRef, ...], Provenance]] = []
    if cached is not None:
        found += [(outs, NO_RECORD) for outs in cached.takes] + [(cached.outputs, cached.record)]
    found.append((blobs_of(locked), locked.record))
    takes: list[Take] = []
    for outs, record in found:
        if take_id(outs) not in known:
            known.add(take_id(outs))
            made_at = record.built_at or ""
            takes.append(Take(locked.key, outs, TakeOrigin.RESTORED, made_at, record,
                              locked.fields if record.to_json() else {}))  # fmt: skip
    return takes


def choose(rows: Sequence[TakeRow], name: str, wanted: str) -> TakeRow:
    """The take `wanted` names: its number in the listing, or a prefix of its id."""
    hint = f"`imaginebuild takes {name}` lists them"
    if wanted.isdigit():
        found = [r for r in rows if r.number == int(wanted)]
    elif len(wanted) >= 4 and all(c in "0123456789abcdef" for c in wanted):
        found = [r for r in rows if r.take.id.startswith(wanted)]
    else:
        raise UsageError(f"{wanted!r} is not a take number or id", hint=hint)
    if not found:
        raise UsageError(f"{name} has no take {wanted!r} ({len(rows)} take(s))", hint=hint)
    if len(found) > 1:
        raise UsageError(f"{wanted!r} names several takes of {name}; give more of the id")
    return found[0]


def export(rows: Sequence[TakeRow], store: Store, name: str, folder: Path) -> tuple[Path, ...]:
    """Write a viewable copy of every available take's outputs into `folder`
    (`NAME-take3.png`, `NAME-take3-1.png` for a take of several outputs)."""
    from imaginebuild.mediaprobe import suffix_for

    written = []
    for row in rows:
        if not row.available:
            continue
        many = len(row.take.outputs) > 1
        for i, blob in enumerate(row.take.outputs):
            part = f"-{i}" if many else ""
            dest = folder / f"{name}-take{row.number}{part}{suffix_for(blob.media_type)}"
            if not media_matches(store.blob_path(blob.sha256), dest.name):
                raise wrong_media(dest.name, blob.sha256)  # the index named the wrong type
            store.materialize(blob, dest)
            written.append(dest)
    return tuple(written)


# ---------------------------------------------------------------------- gc


_ALWAYS_KEPT = (TakeOrigin.REJECTED, TakeOrigin.RETOUCHED, TakeOrigin.SET_ASIDE)


def gc_keep(store: Store, keep_keys: set[str]) -> tuple[set[str], set[str]]:
    """What gc keeps for the takes of every project in the cache: the keys a take was picked
    under, and the blobs of picked takes, of takes made or kept by hand or waiting for a
    word (rejected: paid for), and of every take of a key gc keeps."""
    from imaginebuild.store.takes import every_book

    keys: set[str] = set()
    blobs: set[str] = set()
    for book in every_book(store):
        for index in book.indexes():
            picked = set(index.picks.values())
            keys |= set(index.picks)
            for take in index.takes:
                if take.id in picked or take.origin in _ALWAYS_KEPT or take.key in keep_keys:
                    blobs |= {o.sha256 for o in take.outputs}
    return keys, blobs


def gc_forget(store: Store, dropped: set[str]) -> None:
    """Forget the takes whose blobs gc dropped, so `takes` lists only what it can show."""
    from imaginebuild.store.takes import every_book

    if not dropped:
        return
    for book in every_book(store):
        for index in book.indexes():
            gone = [t.id for t in index.takes if any(o.sha256 in dropped for o in t.outputs)]
            if gone:
                book.drop(index.asset, gone)
