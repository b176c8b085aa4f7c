"""Lockfiles in git history: what every committed version of a lockfile references.

`gc` keeps what any version of `mediafile.lock` reachable from a local branch,
a tag, HEAD or the index names, so checking out an older commit and running
`imaginebuild checkout` never meets a blob gc dropped. The versions are read with
the `git` command (no library): one `rev-list`, one `cat-file --batch-check` to
find each commit's version of the file, one `cat-file --batch` to read the
distinct versions.

Every version is untrusted input: it may predate this imaginebuild or have been
edited by hand. A version that is not a JSON object is skipped; a key or hash
that is not 64 lowercase hex digits is skipped; each skip is reported through
`warn`, never fatal (a skipped name only means gc may drop something).
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from imaginebuild.errors import StoreError
from imaginebuild.untrusted import LOCKFILE_CAP, Untrusted, is_sha256, load_json

_GIT_TIMEOUT = 300.0  # seconds; a history of a million commits still reads in far less


@dataclass(frozen=True)
class References:
    """Action keys and blob hashes something still needs."""

    keys: frozenset[str] = frozenset()
    blobs: frozenset[str] = frozenset()

    def __or__(self, other: References) -> References:
        return References(self.keys | other.keys, self.blobs | other.blobs)


@dataclass(frozen=True)
class History:
    """What the committed versions of one lockfile reference."""

    versions: int  # distinct versions of the file read
    references: References


def lockfile_history(lockfile: Path, warn: Callable[[str], None]) -> History | None:
    """Every version of `lockfile` reachable from local branches, tags, HEAD and the index,
    or None when the lockfile's folder is not in a git work tree.

    Raises StoreError when it is in a work tree but git cannot answer (gc must not
    guess then: dropping what history needs is the failure this exists to prevent).
    """
    folder = lockfile.parent
    git = shutil.which("git")
    if git is None:
        if _under_git_folder(folder):
            raise StoreError(
                f"{folder} is in a git work tree but the `git` command is not installed",
                hint="install git, or pass --only-current to keep only the current lockfile's "
                "entries",
            )
        return None
    inside = _run(git, folder, ["rev-parse", "--is-inside-work-tree"])
    # A `.git` git cannot read (a broken HEAD, a moved objects folder) is not "no repository":
    # its history is unknown, so gc stops with git's reason below rather than drop what it names.
    not_a_repository = inside.returncode != 0 and b"not a git repository" in inside.stderr
    if not_a_repository and not _under_git_folder(folder):
        return None
    if inside.returncode == 0 and inside.stdout.strip() == b"false":
        return None  # inside a .git folder itself
    _check(inside, "rev-parse")
    top = Path(_text(_git(git, folder, ["rev-parse", "--show-toplevel"])).strip())
    rel = lockfile.resolve().relative_to(top.resolve()).as_posix()
    blob_ids = _version_ids(git, folder, rel, warn)
    references = References()
    versions = 0
    for label, body in _read_blobs(git, folder, blob_ids):
        versions += 1
        references |= parse_references(body, f"{rel} ({label})", warn)
    return History(versions, references)


def _under_git_folder(folder: Path) -> bool:
    """Whether `folder` or a parent holds a `.git` (a folder, or a file for a linked tree)."""
    return any((p / ".git").exists() for p in (folder.resolve(), *folder.resolve().parents))


def parse_references(body: bytes, name: str, warn: Callable[[str], None]) -> References:
    """The action keys and blob hashes one lockfile version names, read leniently:
    malformed parts are skipped with a `warn` naming `name`, never trusted."""
    try:
        data = load_json(body)
    except Untrusted:
        warn(f"{name}: not a JSON lockfile; skipped")
        return References()
    assets = data.get("assets") if isinstance(data, dict) else None
    if not isinstance(assets, dict):
        warn(f"{name}: no 'assets' object; skipped")
        return References()
    keys: set[str] = set()
    blobs: set[str] = set()
    bad: list[str] = []
    for asset, raw in assets.items():
        entry = raw if isinstance(raw, dict) else {}
        for where, value in _named_hashes(str(asset), entry):
            if not isinstance(value, str) or not is_sha256(value):
                bad.append(where)
            elif where.endswith(".key"):
                keys.add(value)
            else:
                blobs.add(value)
    if bad:
        more = f" and {len(bad) - 3} more" if len(bad) > 3 else ""
        listed = ", ".join(bad[:3])
        warn(f"{name}: {listed}{more}: not a sha256 (64 lowercase hex digits); skipped")
    return References(frozenset(keys), frozenset(blobs))


def _named_hashes(asset: str, entry: dict[str, Any]) -> Iterator[tuple[str, object]]:
    """(where, value) for the key, each output's hash and each input's hash of one entry."""
    yield f"assets.{asset}.key", entry.get("key")
    outputs = entry.get("outputs")
    for i, out in enumerate(outputs if isinstance(outputs, list) else []):
        yield (
            f"assets.{asset}.outputs[{i}].sha256",
            out.get("sha256") if isinstance(out, dict) else None,
        )
    fields = entry.get("fields")
    inputs = fields.get("inputs") if isinstance(fields, dict) else None
    for i, item in enumerate(inputs if isinstance(inputs, list) else []):
        # An input's hash names a blob only for URL inputs and asset inputs; a local file's
        # hash names nothing in the cache, and keeping a name that matches nothing is free.
        if isinstance(item, dict) and "sha256" in item:
            yield f"assets.{asset}.fields.inputs[{i}].sha256", item.get("sha256")


def _version_ids(
    git: str, folder: Path, rel: str, warn: Callable[[str], None]
) -> list[tuple[str, str]]:
    """(label, git blob id) of each distinct version of `rel`: per commit and in the index.
    A version larger than any lockfile imaginebuild reads is skipped with a `warn`."""
    has_head = _run(git, folder, ["rev-parse", "--verify", "-q", "HEAD"]).returncode == 0
    revs = ["--branches", "--tags", *(["HEAD"] if has_head else [])]
    commits = _text(_git(git, folder, ["rev-list", *revs])).split()
    names = [f"{c}:{rel}" for c in commits] + [f":{rel}"]  # ":path" is the index's version
    answer = _text(_git(git, folder, ["cat-file", "--batch-check"], "\n".join(names) + "\n"))
    seen: dict[str, str] = {}
    for name, line in zip(names, answer.splitlines(), strict=False):
        fields = line.split()
        if len(fields) == 3 and fields[1] == "blob" and fields[0] not in seen:
            label = "the index" if name.startswith(":") else f"commit {name[:12]}"
            if int(fields[2]) > LOCKFILE_CAP:
                warn(f"{rel} ({label}): {int(fields[2]):,} bytes, larger than a lockfile; skipped")
                continue
            seen[fields[0]] = label
    return [(label, blob) for blob, label in seen.items()]


def _read_blobs(
    git: str, folder: Path, ids: Iterable[tuple[str, str]]
) -> Iterator[tuple[str, bytes]]:
    """(label, content) of each git blob, read with one `cat-file --batch`."""
    pairs = list(ids)
    if not pairs:
        return
    out = _git(git, folder, ["cat-file", "--batch"], "".join(f"{b}\n" for _, b in pairs))
    pos = 0
    for label, _ in pairs:
        header_end = out.index(b"\n", pos)
        size = int(out[pos:header_end].split()[2])
        start = header_end + 1
        yield label, out[start : start + size]
        pos = start + size + 1  # the content is followed by one newline


def _git(git: str, folder: Path, argv: list[str], stdin: str | None = None) -> bytes:
    """Run one git command in `folder` and return its stdout; StoreError if it fails."""
    return _check(_run(git, folder, argv, stdin), argv[0])


def _run(
    git: str, folder: Path, argv: list[str], stdin: str | None = None
) -> subprocess.CompletedProcess[bytes]:
    try:
        return subprocess.run(
            [git, "-C", str(folder), *argv],
            input=None if stdin is None else stdin.encode(),
            capture_output=True,
            timeout=_GIT_TIMEOUT,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise StoreError(
            f"cannot read the lockfile's git history: {exc}",
            hint="pass --only-current to keep only the current lockfile's entries",
        ) from exc


def _check(done: subprocess.CompletedProcess[bytes], command: str) -> bytes:
    if done.returncode != 0:
        detail = done.stderr.decode("utf-8", "replace").strip().splitlines()
        raise StoreError(
            f"cannot read the lockfile's git history: git {command}: "
            f"{detail[-1] if detail else f'exit {done.returncode}'}",
            hint="pass --only-current to keep only the current lockfile's entries",
        )
    return done.stdout


def _text(out: bytes) -> str:
    return out.decode("utf-8", "replace")
