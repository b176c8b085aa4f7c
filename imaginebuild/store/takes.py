"""The takes of each asset: every set of outputs it has had, indexed beside the cache.

    <cache>/takes/<project>/<asset>.json
        {"v": 1, "asset": NAME, "takes": [Take…], "picks": {action key: take id}}

A take is one set of outputs an asset had: a build (`run`, `run --force`, a new
`variant`), a restore from a cache, a paid result the output check rejected, a
hand retouch adopted or set aside. Its media are blobs of the content-addressed
store (`cache.Store`); this index only names them, with when, why and what they
cost. `<project>` is the project's id in the cache (`cache.project_id`), so a
cache shared by several projects keeps their asset names apart.

Every index read from disk is untrusted: a take whose id is not 12 lowercase hex
digits, whose key or blob hashes are not 64, whose size is negative or whose
origin is unknown is skipped (and counted), never the whole index. Writes are
atomic (`atomic.py`) and happen under the project lock.
"""

from __future__ import annotations

import contextlib
import enum
import hashlib
import json
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from imaginebuild.atomic import atomic_write_bytes
from imaginebuild.errors import AssetOnHold
from imaginebuild.provenance import NO_RECORD, Provenance
from imaginebuild.store.cache import BlobRef, Store, project_id
from imaginebuild.store.lockfile import LockEntry, is_take_id
from imaginebuild.untrusted import ENTRY_CAP, is_sha256, load_json, read_capped, shown

TAKES_FORMAT_VERSION = 1
_MEDIA_TYPE = re.compile(r"^[a-z]+/[a-z0-9.+-]+$")


class TakeOrigin(str, enum.Enum):
    """How a take came to be."""

    BUILT = "built"  # a provider call made it
    RESTORED = "restored"  # it came from a cache (another machine, or an older build)
    REJECTED = "rejected"  # paid for, failed the output check; waits for accept or --force
    ACCEPTED = "accepted"  # a rejected take promoted by `accept`
    RETOUCHED = "retouched"  # outputs edited by hand and adopted
    SET_ASIDE = "set_aside"  # outputs edited by hand, kept when `--force` restored the generated


def take_id(outputs: Sequence[BlobRef]) -> str:
    """A take's id: the same outputs make the same id on every machine."""
    joined = "\n".join(o.sha256 for o in outputs)
    return hashlib.sha256(joined.encode()).hexdigest()[:12]


@dataclass(frozen=True)
class Take:
    """One set of outputs an asset had, and where it came from."""

    key: str  # the action key it was made (or kept) under
    outputs: tuple[BlobRef, ...]
    origin: TakeOrigin
    made_at: str  # ISO 8601 UTC; "" when unknown (a take older than the index)
    record: Provenance = NO_RECORD
    fields: Mapping[str, Any] = field(default_factory=dict)  # kind, prompt, variant, inputs…
    reason: str | None = None  # why it was rejected, or which take a retouch came from

    @property
    def id(self) -> str:
        """The take's id (from its outputs' hashes)."""
        return take_id(self.outputs)

    def to_json(self) -> dict[str, Any]:
        """JSON-ready form, as the index stores it."""
        data: dict[str, Any] = {
            "id": self.id,
            "key": self.key,
            "outputs": [o.to_json() for o in self.outputs],
            "origin": self.origin.value,
            "made_at": self.made_at,
            "record": self.record.to_json(),
            "fields": dict(self.fields),
        }
        if self.reason is not None:
            data["reason"] = self.reason
        return data


def parse_take(data: object) -> Take:
    """A take from its stored form; ValueError on anything not as `to_json` writes it."""
    if not isinstance(data, dict):
        raise ValueError("a take is an object")
    key, raw_outputs = data.get("key"), data.get("outputs")
    if not is_sha256(key):
        raise ValueError(f"key {shown(key)} is not a sha256")
    if not isinstance(raw_outputs, list) or not raw_outputs:
        raise ValueError("a take names at least one output")
    outputs = tuple(_parse_blob(o) for o in raw_outputs)
    record, fields_, reason = data.get("record", {}), data.get("fields", {}), data.get("reason")
    made_at = data.get("made_at", "")
    if not isinstance(record, dict) or not isinstance(fields_, dict):
        raise ValueError("record and fields are objects")
    if not isinstance(made_at, str) or (reason is not None and not isinstance(reason, str)):
        raise ValueError("made_at and reason are texts")
    origin = data.get("origin")
    if origin not in {o.value for o in TakeOrigin}:
        raise ValueError(f"origin {shown(origin)} is not one")
    origin_ = TakeOrigin(origin)
    take = Take(str(key), outputs, origin_, made_at, Provenance.from_json(record), fields_, reason)
    if data.get("id") != take.id:
        raise ValueError(f"id {shown(data.get('id'))} does not match the outputs")
    return take


def _parse_blob(data: object) -> BlobRef:
    if not isinstance(data, dict):
        raise ValueError("an output is an object")
    sha, size, media = data.get("sha256"), data.get("bytes"), data.get("media_type")
    if not is_sha256(sha):
        raise ValueError(f"blob hash {shown(sha)} is not a sha256")
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise ValueError(f"blob size {shown(size)} is not a byte count")
    if not isinstance(media, str) or not _MEDIA_TYPE.fullmatch(media):
        raise ValueError(f"media type {shown(media)} is not one")
    return BlobRef(str(sha), size, media)


@dataclass(frozen=True)
class TakeIndex:
    """One asset's takes, oldest first, the take picked under each key, and what was skipped."""

    asset: str
    takes: tuple[Take, ...] = ()
    picks: Mapping[str, str] = field(default_factory=dict)  # action key → take id
    skipped: int = 0  # entries of the file that failed the checks

    def find(self, wanted: str) -> Take | None:
        """The take with id `wanted`, if indexed."""
        return next((t for t in self.takes if t.id == wanted), None)

    def rejected(self, key: str) -> Take | None:
        """The latest rejected take made under `key` that is still waiting for a word."""
        return next(
            (t for t in reversed(self.takes) if t.key == key and t.origin is TakeOrigin.REJECTED),
            None,
        )

    def to_json(self) -> dict[str, Any]:
        """JSON-ready form, as the index file holds it."""
        return {
            "v": TAKES_FORMAT_VERSION,
            "asset": self.asset,
            "takes": [t.to_json() for t in self.takes],
            "picks": dict(sorted(self.picks.items())),
        }


class TakeBook:
    """The takes indexes of one project (files under the cache's `takes/<project>/`)."""

    def __init__(self, folder: Path, warn: Callable[[str], None] = lambda text: None) -> None:
        self.folder = folder
        self.warn = warn

    @classmethod
    def for_project(
        cls, store: Store, lockfile: Path, warn: Callable[[str], None] = lambda text: None
    ) -> TakeBook:
        """The book of the project whose lockfile is `lockfile`, in `store`'s cache folder."""
        return cls(store.folder / "takes" / project_id(lockfile), warn)

    def path(self, asset: str) -> Path:
        """The index file of `asset` (asset names are safe file names: validation says so)."""
        return self.folder / f"{asset}.json"

    def read(self, asset: str) -> TakeIndex:
        """`asset`'s index; a missing or unreadable file is an empty index (with a warning)."""
        try:
            data = load_json(read_capped(self.path(asset), ENTRY_CAP))
        except FileNotFoundError:
            return TakeIndex(asset)
        except (OSError, ValueError) as exc:  # Untrusted is a ValueError
            self.warn(f"takes of {asset}: unreadable index ignored ({exc})")
            return TakeIndex(asset)
        if not isinstance(data, dict) or data.get("v") != TAKES_FORMAT_VERSION:
            self.warn(f"takes of {asset}: index of an unknown format ignored")
            return TakeIndex(asset)
        if data.get("asset") != asset:
            self.warn(f"takes of {asset}: the index names another asset; ignored")
            return TakeIndex(asset)
        return _parse_index(asset, data, self.warn)

    def write(self, index: TakeIndex) -> None:
        """Replace an asset's index atomically."""
        body = json.dumps(index.to_json(), indent=1, sort_keys=True, ensure_ascii=False)
        atomic_write_bytes(self.path(index.asset), body.encode("utf-8") + b"\n")

    def add(self, asset: str, take: Take) -> Take:
        """Index `take` unless a take with its outputs is indexed already; the indexed take."""
        index = self.read(asset)
        known = index.find(take.id)
        if known is not None:
            return known
        self.write(_replace(index, takes=(*index.takes, take)))
        return take

    def change(self, asset: str, wanted: str, origin: TakeOrigin, reason: str | None) -> None:
        """Give an indexed take a new origin and reason (a rejected take accepted)."""
        import dataclasses

        index = self.read(asset)
        takes = tuple(
            dataclasses.replace(t, origin=origin, reason=reason) if t.id == wanted else t
            for t in index.takes
        )
        self.write(_replace(index, takes=takes))

    def pick(self, asset: str, key: str, wanted: str) -> None:
        """Remember that take `wanted` is the one chosen under `key`."""
        index = self.read(asset)
        self.write(_replace(index, picks={**index.picks, key: wanted}))

    def indexes(self) -> Iterator[TakeIndex]:
        """Every asset's index in this book."""
        for path in sorted(self.folder.glob("*.json")) if self.folder.is_dir() else []:
            yield self.read(path.stem)

    def drop(self, asset: str, ids: Iterable[str]) -> None:
        """Forget takes (gc dropped their blobs) and picks of them."""
        gone = set(ids)
        index = self.read(asset)
        takes = tuple(t for t in index.takes if t.id not in gone)
        picks = {k: v for k, v in index.picks.items() if v not in gone}
        if takes:
            self.write(_replace(index, takes=takes, picks=picks))
        else:
            with contextlib.suppress(OSError):
                self.path(asset).unlink()


def retouched(
    outputs: Sequence[str],
    locked: LockEntry | None,
    root: Path,
    hash_of: Callable[[Path], str],
    has_blob: Callable[[str], bool],
) -> tuple[str, ...]:
    """The outputs (project-relative) whose bytes match neither the lockfile nor any blob of
    the cache: edited by hand, and lost if overwritten. A missing output is not one."""
    locked_hash = {o.path: o.sha256 for o in locked.outputs} if locked is not None else {}
    found = []
    for rel in outputs:
        try:
            digest = hash_of(root / rel)
        except OSError:
            continue
        if digest != locked_hash.get(rel) and not has_blob(digest):
            found.append(rel)
    return tuple(found)


def retouch_text(name: str, files: Sequence[str]) -> str:
    """What a hold for outputs retouched by hand says: the files and the two ways on."""
    return (
        f"{', '.join(files)} retouched by hand: `imaginebuild adopt {name}` keeps it, "
        f"`imaginebuild run --force {name}` restores the generated one"
    )


def RETOUCH_HINT(name: str) -> str:
    """The hint line of a hold for a retouch."""
    return f"`imaginebuild adopt {name}` or `imaginebuild run --force {name}`"


def refuse_overwrite(
    name: str,
    rel: str,
    locked: LockEntry | None,
    root: Path,
    hash_of: Callable[[Path], str],
    has_blob: Callable[[str], bool],
) -> None:
    """Raise AssetOnHold if writing `rel` would destroy a retouch (the last guard of every
    write into the output folder)."""
    if retouched((rel,), locked, root, hash_of, has_blob):
        raise AssetOnHold(
            f"{name}: {retouch_text(name, (rel,))}; nothing overwritten", hint=RETOUCH_HINT(name)
        )


def every_book(store: Store) -> Iterator[TakeBook]:
    """The books of every project that indexed takes in `store` (gc keeps all their picks)."""
    root = store.folder / "takes"
    for folder in sorted(root.iterdir()) if root.is_dir() else []:
        if folder.is_dir():
            yield TakeBook(folder)


def _parse_index(asset: str, data: Mapping[str, Any], warn: Callable[[str], None]) -> TakeIndex:
    takes: list[Take] = []
    skipped = 0
    raw_takes = data.get("takes")
    for raw in raw_takes if isinstance(raw_takes, list) else []:
        try:
            takes.append(parse_take(raw))
        except ValueError as exc:
            skipped += 1
            warn(f"takes of {asset}: a take was skipped ({exc})")
    picks: dict[str, str] = {}
    raw_picks = data.get("picks")
    for key, value in raw_picks.items() if isinstance(raw_picks, dict) else []:
        if is_sha256(key) and is_take_id(value):
            picks[key] = value
        else:
            skipped += 1
    return TakeIndex(asset, tuple(takes), picks, skipped)


def _replace(index: TakeIndex, **changes: Any) -> TakeIndex:
    import dataclasses

    return dataclasses.replace(index, skipped=0, **changes)
