"""The shared remote cache on an object store (any fsspec URL: s3://, gs://, file://).

Layout under the configured URL (`<root>`), all objects immutable except leases:

    <root>/v1/blobs/<sha[:2]>/<sha>          output bytes, named by their sha256
    <root>/v1/actions/<key[:2]>/<key>.json   {"format", "v", "key_format", "entry"}
    <root>/v1/leases/<key>.json              who is building a missing key, until when

Ordering is the whole consistency story: `push` uploads every blob an entry
names, confirms each is there at its full size, and only then writes the entry,
so a reader never sees a key whose outputs are missing, and a push cut short
leaves at worst some unreferenced blobs (collected by `gc --remote`). `fetch`
streams each blob into the local store while hashing it and keeps it only if it
matches its name, so a corrupt remote blob is reported and never materialized.

An action entry is replaced only when the same key is pushed with other outputs
(a `--force` re-roll, or two machines that both built it): either version is
complete, and the last writer wins.

Two machines that miss the same key at once would both pay for it. A lease
closes that window where the backend has conditional writes (S3 and its
clones: `If-None-Match: *` answers 412 to the second creator; file:// uses an
exclusive link): `acquire_lease` returns True to exactly one of them until the
lease expires or is released; `claim` is one try and `leasewait.claim_or_wait`
the whole protocol (claim, else look for the entry until the lease ends or a
timeout passes).
Limits: a holder that outlives its `ttl` without renewing may be joined by a
second builder; on file:// an expired lease is taken over by delete-then-create,
where two takers can race; on backends without conditional writes (gs://…)
`acquire_lease` always grants, i.e. the old "both may pay" behaviour.

Credentials come from the backend's usual sources (for s3: the AWS_* variables,
AWS_PROFILE, ~/.aws, instance roles); they are never stored or shown.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from imaginebuild.errors import CorruptBlob, StoreError
from imaginebuild.remote import leases
from imaginebuild.remote.backend import open_fs
from imaginebuild.remote.entries import check_name, decode_entry, encode_entry
from imaginebuild.remote.sync import (
    DEFAULT_POLICY,
    Progress,
    ProgressCounter,
    Transport,
    redact,
)
from imaginebuild.retry import RetryPolicy
from imaginebuild.store.cache import ActionEntry, BlobRef, Store
from imaginebuild.untrusted import is_sha256

LAYOUT = "v1"
DEFAULT_JOBS = 8
DEFAULT_GC_MIN_AGE = 3600.0  # a blob younger than this may belong to a push in progress

_TRUE = frozenset({"1", "true", "yes", "on"})
_LEASE_PROTOCOLS = frozenset({"s3", "s3a", "file", "local"})

Warn = Callable[[str], None]


def _ignore(_message: str) -> None:
    """The default warning sink: the library never prints."""


@dataclass(frozen=True)
class RemoteGc:
    """What `gc` dropped (or, on a dry run, would drop) from the remote."""

    drop_keys: tuple[str, ...]
    drop_blobs: tuple[str, ...]
    freed_bytes: int
    dry_run: bool


class RemoteCache:
    """Blobs and action entries on a shared object store (see the module docstring).

    All methods are synchronous and thread-safe; transfers run on a bounded pool.
    """

    def __init__(
        self,
        fs: Any,
        root: str,
        *,
        url: str,
        readonly: bool = False,
        jobs: int = DEFAULT_JOBS,
        policy: RetryPolicy = DEFAULT_POLICY,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.time,
        warn: Warn = _ignore,
    ) -> None:
        self.url = redact(url)
        self.readonly = readonly
        self.root = root.rstrip("/")
        self.base = f"{self.root}/{LAYOUT}"
        self.transport = Transport(fs, label=self.url, policy=policy, jobs=jobs, sleep=sleep)
        protocols = fs.protocol if isinstance(fs.protocol, (tuple, list)) else (fs.protocol,)
        self.supports_leases = bool(_LEASE_PROTOCOLS & set(protocols))
        self.clock = clock
        self._warn = warn
        self._ignored: set[str] = set()  # keys whose malformed entry was already reported

    @classmethod
    def from_config(
        cls,
        url: str | None,
        readonly: bool,
        env: Mapping[str, str],
        *,
        jobs: int = DEFAULT_JOBS,
        warn: Warn = _ignore,
    ) -> RemoteCache | None:
        """The remote named by `IMAGINEBUILD_REMOTE` (which wins) or `url`; None if neither.

        `IMAGINEBUILD_REMOTE_READONLY=1` forces read-only. Raises UsageError when
        the URL's backend package is missing.
        """
        chosen = (env.get("IMAGINEBUILD_REMOTE") or url or "").strip()
        if not chosen:
            return None
        forced = env.get("IMAGINEBUILD_REMOTE_READONLY", "").strip().lower() in _TRUE
        fs, root = open_fs(chosen, env)
        return cls(fs, root, url=chosen, readonly=readonly or forced, jobs=jobs, warn=warn)

    # -- layout ------------------------------------------------------------------------

    def blob_path(self, sha256: str) -> str:
        """The object path of a blob."""
        sha = check_name(sha256, "blob hash")
        return f"{self.base}/blobs/{sha[:2]}/{sha}"

    def action_path(self, key: str) -> str:
        """The object path of an action entry."""
        checked = check_name(key, "action key")
        return f"{self.base}/actions/{checked[:2]}/{checked}.json"

    def lease_path(self, key: str) -> str:
        """The object path of a key's build lease."""
        return f"{self.base}/leases/{check_name(key, 'action key')}.json"

    # -- action entries ----------------------------------------------------------------

    def get_action(self, key: str) -> ActionEntry | None:
        """The remote entry for `key`, or None; a malformed entry is ignored with a warning."""
        path = self.action_path(key)
        raw = self.transport.read_bytes(path)
        if raw is None:
            return None
        try:
            return decode_entry(raw, key)
        except StoreError as exc:
            if key not in self._ignored:  # a run reads an entry more than once: say it once
                self._ignored.add(key)
                self._warn(f"remote cache {self.url}: ignoring the entry for {key[:12]}: {exc}")
            return None

    def has_action(self, key: str) -> bool:
        """Whether an entry for `key` exists remotely (not validated)."""
        return self.transport.info(self.action_path(key)) is not None

    def action_keys(self) -> list[str]:
        """Every key with an entry on the remote, sorted."""
        keys = []
        for obj in self.transport.list_files(f"{self.base}/actions"):
            name = str(obj["name"]).rsplit("/", 1)[-1]
            if name.endswith(".json") and is_sha256(name[:-5]):
                keys.append(name[:-5])
        return sorted(keys)

    def delete_action(self, key: str) -> None:
        """Remove a key's entry (gc); refused on a read-only remote."""
        self._check_writable("delete an action entry")
        self.transport.delete(self.action_path(key))

    # -- blobs -------------------------------------------------------------------------

    def _blob_objects(self) -> dict[str, dict[str, Any]]:
        found = {}
        for obj in self.transport.list_files(f"{self.base}/blobs"):
            name = str(obj["name"]).rsplit("/", 1)[-1]
            if is_sha256(name):
                found[name] = obj
        return found

    def blob_hashes(self) -> list[str]:
        """Every blob hash on the remote, sorted."""
        return sorted(self._blob_objects())

    def delete_blob(self, sha256: str) -> None:
        """Remove a blob (gc); refused on a read-only remote."""
        self._check_writable("delete a blob")
        self.transport.delete(self.blob_path(sha256))

    def fetch_blobs(
        self, blobs: Iterable[BlobRef], store: Store, progress: Progress | None = None
    ) -> int:
        """Download the blobs the local store lacks, verified; returns how many were fetched.

        Raises CorruptBlob when a remote blob does not match its hash or its size
        (nothing of it is kept; a writable remote loses the bad object, so the
        rebuild's push repairs it) and StoreError when one is missing or unreachable.
        """
        wanted: dict[str, BlobRef] = {}
        for blob in blobs:
            check_name(blob.sha256, "blob hash")
            if not store.has_blob(blob.sha256):
                wanted.setdefault(blob.sha256, blob)
        todo = list(wanted.values())
        counter = ProgressCounter(sum(b.size for b in todo), progress)

        def one(blob: BlobRef) -> None:
            path = self.blob_path(blob.sha256)
            found = self.transport.info(path)
            if found is None:
                raise StoreError(
                    f"remote cache {self.url}: blob {blob.sha256[:12]} is missing",
                    hint="push it again from a machine that has it, or rebuild",
                )
            declared = found.get("size")
            try:
                if isinstance(declared, int) and declared != blob.size:
                    raise CorruptBlob(
                        f"remote cache {self.url}: blob {blob.sha256[:12]} is "
                        f"{declared} bytes, its entry says {blob.size}; not downloaded"
                    )
                dest = store.blob_path(blob.sha256)
                counter.add(self.transport.download_verified(path, blob.sha256, dest, blob.size))
            except CorruptBlob:
                self._repair(blob)
                raise

        self.transport.run_bounded(one, todo)
        return len(todo)

    def _repair(self, blob: BlobRef) -> None:
        """Delete a remote blob proved wrong (its bytes do not hash to its name, or its
        size is not the entry's), so the push of the rebuild uploads it again. A
        read-only remote is left as it is; a failed delete only leaves it for `gc`."""
        if self.readonly:
            return
        try:
            self.transport.delete(self.blob_path(blob.sha256))
        except StoreError:
            return
        self._warn(f"remote cache {self.url}: removed corrupt blob {blob.sha256[:12]}")

    def fetch(self, entry: ActionEntry, store: Store, progress: Progress | None = None) -> None:
        """Bring a remote entry and its outputs into the local store (blobs first)."""
        self.fetch_blobs(entry.outputs, store, progress)
        store.put_action(entry)

    # -- push --------------------------------------------------------------------------

    def push(self, entry: ActionEntry, store: Store, progress: Progress | None = None) -> bool:
        """Upload an entry's missing blobs, then the entry; returns whether anything was written.

        Refused (StoreError) on a read-only remote. If the push is cut short, the
        entry is not written: the remote holds at most some unreferenced blobs.
        """
        self._check_writable("push")
        missing = [b.sha256 for b in entry.outputs if not store.has_blob(b.sha256)]
        if missing:
            raise StoreError(f"cannot push {entry.key[:12]}: blob {missing[0][:12]} is not cached")
        body = encode_entry(entry)
        entry_path = self.action_path(entry.key)
        if self.transport.read_bytes(entry_path) == body:
            return False
        unique = list({b.sha256: b for b in entry.outputs}.values())
        present = self.transport.run_bounded(self._blob_present, unique)
        todo = [b for b, ok in zip(unique, present, strict=True) if not ok]
        counter = ProgressCounter(sum(b.size for b in todo), progress)

        def upload(blob: BlobRef) -> None:
            self.transport.upload_file(store.blob_path(blob.sha256), self.blob_path(blob.sha256))
            counter.add(blob.size)

        self.transport.run_bounded(upload, todo)
        # Confirm what was uploaded is really there before the entry makes it reachable.
        confirmed = self.transport.run_bounded(self._blob_present, todo)
        if not all(confirmed):
            raise StoreError(
                f"remote cache {self.url}: an uploaded blob of {entry.key[:12]} did not appear; "
                "the entry was not written"
            )
        self.transport.write_bytes(entry_path, body)
        return True

    def _blob_present(self, blob: BlobRef) -> bool:
        found = self.transport.info(self.blob_path(blob.sha256))
        return found is not None and int(found.get("size", -1)) == blob.size

    def _check_writable(self, what: str) -> None:
        if self.readonly:
            raise StoreError(
                f"remote cache {self.url} is read-only; refusing to {what}",
                hint="remote_readonly / IMAGINEBUILD_REMOTE_READONLY make it so",
            )

    # -- gc ----------------------------------------------------------------------------

    def gc(
        self,
        keep_keys: Iterable[str],
        keep_blobs: Iterable[str] = (),
        *,
        dry_run: bool = True,
        min_age: float = DEFAULT_GC_MIN_AGE,
    ) -> RemoteGc:
        """Drop entries not in `keep_keys` and blobs nothing kept names (a dry run by default).

        The remote may be shared by several projects: `keep_keys` must cover all
        of them. Entries go before blobs (never an entry without its blobs), and
        blobs younger than `min_age` seconds are kept, as they may belong to a
        push whose entry is not written yet. Limit: a push that finds an old,
        unreferenced blob already present and reuses it can lose it to a gc
        running at that moment; readers of that entry then get a "blob is
        missing" StoreError and rebuild. Run `gc --remote` when no push is busy.
        """
        keep_key_set = set(keep_keys)
        keep = set(keep_blobs)
        drop_keys = []
        for key in self.action_keys():
            if key not in keep_key_set:
                drop_keys.append(key)
                continue
            entry = self.get_action(key)
            if entry is not None:
                keep.update(b.sha256 for b in entry.outputs)
                keep.update(b.sha256 for take in entry.takes for b in take)
        now = self.clock()
        drop_blobs, freed = [], 0
        for sha, obj in sorted(self._blob_objects().items()):
            if sha in keep or now - _mtime(obj, now) < min_age:
                continue
            drop_blobs.append(sha)
            freed += int(obj.get("size") or 0)
        if not dry_run:
            self._check_writable("collect garbage")
            for key in drop_keys:
                self.transport.delete(self.action_path(key))
            self.transport.run_bounded(
                lambda s: self.transport.delete(self.blob_path(s)), drop_blobs
            )
        return RemoteGc(tuple(drop_keys), tuple(drop_blobs), freed, dry_run)

    # -- leases ------------------------------------------------------------------------

    def acquire_lease(self, key: str, owner: str, ttl: float) -> bool:
        """Claim the right to build `key` for `ttl` seconds; False if another owner holds it.

        True also when the remote cannot hold leases (read-only, or no
        conditional writes): the caller then builds as if unleased. The holder
        may call again to renew.
        """
        if self.readonly or not self.supports_leases:
            return True
        path = self.lease_path(key)
        body = leases.encode(owner, self.clock() + min(ttl, leases.MAX_LEASE_S))
        if self.transport.create_exclusive(path, body):
            return True
        info = self.transport.info(path)
        if info is None:  # released between our create and our look
            return self.transport.create_exclusive(path, body)
        lease = leases.parse(self.transport.read_bytes(path))
        if lease is not None and lease.owner != owner and self._holds(lease, info):
            return False
        if self.transport.is_local:
            self.transport.delete(path)
            return self.transport.create_exclusive(path, body)
        etag = info.get("ETag") or info.get("etag")
        if not etag:
            return False
        return self.transport.replace_if_match(path, body, str(etag))

    def release_lease(self, key: str, owner: str) -> None:
        """Give up a lease this owner holds (a lease held by another is left alone)."""
        if self.readonly or not self.supports_leases:
            return
        path = self.lease_path(key)
        lease = leases.parse(self.transport.read_bytes(path))
        if lease is not None and lease.owner == owner:
            self.transport.delete(path)

    def _holds(self, lease: leases.Lease, info: Mapping[str, Any]) -> bool:
        """Whether a lease still binds others: unexpired (its lifetime capped from when
        it was written) and not held by a process of this host that is gone."""
        now = self.clock()
        return lease.ends_at(_mtime(info, now)) > now and not lease.holder_is_dead_here()

    def claim(self, key: str, owner: str, ttl: float) -> tuple[bool, ActionEntry | None]:
        """One try before paying for a key missing everywhere: (True, None) when this
        owner now holds the lease and builds; (False, entry) when another machine's build
        is there to restore; (False, None) when another holds the lease (wait and look
        again: `leasewait.claim_or_wait`)."""
        if self.acquire_lease(key, owner, ttl):
            # The holder may have pushed and released between our miss and our claim.
            entry = self.get_action(key)
            if entry is not None:
                self.release_lease(key, owner)
                return False, entry
            return True, None
        return False, self.get_action(key)

    def lease_exists(self, key: str) -> bool:
        """Whether a lease object for `key` is there (expired or not: one HEAD)."""
        return self.transport.info(self.lease_path(key)) is not None

    def lease_holder(self, key: str) -> str | None:
        """Who holds an unexpired lease on `key`, if anyone."""
        if not self.supports_leases:
            return None
        path = self.lease_path(key)
        info = self.transport.info(path)
        lease = leases.parse(self.transport.read_bytes(path)) if info is not None else None
        return lease.owner if lease is not None and self._holds(lease, info or {}) else None


def _mtime(obj: Mapping[str, Any], default: float) -> float:
    """An object's modification time as Unix seconds (s3: LastModified; file: mtime)."""
    for field in ("LastModified", "mtime", "updated", "last_modified"):
        value = obj.get(field)
        if isinstance(value, datetime):
            return value.timestamp()
        if isinstance(value, (int, float)):
            return float(value)
    return default
