"""Orphans: outputs imaginebuild wrote for assets the mediafile no longer declares.

When an asset leaves the mediafile (removed or renamed), its lockfile entry is
pruned and its files would be forgotten. Before the entry goes, its outputs are
noted in `.imaginebuild/orphans.json` (path → the sha256 imaginebuild wrote there
and the asset's name), so `imaginebuild clean` can remove them later and `run`
can mention them.

A file is removed only when all of these hold, so a user's file is never touched:
the record (or the lockfile) names the path; no asset declares it as an output or
reads it as an input; it is a regular file, not a symlink; and its bytes still hash
to what imaginebuild wrote (a retouched file is kept and named). The record is
untrusted: an entry whose path leaves the project or whose hash is not a sha256 is
ignored.
"""

from __future__ import annotations

import contextlib
import enum
import json
import os
import stat
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from imaginebuild.atomic import atomic_write_bytes
from imaginebuild.store.hashing import sha256_file
from imaginebuild.untrusted import (
    LOCKFILE_CAP,
    Untrusted,
    confine,
    is_sha256,
    load_json,
    read_capped,
    relative_path,
)

RECORD_VERSION = 1


@dataclass(frozen=True)
class Orphan:
    """An output file of an asset the mediafile no longer declares."""

    path: str  # project-relative POSIX
    sha256: str  # what imaginebuild wrote there
    asset: str  # the asset that wrote it


class Verdict(str, enum.Enum):
    """What `clean` does with one orphan."""

    REMOVE = "remove"  # bytes are what imaginebuild wrote
    CHANGED = "changed"  # edited since: kept
    GONE = "gone"  # no longer on disk: forgotten


@dataclass(frozen=True)
class Finding:
    """One orphan and what clean does with it."""

    orphan: Orphan
    verdict: Verdict
    size: int = 0


class OrphanRecord:
    """`.imaginebuild/orphans.json` (`StateLayout.orphans`): the outputs of pruned
    lockfile entries."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def read(self) -> dict[str, Orphan]:
        """The recorded orphans by path (a missing or unreadable record is empty)."""
        try:
            data = load_json(read_capped(self.path, LOCKFILE_CAP))
        except (OSError, Untrusted):
            return {}
        rows = data.get("orphans") if isinstance(data, dict) else None
        found: dict[str, Orphan] = {}
        for row in rows if isinstance(rows, list) else []:
            if not isinstance(row, dict):
                continue
            path, sha, asset = relative_path(row.get("path")), row.get("sha256"), row.get("asset")
            if path is not None and is_sha256(sha) and isinstance(asset, str):
                found[path] = Orphan(path, str(sha), asset)
        return found

    def write(self, orphans: Mapping[str, Orphan]) -> None:
        """Replace the record (atomically; an empty record removes the file)."""
        if not orphans:
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()
            return
        rows = [
            {"path": o.path, "sha256": o.sha256, "asset": o.asset}
            for o in sorted(orphans.values(), key=lambda o: o.path)
        ]
        body = json.dumps({"version": RECORD_VERSION, "orphans": rows}, indent=2) + "\n"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(self.path, body.encode())

    def add(self, orphans: Iterable[Orphan]) -> None:
        """Note more orphans (a later note for the same path wins)."""
        found = self.read()
        found.update((o.path, o) for o in orphans)
        self.write(found)


def present(root: Path, orphans: Iterable[Orphan], in_use: set[str]) -> list[Orphan]:
    """The orphans still on disk and in no asset's use (cheap: no hashing)."""
    return [o for o in orphans if o.path not in in_use and _regular_file(root, o.path) is not None]


def judge(root: Path, orphans: Iterable[Orphan], in_use: set[str]) -> list[Finding]:
    """What clean does with each orphan not in use (`in_use`: paths assets declare as
    outputs or read as inputs): remove it only if its bytes are what imaginebuild wrote."""
    findings = []
    for orphan in sorted(orphans, key=lambda o: o.path):
        if orphan.path in in_use:
            continue
        size = _regular_file(root, orphan.path)
        if size is None:
            findings.append(Finding(orphan, Verdict.GONE))
            continue
        try:
            same = sha256_file(root / orphan.path) == orphan.sha256
        except OSError:
            same = False
        findings.append(Finding(orphan, Verdict.REMOVE if same else Verdict.CHANGED, size))
    return findings


def remove(root: Path, findings: Iterable[Finding]) -> list[Finding]:
    """Delete the files judged removable; returns those actually removed."""
    removed = []
    for finding in findings:
        if finding.verdict is Verdict.REMOVE:
            try:
                (root / finding.orphan.path).unlink()
            except OSError:
                continue
            removed.append(finding)
    return removed


def _regular_file(root: Path, rel: str) -> int | None:
    """The size of `root/rel` if it is a regular file, not a symlink, inside `root`
    (a symlinked folder could lead out of the project), else None."""
    try:
        st = os.lstat(confine(root, rel))
    except (OSError, Untrusted):
        return None
    return st.st_size if stat.S_ISREG(st.st_mode) else None
