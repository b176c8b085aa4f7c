"""The settled snapshot: the last up-to-date verdict and what it rested on.

When `run` or `status` finds every selected asset up to date, the project
writes `.imaginebuild/settled-<mediafile name>.json`: a fingerprint of
everything besides files that decides the verdict (this version, the
mediafile's path and bytes, the input policy, the targets, a provider
override, the IMAGINEBUILD_* environment), the sha256 of every file the
verdict read (the lockfile, each local input, each output, each URL input's
blob in the cache) and the selected assets' rows.

The next `run` or `status` with the same fingerprint checks those files
through the stat cache: when every one still hashes to what the snapshot
recorded (an unchanged stat tuple is trusted unless it is racy, exactly as
for any other read), the verdict stands. That answer needs no YAML parse, no
schema, no lockfile read and no cache, so a project of 10,000 assets with
nothing to do is told so in a few dozen milliseconds. Any change to one of
those files, to the mediafile or to the fingerprint's other parts is a miss,
and the full decision runs as before; a snapshot is only ever a shortcut to
the answer the full decision gave.

This module imports only the standard library and `hashing`, so the check
itself is cheap to load.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import stat
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from imaginebuild.atomic import atomic_write_bytes
from imaginebuild.errors import UsageError
from imaginebuild.layout import StateLayout, absolute, text_digest
from imaginebuild.store.hashing import StatCache
from imaginebuild.untrusted import (
    LOCKFILE_CAP,
    check_state_dir,
    is_sha256,
    load_json,
    read_capped,
)
from imaginebuild.version import __version__

if TYPE_CHECKING:
    from imaginebuild.model import InputPolicy

SNAPSHOT_VERSION = 2  # 2: an asset row may carry its matrix template
SNAPSHOT_CAP = LOCKFILE_CAP  # a snapshot lists about what a lockfile does


class SettledAsset(NamedTuple):
    """One up-to-date asset as a snapshot remembers it."""

    name: str
    kind: str
    key: str
    outputs: tuple[str, ...]
    template: str | None = None  # the matrix template it was expanded from


def snapshot_path(mediafile: Path) -> Path:
    """Where the snapshot of `mediafile` lives (one per mediafile of a project folder)."""
    return StateLayout.of_mediafile(mediafile).settled(mediafile.name)


def stat_cache_path(mediafile: Path) -> Path:
    """The project's stat cache file (shared with the full decision)."""
    return StateLayout.of_mediafile(mediafile).stat_cache


def read_text(mediafile: Path) -> str | None:
    """The mediafile's text as the loader decodes it, or None (the full path says why)."""
    try:
        return mediafile.read_bytes().decode("utf-8-sig")
    except (OSError, UnicodeDecodeError):
        return None


def fingerprint(
    mediafile: Path,
    source_digest: str,
    *,
    policy: InputPolicy,
    targets: Sequence[str],
    provider: str | None,
    env: Mapping[str, str],
) -> str:
    """What besides files decides the verdict, as one digest.

    `mediafile` is absolute; `policy` is what the user allows beyond the
    project (its folders resolved). Every IMAGINEBUILD_* variable takes part, which is more than the
    verdict needs (a remote's setting cannot make an asset stale) but keeps
    the rule simple: a changed setting is a miss, never a wrong answer.
    """
    settings: dict[str, object] = {
        "version": [SNAPSHOT_VERSION, __version__],
        "mediafile": str(mediafile),
        "allow_read": sorted(str(p) for p in policy.allow_read),
        "allow_http_loopback": policy.allow_http_loopback,
        "targets": list(targets),
        "provider": provider,
        "env": sorted(
            (k, v) for k, v in env.items() if k.startswith("IMAGINEBUILD_") or k == "HOME"
        ),
    }
    settings["source"] = source_digest
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()


def write(
    mediafile: Path,
    stamp: str,
    files: Mapping[Path, str],
    assets: Sequence[SettledAsset],
) -> None:
    """Record a verdict: `stamp` is its fingerprint, `files` each path read with its sha256.

    Best effort, written atomically: a snapshot that cannot be written only
    costs the next command the full decision.
    """
    path = snapshot_path(mediafile)
    if not path.parent.is_dir():
        return
    data = {
        "version": SNAPSHOT_VERSION,
        "fingerprint": stamp,
        "files": sorted([str(p), sha] for p, sha in files.items()),
        "assets": [
            [a.name, a.kind, a.key, list(a.outputs)] + ([a.template] if a.template else [])
            for a in assets
        ],
    }
    with contextlib.suppress(OSError):
        atomic_write_bytes(path, json.dumps(data, separators=(",", ":")).encode())


def discard(mediafile: Path) -> None:
    """Forget the verdict (a run is about to change what it rested on)."""
    with contextlib.suppress(OSError):
        snapshot_path(mediafile).unlink()


def check(mediafile: Path, stamp: str, stat_cache: StatCache) -> tuple[SettledAsset, ...] | None:
    """The remembered up-to-date assets if the verdict for `stamp` still stands, else None."""
    try:
        data: Any = load_json(read_capped(snapshot_path(mediafile), SNAPSHOT_CAP))
        if data["version"] != SNAPSHOT_VERSION or data["fingerprint"] != stamp:
            return None
        for path, sha in data["files"]:
            # Only regular files at absolute paths: a device or a FIFO would never end.
            if not (isinstance(path, str) and Path(path).is_absolute() and is_sha256(sha)):
                return None
            if not stat.S_ISREG(Path(path).stat().st_mode) or stat_cache.sha256(path) != sha:
                return None
        return tuple(
            SettledAsset(
                str(name), str(kind), str(key), tuple(map(str, outputs)), str(t[0]) if t else None
            )
            for name, kind, key, outputs, *t in data["assets"]
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None


def lookup(
    mediafile: Path,
    *,
    allow_read: Sequence[str],
    targets: Sequence[str],
    provider: str | None,
    env: Mapping[str, str],
) -> tuple[SettledAsset, ...] | None:
    """The fast answer for a command line: the up-to-date assets if nothing changed.

    `allow_read` holds the folders given on the command line (the environment's
    are read from `env`). None means "decide in full"; the caller then loads
    the project as usual.
    """
    from imaginebuild.model import InputPolicy

    text = read_text(mediafile)
    if text is None:
        return None
    path = absolute(mediafile)
    policy = InputPolicy.from_env(env, allow_read)
    stamp = fingerprint(
        path,
        text_digest(text),
        policy=policy,
        targets=targets,
        provider=provider,
        env=env,
    )
    try:
        check_state_dir(StateLayout.of_mediafile(path).folder)
    except UsageError:
        return None  # the full path refuses it with a message
    if not snapshot_path(path).is_file():
        return None
    cache = StatCache(stat_cache_path(path))
    found = check(path, stamp, cache)
    cache.save()
    return found
