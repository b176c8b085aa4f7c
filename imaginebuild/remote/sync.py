"""The remote cache's transport: one fsspec filesystem behind retries, error translation
and a bounded pool of concurrent transfers.

Every call into fsspec (and through it s3fs, botocore, aiohttp, gcsfs…) goes
through `Transport.call`, which retries transient faults with backoff and turns
whatever the backend raised into StoreError; nothing foreign escapes this module.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import random
import re
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from pathlib import Path
from typing import Any, TypeVar

from imaginebuild.atomic import atomic_writer
from imaginebuild.errors import CorruptBlob, ImaginebuildError, StoreError
from imaginebuild.retry import RetryPolicy, is_retryable_status
from imaginebuild.store.hashing import CHUNK
from imaginebuild.untrusted import ENTRY_CAP

T = TypeVar("T")
R = TypeVar("R")

Progress = Callable[[int, int], None]
"""Called as `progress(done_bytes, total_bytes)` as each transfer of a batch ends,
from the transfer threads (one call at a time)."""

DEFAULT_POLICY = RetryPolicy(max_retries=3, base_delay=0.5, max_delay=8.0)

# Backend exception classes (matched by name: their packages are optional) that mean
# "the network or the server hiccuped; the same request may well succeed next time".
_TRANSIENT_NAMES = frozenset(
    {
        "EndpointConnectionError",
        "ConnectionClosedError",
        "ConnectTimeoutError",
        "ReadTimeoutError",
        "ResponseStreamingError",
        "IncompleteReadError",
        "ClientConnectionError",
        "ClientPayloadError",
        "ServerDisconnectedError",
        "ServerTimeoutError",
        "TimeoutError",
        "FSTimeoutError",
        "HTTPClientError",
        "ResponseParserError",
        "IncompleteRead",
    }
)
_TRANSIENT_ERRNOS = frozenset(
    {errno.ECONNRESET, errno.ECONNREFUSED, errno.ECONNABORTED, errno.EPIPE, errno.ETIMEDOUT}
)
_RETRY_CODES = frozenset({"SlowDown", "XAmzContentSHA256Mismatch", "RequestTimeout"})
_PRECONDITION_CODES = frozenset({"PreconditionFailed", "ConditionalRequestConflict"})
_USERINFO = re.compile(r"(?<=://)[^/@\s]*@")


def redact(url: str) -> str:
    """A URL safe for messages: any `user:password@` part is removed."""
    return _USERINFO.sub("", url)


def _client_error(exc: BaseException) -> Any:
    """The botocore-style ClientError behind an exception, if any (s3fs chains it as cause)."""
    for cand in (exc, exc.__cause__, exc.__context__):
        if cand is not None and isinstance(getattr(cand, "response", None), dict):
            return cand
    return None


def is_precondition_failed(exc: BaseException) -> bool:
    """Whether a backend error is an HTTP 412 (a conditional write lost the race).

    s3fs reports a 412 as a plain OSError (or FileExistsError); the cause says which.
    """
    if isinstance(exc, FileExistsError):
        return True
    err = _client_error(exc)
    if err is not None:
        info = err.response.get("Error", {})
        meta = err.response.get("ResponseMetadata", {})
        return info.get("Code") in _PRECONDITION_CODES or meta.get("HTTPStatusCode") == 412
    return "pre-condition" in str(exc).lower() or "precondition" in str(exc).lower()


def is_transient(exc: BaseException) -> bool:
    """Whether retrying the same request may cure this backend error."""
    if any(cls.__name__ in _TRANSIENT_NAMES for cls in type(exc).__mro__):
        return True
    if isinstance(exc, (ConnectionError, TimeoutError)):
        return True
    if isinstance(exc, OSError) and exc.errno in _TRANSIENT_ERRNOS:
        return True
    err = _client_error(exc)
    if err is not None:
        status = err.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        code = err.response.get("Error", {}).get("Code")
        return (isinstance(status, int) and is_retryable_status(status)) or code in _RETRY_CODES
    return False


class _Mismatch(Exception):
    """Downloaded bytes do not hash to the blob's name (raised inside a download)."""

    def __init__(self, actual: str) -> None:
        super().__init__(actual)
        self.actual = actual


def _mismatch_text(actual: str) -> str:
    """What a `_Mismatch` found: another hash, or too many bytes."""
    return f"its bytes hash to {actual[:12]}" if len(actual) == 64 else actual


class Transport:
    """One fsspec filesystem, called with retries and translated errors.

    `label` names the remote in messages (already redacted); `sleep` and `rng`
    are injected so tests need not wait.
    """

    def __init__(
        self,
        fs: Any,
        *,
        label: str,
        policy: RetryPolicy = DEFAULT_POLICY,
        jobs: int = 8,
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
        clock: Callable[[], float] = time.monotonic,
        cooldown: float = 60.0,
    ) -> None:
        self.fs = fs
        self.label = label
        self.policy = policy
        self.jobs = max(1, jobs)
        self._sleep = sleep
        self._rng = rng or random.Random()  # noqa: S311 (jitter, not cryptography)
        self._clock = clock
        self.cooldown = cooldown
        # After a request exhausts its retries on network faults, later requests fail
        # at once for `cooldown` seconds: a run against an unreachable remote pays the
        # retry budget once, not once per asset.
        self._down: tuple[float, str] | None = None
        protocols = fs.protocol if isinstance(fs.protocol, (tuple, list)) else (fs.protocol,)
        self.is_local = bool({"file", "local"} & set(protocols))

    # -- the one seam ------------------------------------------------------------------

    def call(self, what: str, path: str, fn: Callable[[], T]) -> T:
        """Run `fn` (one backend request), retrying transient faults; errors become ours."""
        down = self._down
        if down is not None and self._clock() < down[0]:
            raise StoreError(f"remote cache {self.label} is unreachable: {down[1]}")
        attempt = 0
        while True:
            try:
                result = fn()
            except (ImaginebuildError, _Mismatch):
                raise
            except Exception as exc:  # fsspec backends raise anything; translated right here
                transient = is_transient(exc)
                if transient and self.policy.allows(attempt):
                    self._sleep(self.policy.delay(attempt, None, self._rng))
                    attempt += 1
                    continue
                error = self._translate(what, path, exc, attempt)
                if transient:
                    self._down = (self._clock() + self.cooldown, error.message)
                raise error from exc
            self._down = None
            return result

    def _translate(self, what: str, path: str, exc: Exception, retries: int) -> StoreError:
        where = f"remote cache {self.label}: cannot {what} {path}"
        tried = f" (after {retries} retries)" if retries else ""
        if isinstance(exc, PermissionError):
            return StoreError(
                f"{where}: access denied{tried}",
                hint="check the backend's credentials (for s3: AWS_ACCESS_KEY_ID / "
                "AWS_SECRET_ACCESS_KEY, AWS_PROFILE or ~/.aws) and the bucket policy",
            )
        # The text of backend errors names the request, never the secret key or token.
        detail = redact(str(exc)) or type(exc).__name__
        return StoreError(f"{where}: {type(exc).__name__}: {detail}{tried}")

    # -- single requests ---------------------------------------------------------------

    def read_bytes(self, path: str, cap: int = ENTRY_CAP) -> bytes | None:
        """The object's bytes, or None when it does not exist; an object larger than
        `cap` raises StoreError after reading at most `cap` + 1 bytes of it."""

        def read() -> bytes | None:
            try:  # a ranged read: an object past the cap costs cap + 1 bytes, not its size
                data = bytes(self.fs.cat_file(path, start=0, end=cap + 1))
            except FileNotFoundError:
                return None
            if len(data) > cap:
                raise StoreError(
                    f"remote cache {self.label}: {path} is larger than the {cap:,} bytes "
                    "an entry may have; ignored"
                )
            return data

        return self.call("read", path, read)

    def info(self, path: str) -> dict[str, Any] | None:
        """The object's metadata (size, ETag/mtime…), or None when it does not exist."""

        def stat() -> dict[str, Any] | None:
            try:
                found = self.fs.info(path)
            except FileNotFoundError:
                return None
            return dict(found) if found.get("type", "file") == "file" else None

        return self.call("inspect", path, stat)

    def write_bytes(self, path: str, data: bytes) -> None:
        """Create or replace an object (atomically: a reader sees old or new bytes)."""
        if self.is_local:
            self.call("write", path, lambda: self._local_replace(path, data))
        else:
            self.call("write", path, lambda: self.fs.pipe_file(path, data))

    def create_exclusive(self, path: str, data: bytes) -> bool:
        """Create an object only if none exists (If-None-Match: *); False if one did."""

        def create() -> bool:
            try:
                if self.is_local:
                    self._local_create(path, data)
                else:
                    self.fs.pipe_file(path, data, IfNoneMatch="*")
            except Exception as exc:
                if is_precondition_failed(exc):
                    return False
                raise
            return True

        return self.call("create", path, create)

    def replace_if_match(self, path: str, data: bytes, etag: str) -> bool:
        """Replace an object only if it still has `etag` (If-Match); False if it changed."""

        def replace() -> bool:
            try:
                self.fs.pipe_file(path, data, IfMatch=etag)
            except FileNotFoundError:
                return False
            except Exception as exc:
                if is_precondition_failed(exc):
                    return False
                raise
            return True

        return self.call("replace", path, replace)

    def delete(self, path: str) -> None:
        """Remove an object; a missing one is not an error."""

        def rm() -> None:
            with contextlib.suppress(FileNotFoundError):
                self.fs.rm_file(path)

        self.call("delete", path, rm)

    def list_files(self, folder: str) -> list[dict[str, Any]]:
        """Every object under `folder` (recursively) with its metadata; [] if none."""

        def find() -> list[dict[str, Any]]:
            try:
                found = self.fs.find(folder, detail=True)
            except FileNotFoundError:
                return []
            return [dict(v) for v in found.values() if v.get("type", "file") == "file"]

        return self.call("list", folder, find)

    # -- blobs -------------------------------------------------------------------------

    def download_verified(
        self, path: str, sha256: str, dest: Path, expected_size: int | None = None
    ) -> int:
        """Stream an object into `dest` (atomically), checking its sha256 on the way.

        Raises CorruptBlob, leaving `dest` untouched, when the bytes do not match, or
        as soon as more than `expected_size` bytes arrive; returns the size downloaded.
        """

        def download() -> int:
            digest = hashlib.sha256()
            size = 0
            with atomic_writer(dest, mode=0o444) as out, self.fs.open(path, "rb") as src:
                while chunk := src.read(CHUNK):
                    digest.update(chunk)
                    size += len(chunk)
                    if expected_size is not None and size > expected_size:
                        raise _Mismatch(f"more than the {expected_size:,} bytes declared")
                    out.write(chunk)
                if digest.hexdigest() != sha256:
                    raise _Mismatch(digest.hexdigest())
            return size

        try:
            return self.call("download", path, download)
        except _Mismatch as exc:
            raise CorruptBlob(
                f"remote cache {self.label}: blob {sha256[:12]} is corrupt "
                f"({_mismatch_text(exc.actual)}); nothing was materialized",
                hint="delete the remote object (or run `imaginebuild gc --remote`) and rebuild",
            ) from None
        except OSError as exc:  # the local side: the temp file in the store
            raise StoreError(f"cannot write blob {sha256[:12]} to the local cache: {exc}") from exc

    def upload_file(self, src: Path, path: str) -> None:
        """Upload a local file; the object appears whole or not at all."""
        if self.is_local:
            self.call("upload", path, lambda: self._local_replace(path, src.read_bytes()))
        else:
            self.call("upload", path, lambda: self.fs.put_file(str(src), path))

    # -- local-filesystem backends (file://): rename and O_EXCL give the same guarantees

    def _local_replace(self, path: str, data: bytes) -> None:
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        with atomic_writer(target) as out:
            out.write(data)

    def _local_create(self, path: str, data: bytes) -> None:
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex}.tmp")
        tmp.write_bytes(data)
        try:
            os.link(tmp, target)  # atomic create-if-absent: FileExistsError when taken
        finally:
            tmp.unlink()

    # -- concurrency -------------------------------------------------------------------

    def run_bounded(self, fn: Callable[[T], R], items: Sequence[T]) -> list[R]:
        """`fn` over `items` on at most `jobs` threads; the first error cancels the rest."""
        if len(items) <= 1:
            return [fn(item) for item in items]
        with ThreadPoolExecutor(max_workers=min(self.jobs, len(items))) as pool:
            futures: list[Future[R]] = [pool.submit(fn, item) for item in items]
            done, _ = wait(futures, return_when=FIRST_EXCEPTION)
            failed = [f for f in futures if f in done and f.exception() is not None]
            if failed:
                for f in futures:
                    f.cancel()
                error = failed[0].exception()
                assert error is not None
                raise error
            return [f.result() for f in futures]


class ProgressCounter:
    """Thread-safe byte counter that forwards to a progress callback."""

    def __init__(self, total: int, progress: Progress | None) -> None:
        self.total = total
        self.done = 0
        self._progress = progress
        self._lock = threading.Lock()
        if progress is not None:
            progress(0, total)

    def add(self, count: int) -> None:
        """Count `count` more bytes as transferred."""
        with self._lock:
            self.done += count
            if self._progress is not None:
                self._progress(self.done, self.total)
