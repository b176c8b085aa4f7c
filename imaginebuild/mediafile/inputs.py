"""What one `inputs:` entry of a mediafile refers to: another asset's output (`NAME` or
`NAME[i]`), an https URL, or a file inside the project (or in an --allow-read folder);
or why it is not acceptable, as a `Problem` with the next step."""

from __future__ import annotations

import re
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path, PurePosixPath, PureWindowsPath
from urllib.parse import urlsplit

from imaginebuild.errors import did_you_mean
from imaginebuild.model import PROJECT_ONLY, InputPolicy, InputRef, RefKind
from imaginebuild.untrusted import Untrusted, confine, relative_path
from imaginebuild.urls import is_loopback_host

ASSET_REF = re.compile(r"^([A-Za-z_][A-Za-z0-9_-]*)(?:\[(\d+)\])?$")
_BAD_INDEX = re.compile(r"^([A-Za-z_][A-Za-z0-9_-]*)\[.*\]$")  # looks like NAME[i] but is not


@dataclass(frozen=True)
class Problem:
    """Why an input reference or path is not acceptable, with the next step."""

    message: str
    hint: str | None = None


def resolve_input(
    raw: str, names: Collection[str], root: Path, policy: InputPolicy = PROJECT_ONLY
) -> InputRef | Problem:
    """Classify one `inputs:` entry: another asset's output, an https URL or a project file
    (or a file in a folder the user allowed with --allow-read).

    `names` is asked only for membership (pass a mapping or set: a file of 10,000
    assets resolves 10,000 inputs)."""
    if "://" in raw:
        return _url_ref(raw, policy)
    bad_index = None if ASSET_REF.match(raw) else _BAD_INDEX.match(raw)
    if bad_index is not None:
        return Problem(
            f"'{raw}' is not a valid output index",
            f"write {bad_index.group(1)}[0], {bad_index.group(1)}[1], … (0-based)",
        )
    match = ASSET_REF.match(raw)
    if match is not None:
        name, index = match.group(1), match.group(2)
        if name in names:
            return InputRef(
                raw, RefKind.ASSET, asset=name, index=None if index is None else int(index)
            )
        return Problem(
            f"unknown asset '{name}'{did_you_mean(name, names)}",
            None if index is not None else "a local file needs its extension, e.g. art/logo.png",
        )
    relative = project_path(raw, root)
    if relative is None:
        allowed = _allowed_outside(raw, root, policy)
        return _outside(raw) if allowed is None else InputRef(raw, RefKind.FILE, path=allowed)
    return InputRef(raw, RefKind.FILE, path=relative)


def _allowed_outside(raw: str, root: Path, policy: InputPolicy) -> str | None:
    """The resolved absolute path of an outside file inside an --allow-read folder, or None."""
    if not policy.allow_read or not raw or "\0" in raw:
        return None
    try:
        real = (root / raw).resolve()
    except (OSError, RuntimeError, ValueError):
        return None
    for folder in policy.allow_read:
        if real == folder or folder in real.parents:
            return real.as_posix()
    return None


def _url_ref(raw: str, policy: InputPolicy) -> InputRef | Problem:
    try:
        parts = urlsplit(raw)
    except ValueError:
        return Problem(f"'{raw}' is not a valid URL")
    loopback = parts.scheme.lower() == "http" and is_loopback_host(parts.hostname or "")
    if loopback and policy.allow_http_loopback:
        return InputRef(raw, RefKind.URL, url=raw)
    if parts.scheme.lower() != "https":
        return Problem(
            f"only https:// URLs are allowed as inputs, got {parts.scheme or 'no'}://",
            "for a local file, copy it into the project and give its relative path",
        )
    if not parts.netloc:
        return Problem(f"'{raw}' has no host")
    return InputRef(raw, RefKind.URL, url=raw)


def _outside(raw: str) -> Problem:
    what = "an absolute path" if _is_absolute(raw) else "a path outside the project"
    return Problem(
        f"input '{raw}' is {what}",
        "copy the file into the project folder and give its path relative to the mediafile, "
        "or allow its folder with --allow-read DIR",
    )


def _is_absolute(text: str) -> bool:
    return PurePosixPath(text).is_absolute() or PureWindowsPath(text).is_absolute()


def project_path(raw: str, root: Path) -> str | None:
    """`raw` as a normalized project-relative POSIX path, or None if it leaves the project.

    Leaving means an absolute path, a `..` escape, or a symlink on the way that
    resolves outside the project folder.
    """
    normal = relative_path(raw)
    if normal is None:
        return None
    try:
        confine(root, normal)  # the one confinement check, symlinks included
    except Untrusted:
        return None
    return normal
