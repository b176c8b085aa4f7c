"""The project's on-disk state, as one object: lock entries, stat cache, failures, lock.

`ProjectState` owns the `.imaginebuild/` folder of one project (its paths come
from `StateLayout`) and the lockfile's entries as a run sees them: read once,
mutated in place by the run, written through `lockfile`. A run holds the project
lock (`exclusive()`) while it changes any of it.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from imaginebuild.layout import StateLayout
from imaginebuild.store.failures import FailureLog
from imaginebuild.store.hashing import StatCache
from imaginebuild.store.journal import JobRecord, Journal
from imaginebuild.store.lockfile import LockEntry, read_lockfile
from imaginebuild.store.projectlock import ProjectLock


class ProjectState:
    """The state folder and lockfile of the project in `root`; `warn` hears recoverable
    problems (a lockfile entry that had to be dropped)."""

    def __init__(self, root: Path, lockfile_path: Path, warn: Callable[[str], None]) -> None:
        self.layout = StateLayout(root)
        self.lockfile_path = lockfile_path
        self.failures = FailureLog(self.layout.failures)
        self._warn = warn
        self._lock: dict[str, LockEntry] | None = None
        self._stat: StatCache | None = None

    @property
    def folder(self) -> Path:
        """`<project>/.imaginebuild`."""
        return self.layout.folder

    def lock_entries(self) -> dict[str, LockEntry]:
        """The lockfile's entries (read once; a run changes this dict in place)."""
        if self._lock is None:
            self._lock = read_lockfile(self.lockfile_path, self._warn)
        return self._lock

    def forget_lock_entries(self) -> None:
        """Read the lockfile again on next use (another process may have written it)."""
        self._lock = None

    def stat_cache(self) -> StatCache:
        """The project's stat cache (opened on first use)."""
        if self._stat is None:
            self._stat = StatCache(self.layout.stat_cache)
        return self._stat

    def save_stat_cache(self) -> None:
        """Write the stat cache if it was opened and the state folder exists."""
        if self._stat is not None and self.folder.is_dir():
            self._stat.save()

    def journal_record(self, key: str) -> JobRecord | None:
        """The provider job journaled for `key` (submitted, not yet collected), if any."""
        if not self.layout.journal.is_dir():
            return None
        return Journal(self.layout.journal).get(key)

    def journaled_keys(self) -> set[str]:
        """The keys of provider jobs submitted (paid) but not finished: a run resumes them."""
        if not self.layout.journal.is_dir():
            return set()
        return {record.key for record in Journal(self.layout.journal).records()}

    def exclusive(self, on_wait: Callable[[str], None]) -> ProjectLock:
        """The project lock; `on_wait(holder)` is called if another process holds it."""
        return ProjectLock(self.layout.lock, on_wait)
