"""The local cache: content-addressed blobs plus an action cache (key → outputs).

    <cache>/blobs/<sha[:2]>/<sha>      immutable, read-only blob files
    <cache>/actions/                   diskcache: action key → ActionEntry JSON

Blobs are written before the action entry that names them, so an entry never
points at a missing blob. Every read of a blob is verified against its name;
a corrupt blob is deleted and reported, never served.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from imaginebuild.atomic import atomic_writer, fsync_dir
from imaginebuild.errors import CorruptBlob, StoreError
from imaginebuild.layout import StateLayout
from imaginebuild.provenance import NO_RECORD, Provenance
from imaginebuild.store.hashing import CHUNK, sha256_file
from imaginebuild.untrusted import (
    ENTRY_CAP,
    Untrusted,
    environment_failure,
    is_sha256,
    load_json,
    printable,
    read_capped,
    sha256_name,
)

STORE_FORMAT_VERSION = 1
GC_GRACE_S = 3600.0  # a blob younger than this may be a live run's, not yet in any lockfile


@dataclass(frozen=True)
class BlobRef:
    """One stored output: its content hash, size and media type."""

    sha256: str
    size: int
    media_type: str

    def to_json(self) -> dict[str, object]:
        """JSON-ready form."""
        return {"sha256": self.sha256, "bytes": self.size, "media_type": self.media_type}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> BlobRef:
        """Parse the JSON form (raises KeyError/TypeError/ValueError on bad data, and on a
        hash that is not 64 lowercase hex or a negative size)."""
        size = int(data["bytes"])
        if size < 0:
            raise Untrusted(f"negative size {size}")
        return cls(sha256_name(data["sha256"], "blob hash"), size, str(data["media_type"]))


@dataclass(frozen=True)
class ActionEntry:
    """What the action cache holds for a key: the outputs and the provenance record."""

    key: str
    outputs: tuple[BlobRef, ...]
    record: Provenance = NO_RECORD
    takes: tuple[tuple[BlobRef, ...], ...] = ()  # earlier takes of this key (--force), oldest first

    def to_json(self) -> dict[str, object]:
        """JSON-ready form, with the store format version."""
        return {
            "v": STORE_FORMAT_VERSION,
            "key": self.key,
            "outputs": [o.to_json() for o in self.outputs],
            "record": self.record.to_json(),
            "takes": [[o.to_json() for o in take] for take in self.takes],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ActionEntry:
        """Parse the JSON form; raises StoreError on anything malformed."""
        try:
            if data.get("v") != STORE_FORMAT_VERSION:
                raise StoreError(f"action entry of unknown format {data.get('v')!r}")
            return cls(
                key=str(data["key"]),
                outputs=tuple(BlobRef.from_json(o) for o in data["outputs"]),
                record=Provenance.from_json(dict(data.get("record") or {})),
                takes=tuple(
                    tuple(BlobRef.from_json(o) for o in take) for take in data.get("takes", [])
                ),
            )
        except (KeyError, TypeError, ValueError, AttributeError, OverflowError) as exc:
            raise StoreError(f"malformed action entry: {printable(str(exc))[:200]}") from exc


def project_id(lockfile: Path) -> str:
    """The name a project goes by in a cache shared by several: from its lockfile's path."""
    return hashlib.sha256(str(lockfile).encode()).hexdigest()[:24]


def default_cache_dir(root: Path, env: dict[str, str] | os._Environ[str]) -> Path:
    """`IMAGINEBUILD_CACHE_DIR` if set, else `<project>/.imaginebuild/cache`."""
    override = env.get("IMAGINEBUILD_CACHE_DIR")
    return Path(override).expanduser().resolve() if override else StateLayout(root).default_cache


class Store:
    """Blobs and action entries under one cache folder (opened lazily)."""

    def __init__(self, folder: Path, warn: Callable[[str], None] = lambda _text: None) -> None:
        self.folder = folder
        self.blobs = folder / "blobs"
        self.warn = warn  # told when a malformed entry is dropped
        self._actions: Any = None

    # -- blobs -------------------------------------------------------------------------

    def blob_path(self, sha256: str) -> Path:
        """Where the blob with this hash lives (whether or not it exists).

        Raises StoreError for anything but 64 lowercase hex: a hash from a lockfile or
        an entry never names a file outside the blob folder.
        """
        try:
            sha = sha256_name(sha256, "blob hash")
        except Untrusted as exc:
            raise StoreError(str(exc)) from None
        return self.blobs / sha[:2] / sha

    def has_blob(self, sha256: str) -> bool:
        """Whether a blob with this hash is present (not verified; False for a non-hash)."""
        return is_sha256(sha256) and self.blob_path(sha256).is_file()

    def put_file(self, src: Path, media_type: str, *, move: bool = False) -> BlobRef:
        """Store a file's bytes as a blob; `move` lets a temp file be renamed into place."""
        digest = sha256_file(src)
        size = src.stat().st_size
        dest = self.blob_path(digest)
        if dest.is_file():
            with contextlib.suppress(OSError):
                os.utime(dest)  # reused just now: young again, so gc's grace covers it
        else:
            try:
                dest.parent.mkdir(parents=True, exist_ok=True)
                if move:
                    _fsync_file(src)
                    os.chmod(src, 0o444)
                    os.replace(src, dest)
                    fsync_dir(dest.parent)
                else:
                    with atomic_writer(dest, mode=0o444) as out, src.open("rb") as f:
                        shutil.copyfileobj(f, out, CHUNK)
            except OSError as exc:
                raise environment_failure(exc) from exc
        return BlobRef(digest, size, media_type)

    def verify_blob(self, sha256: str) -> None:
        """Raise CorruptBlob (after deleting it) if the blob's bytes do not match its name."""
        path = self.blob_path(sha256)
        try:
            actual = sha256_file(path)
        except FileNotFoundError as exc:
            raise CorruptBlob(f"blob {sha256[:12]} is missing from the cache") from exc
        except OSError as exc:
            raise StoreError(f"cannot read blob {sha256[:12]}: {exc}") from exc
        if actual != sha256:
            self._drop_blob(path)
            raise CorruptBlob(f"blob {sha256[:12]} was corrupt (hashes to {actual[:12]}); removed")

    def materialize(self, blob: BlobRef, dest: Path) -> None:
        """Copy a blob to `dest` atomically, verifying its hash on the way."""
        src = self.blob_path(blob.sha256)
        digest = hashlib.sha256()
        try:
            with atomic_writer(dest) as out, src.open("rb") as f:
                while chunk := f.read(CHUNK):
                    digest.update(chunk)
                    out.write(chunk)
                if digest.hexdigest() != blob.sha256:
                    raise CorruptBlob(f"blob {blob.sha256[:12]} was corrupt; removed")
        except CorruptBlob:
            self._drop_blob(src)
            raise
        except FileNotFoundError as exc:
            raise CorruptBlob(f"blob {blob.sha256[:12]} is missing from the cache") from exc
        except OSError as exc:
            raise StoreError(f"cannot materialize {dest}: {exc}") from exc

    def iter_blobs(self) -> Iterator[str]:
        """Hashes of every blob present (a stray file that is not a blob is skipped)."""
        if not self.blobs.is_dir():
            return
        for sub in sorted(self.blobs.iterdir()):
            if sub.is_dir() and not sub.is_symlink():
                for blob in sorted(sub.iterdir()):
                    if is_sha256(blob.name) and blob.name[:2] == sub.name:
                        yield blob.name

    def delete_blob(self, sha256: str) -> None:
        """Remove a blob (gc)."""
        self._drop_blob(self.blob_path(sha256))

    def collectable(self, sha256: str, now: float, grace: float = GC_GRACE_S) -> bool:
        """Whether gc may drop a blob: one stored or reused less than `grace` seconds ago
        may belong to a run whose lockfile does not name it yet."""
        try:
            return now - self.blob_path(sha256).stat().st_mtime >= grace
        except OSError:
            return False

    @contextlib.contextmanager
    def live_run(self) -> Iterator[None]:
        """Mark this process as building with this cache while the block runs; gc from
        any project leaves a cache with a live run alone."""
        marker = self.folder / "live" / f"run-{os.getpid()}"
        try:
            marker.parent.mkdir(parents=True, exist_ok=True)
            marker.touch()
        except OSError:
            yield  # a cache we cannot mark is one gc cannot collect either
            return
        try:
            yield
        finally:
            with contextlib.suppress(OSError):
                marker.unlink()

    def live_runs(self) -> list[int]:
        """Process ids of other live runs using this cache (markers of dead ones are removed)."""
        folder = self.folder / "live"
        found = []
        for marker in folder.iterdir() if folder.is_dir() else []:
            match = _LIVE_RUN.fullmatch(marker.name)
            if match is None:
                continue
            pid = int(match.group(1))
            if pid == os.getpid():
                continue
            if _alive(pid):
                found.append(pid)
            else:
                with contextlib.suppress(OSError):
                    marker.unlink()
        return sorted(found)

    @staticmethod
    def _drop_blob(path: Path) -> None:
        with contextlib.suppress(OSError):
            os.chmod(path, 0o644)
            path.unlink()

    # -- action cache ------------------------------------------------------------------

    def _cache(self) -> Any:
        if self._actions is None:
            import diskcache  # imported here: the no-op path never opens the action cache

            try:
                self._actions = diskcache.Cache(str(self.folder / "actions"))
            except OSError as exc:
                raise environment_failure(exc) from exc
            except Exception as exc:  # diskcache raises sqlite3 and OS errors alike
                raise StoreError(f"cannot open the action cache in {self.folder}: {exc}") from exc
        return self._actions

    def get_action(self, key: str) -> ActionEntry | None:
        """The entry for `key` if present and every blob it names exists; else None.

        A malformed entry is dropped (and reported by returning None) so it is rebuilt.
        """
        if self._actions is None and not (self.folder / "actions").is_dir():
            return (
                None  # nothing cached yet; a look must not create the cache (plan writes nothing)
            )
        try:
            raw = self._cache().get(key)
        except StoreError:
            raise
        except Exception as exc:
            raise StoreError(f"cannot read the action cache: {exc}") from exc
        if raw is None:
            return None
        try:
            if not isinstance(raw, (str, bytes)) or len(raw) > ENTRY_CAP:
                raise StoreError("not an action entry, or larger than an entry can be")
            doc = load_json(raw)
            if not isinstance(doc, dict):
                raise StoreError("an action entry is a JSON object")
            entry = ActionEntry.from_json(doc)
        except (StoreError, ValueError, TypeError) as exc:
            self.delete_action(key)
            self.warn(f"dropped a malformed action cache entry ({key[:12]}…): {exc}")
            return None
        if entry.key != key or not all(self.has_blob(o.sha256) for o in entry.outputs):
            return None
        return entry

    def put_action(self, entry: ActionEntry) -> None:
        """Record an entry; every blob it names must already be stored."""
        missing = [o.sha256 for o in entry.outputs if not self.has_blob(o.sha256)]
        if missing:
            raise StoreError(f"refusing an action entry whose blobs are missing: {missing[0]}")
        try:
            self._cache().set(entry.key, json.dumps(entry.to_json(), sort_keys=True))
        except Exception as exc:
            raise StoreError(f"cannot write the action cache: {exc}") from exc

    def delete_action(self, key: str) -> None:
        """Forget an action entry (gc, or a malformed entry)."""
        with contextlib.suppress(Exception):
            self._cache().delete(key)

    def action_keys(self) -> list[str]:
        """Every key in the action cache."""
        try:
            return [str(k) for k in self._cache().iterkeys()]
        except StoreError:
            raise
        except Exception as exc:
            raise StoreError(f"cannot read the action cache: {exc}") from exc

    # -- housekeeping --------------------------------------------------------------------

    def register_project(self, lockfile: Path) -> None:
        """Note that a project's lockfile uses this cache, so gc elsewhere keeps its entries."""
        folder = self.folder / "projects"
        name = project_id(lockfile) + ".json"
        body = json.dumps({"lockfile": str(lockfile)}).encode()
        path = folder / name
        with contextlib.suppress(OSError):
            if path.read_bytes() == body:
                return
        with contextlib.suppress(OSError), atomic_writer(path) as out:
            out.write(body)

    def registered_lockfiles(self) -> list[Path]:
        """Lockfiles of every project that used this cache and still exists."""
        found = []
        folder = self.folder / "projects"
        for entry in sorted(folder.glob("*.json")) if folder.is_dir() else []:
            try:
                doc = load_json(read_capped(entry, ENTRY_CAP))
                lockfile = Path(doc["lockfile"])  # type: ignore[index]
            except (OSError, ValueError, KeyError, TypeError):
                continue
            if not lockfile.is_absolute() or lockfile.suffix != ".lock":
                continue  # not what register_project writes: a stray or hostile entry
            if lockfile.exists():
                found.append(lockfile)
            else:
                with contextlib.suppress(OSError):
                    entry.unlink()  # the project is gone: forget it
        return found

    @property
    def _tmp(self) -> Path:
        return self.folder / "tmp"

    def tmp_dir(self) -> Path:
        """A folder for work files on the cache's filesystem (so results move in by rename)."""
        self._tmp.mkdir(parents=True, exist_ok=True)
        return self._tmp

    def clean_tmp(self) -> None:
        """Remove work folders and downloads left by processes that died (a kill mid-step)."""
        folder = self._tmp
        if not folder.is_dir():
            return
        for item in folder.iterdir():
            match = _TMP_OWNER.match(item.name)
            if match is None or _alive(int(match.group(1))):
                continue
            if item.is_dir():
                shutil.rmtree(item, ignore_errors=True)
            else:
                with contextlib.suppress(OSError):
                    item.unlink()

    def close(self) -> None:
        """Close the action cache's database."""
        if self._actions is not None:
            self._actions.close()
            self._actions = None


_TMP_OWNER = re.compile(r"^\.?(?:work|fetch)-(\d+)-")
_LIVE_RUN = re.compile(r"run-(\d{1,10})")


def gc_busy_message(pids: list[int]) -> str:
    """What gc says when live runs use its cache."""
    who = ", ".join(str(p) for p in pids[:5])
    return (
        f"gc: nothing collected: another imaginebuild run is using this cache (pid {who}); "
        "run gc again when it has finished"
    )


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
