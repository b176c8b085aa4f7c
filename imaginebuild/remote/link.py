"""How a run uses the remote cache: every operation tolerates an unreachable remote.

The remote is opened on first use (fsspec loads only then). The first failure
that is the remote's (not a corrupt blob's) is reported once, and the run goes
on without the remote: a shared cache must never be why a build fails.

Before paying for a key, a run takes the remote's build lease on it; a machine
that finds the lease held waits for the holder's push and restores that instead
(`leasewait`: it sees the push within half a second, and its wait holds no thread).
"""

from __future__ import annotations

import contextlib
import os
import socket
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any

from imaginebuild.errors import CorruptBlob, StoreError, UsageError
from imaginebuild.model import Mediafile
from imaginebuild.store.cache import ActionEntry, Store
from imaginebuild.untrusted import printable

LEASE_TTL_S = 3600.0  # a build lease outlives any single call's deadline (and is capped there)


class BuiltElsewhere(Exception):
    """Another machine finished the key this run was waiting to build."""


class RemoteLink:
    """The run's view of the remote cache (None of it when none is configured)."""

    def __init__(
        self,
        mediafile: Mediafile,
        env: Mapping[str, str],
        store: Store,
        warn: Callable[[str], None],
        info: Callable[[str], None],
    ) -> None:
        self._mediafile = mediafile
        self._env = env
        self._store = store
        self._warn = warn
        self._info = info
        self._remote: Any = None  # RemoteCache, False when none is configured, None: unknown
        self._down = False
        # Keys whose remote entry proved bad this run (a corrupt blob, the wrong media):
        # neither restored nor waited for again; the rebuild's push replaces them.
        self._bad: set[str] = set()
        self._fetched: dict[str, tuple[Any, ...]] = {}

    @property
    def active(self) -> bool:
        """Whether a remote is configured and has not failed during this run."""
        configured = bool(self._env.get("IMAGINEBUILD_REMOTE") or self._mediafile.remote)
        return configured and not self._down

    def cache(self) -> Any:
        """The RemoteCache, or None when no remote is configured."""
        if self._remote is None:
            from imaginebuild.remote.cache import RemoteCache

            mediafile = self._mediafile
            self._remote = (
                RemoteCache.from_config(
                    mediafile.remote, mediafile.remote_readonly, self._env, warn=self._warn
                )
                or False
            )
        return self._remote or None

    def require(self, what: str) -> Any:
        """The RemoteCache for a command that cannot work without one."""
        remote = self.cache() if self.active else None
        if remote is None:
            raise UsageError(
                f"{what} needs a remote cache",
                hint="set `remote:` in the mediafile or IMAGINEBUILD_REMOTE",
            )
        return remote

    def failed(self, exc: StoreError) -> None:
        """Report a failure; the remote's own failures switch it off for the run."""
        if isinstance(exc, CorruptBlob):
            self._warn(str(exc))
            return
        if not self._down:
            self._down = True
            self._warn(f"{exc}; continuing without the remote cache")

    def get(self, key: str) -> ActionEntry | None:
        """The remote's entry for `key`, or None (also when the remote is unusable)."""
        if not self.active or key in self._bad:
            return None
        try:
            entry: ActionEntry | None = self.cache().get_action(key)
        except StoreError as exc:
            self.failed(exc)
            return None
        return entry

    async def get_async(self, key: str) -> ActionEntry | None:
        """`get` off the event loop."""
        if not self.active:
            return None
        import asyncio

        return await asyncio.to_thread(self.get, key)

    async def fetch_async(self, entry: ActionEntry) -> bool:
        """Bring an entry's blobs into the local store, verified; False if that failed."""
        import asyncio

        try:
            await asyncio.to_thread(self.cache().fetch, entry, self._store)
        except StoreError as exc:
            if isinstance(exc, CorruptBlob):
                self._bad.add(entry.key)
            self.failed(exc)
            return False
        self._fetched[entry.key] = entry.outputs
        return True

    def distrust(self, key: str, outputs: tuple[Any, ...]) -> None:
        """The outputs restored for `key` proved bad: if they came from the remote, its
        entry is neither restored nor waited for again in this run."""
        if self._fetched.get(key) == outputs:
            self._bad.add(key)

    async def push_async(self, entry: ActionEntry, no_push: bool) -> None:
        """Upload a new build unless --no-push or read-only; never fails the step."""
        if no_push or not self.active:
            return
        remote = self.cache()
        if remote is None or remote.readonly:
            return
        import asyncio

        try:
            await asyncio.to_thread(remote.push, entry, self._store)
        except StoreError as exc:
            self.failed(exc)

    @contextlib.asynccontextmanager
    async def lease(self, key: str, run_id: str, no_push: bool) -> AsyncIterator[None]:
        """Hold the build lease on `key` around a call; raises BuiltElsewhere when another
        machine's build of it appears meanwhile. An unusable remote only costs the lease."""
        remote = self.cache() if self.active else None
        if remote is None or remote.readonly or no_push or key in self._bad:
            yield  # (a bad entry of this key would otherwise pass for another's build)
            return
        import asyncio

        from imaginebuild.remote.leasewait import claim_or_wait

        owner = f"{socket.gethostname()}:{os.getpid()}:{run_id}"
        held = False
        try:
            holder = await asyncio.to_thread(remote.lease_holder, key)
            if holder is not None:
                self._info(
                    f"{printable(holder)} is building {key[:12]}; waiting for its push "
                    "(Ctrl-C stops waiting)"
                )
            # Cancelling the task (Ctrl-C, SIGTERM) ends the wait at once: it holds no thread.
            built = await claim_or_wait(remote, key, owner, ttl=LEASE_TTL_S, timeout=LEASE_TTL_S)
            if built is not None:
                raise BuiltElsewhere(key)
            held = True  # or the wait timed out: then releasing is a no-op
        except StoreError as exc:
            self.failed(exc)
        try:
            yield
        finally:
            if held:
                with contextlib.suppress(StoreError):
                    await asyncio.to_thread(remote.release_lease, key, owner)
