"""The project lock: one writing imaginebuild process per project at a time.

`run`, `checkout` and `gc` hold an exclusive advisory lock on
`.imaginebuild/lock`; a second process waits for it (saying so once) rather
than interleave writes to the lockfile, the ledger or the outputs. The lock
is released by the kernel when a process dies, so a crash never leaves it held.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Callable
from pathlib import Path
from types import TracebackType


class ProjectLock:
    """Context manager holding the lock file at `path` (`StateLayout.lock`); `on_wait(holder)`
    is called if it must wait."""

    def __init__(self, path: Path, on_wait: Callable[[str], None]) -> None:
        self._path = path
        self._on_wait = on_wait
        self._fd: int | None = None

    def __enter__(self) -> ProjectLock:
        self._path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self._path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "unknown"
            self._on_wait(f"pid {holder}")
            fcntl.flock(fd, fcntl.LOCK_EX)
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        self._fd = fd
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None
