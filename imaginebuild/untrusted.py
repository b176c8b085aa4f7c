"""Checks for data imaginebuild reads but did not write in this process.

The trust model. The mediafile is the user's own instruction, checked by the
validator; everything else read from disk or a remote is untrusted until it
passes one of these checks: `mediafile.lock` (it arrives in pull requests), the
local cache (`IMAGINEBUILD_CACHE_DIR` may be shared), the remote cache and its
leases, the shared-cache project registry, and the state folder's files (ledger,
journal, failure log, settled snapshot, stat cache). Such data may make a build
slower or rebuild an asset; it may never make imaginebuild read or write a file
outside the project and its cache, serve bytes of the wrong kind, crash, hang,
or take unbounded memory.

- `is_sha256` / `sha256_name`: a hash is 64 lowercase hex digits before it names
  a file, an object or a cache entry.
- `confine`: the one place a project-relative path from any source becomes a
  filesystem path; `..`, absolute paths, backslashes, NUL and symlinks that
  lead out of the root are refused.
- `check_state_dir`: a state folder imaginebuild writes into must be a real
  folder of the project, not a link elsewhere.
- `media_matches` / `check_media`: the first bytes of a file are the media type
  its output path announces.
- `read_capped`: a file read whole is a regular file no larger than a cap.
- `TransferPace`: a download from an untrusted server ends by a deadline and
  keeps a minimum rate.
- `finite_decimal`, `check_api_key`, `printable`: numbers, secrets and text for
  humans.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import posixpath
import re
import stat
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any

from imaginebuild.errors import CorruptBlob, EnvironmentFailure, InputError, UsageError
from imaginebuild.mediaprobe import media_type_for, sniff

_SHA256 = re.compile(r"[0-9a-f]{64}")

# The largest JSON document read whole from a cache, registry or remote entry. An
# action entry with every take of a key is a few kilobytes; a lockfile of 10,000
# assets is about 15 MB.
ENTRY_CAP = 4 << 20
LOCKFILE_CAP = 256 << 20


class Untrusted(ValueError):
    """Untrusted data failed a check; the message names the problem, never a secret."""


def is_sha256(value: object) -> bool:
    """Whether `value` is a sha256 in the one spelling imaginebuild writes: 64 lowercase hex."""
    return isinstance(value, str) and _SHA256.fullmatch(value) is not None


def sha256_name(value: object, what: str = "hash") -> str:
    """`value` if it is a well-formed sha256, else raise Untrusted (showing it escaped)."""
    if not is_sha256(value):
        raise Untrusted(f"not a valid {what}: {shown(value)}")
    assert isinstance(value, str)
    return value


def shown(value: object, limit: int = 80) -> str:
    """A short, inert rendering of an untrusted value for a message."""
    text = value if isinstance(value, str) else repr(value)
    return repr(printable(text[:limit]) + ("…" if len(text) > limit else ""))


def relative_path(raw: object) -> str | None:
    """`raw` as a normalized relative POSIX path that cannot climb out, or None."""
    if not isinstance(raw, str) or not raw or "\\" in raw or "\0" in raw:
        return None
    if PurePosixPath(raw).is_absolute() or PureWindowsPath(raw).is_absolute():
        return None
    if unsafe_characters(raw):
        return None
    normal = posixpath.normpath(raw)
    if normal in (".", "..") or normal.startswith("../"):
        return None
    return normal


def confine(root: Path, raw: object, error: type[Exception] = Untrusted) -> Path:
    """The path `raw` names under `root`; raise `error` if it leads outside `root`.

    Outside means absolute, a `..` escape, a backslash or NUL, a control or bidi
    character, or a symlink on the way that resolves out of `root`.
    """
    normal = relative_path(raw)
    if normal is not None:
        with contextlib.suppress(ValueError, OSError, RuntimeError):
            (root / normal).resolve().relative_to(root.resolve())
            return root / normal
    raise error(f"path {shown(raw)} leaves {root.name or root}; refused")


def check_state_dir(folder: Path) -> None:
    """Raise UsageError if the state folder is a symlink or not a folder (missing is fine):
    through a link, the ledger, journal and cache would be written outside the project."""
    try:
        st = os.lstat(folder)
    except OSError:
        return  # missing (made on first write) or unreadable (the first use names it)
    if stat.S_ISLNK(st.st_mode) or not stat.S_ISDIR(st.st_mode):
        what = "a symlink" if stat.S_ISLNK(st.st_mode) else "not a folder"
        raise UsageError(
            f"{folder} is {what}; imaginebuild keeps its state only in a real folder "
            "inside the project",
            hint=f"remove {folder.name} (it is rebuilt as needed) and run again",
        )


def media_matches(path: Path, output: str) -> bool:
    """Whether the first bytes of `path` are the media type the output path `output`
    announces by its suffix (True for a suffix that announces none; False if unreadable)."""
    wanted = media_type_for(Path(output))
    if wanted is None:
        return True
    try:
        with path.open("rb") as handle:
            head = handle.read(32)
    except OSError:
        return False
    return sniff(head) == wanted


def wrong_media(output: str, sha256: str) -> CorruptBlob:
    """The error for a blob that does not hold the media its output path announces."""
    return CorruptBlob(
        f"{printable(output)}: blob {sha256[:12]} does not hold the media type its "
        "name announces; nothing written"
    )


def read_capped(path: Path, cap: int) -> bytes:
    """The bytes of a regular file no larger than `cap`; raise Untrusted otherwise.

    OSError (missing, unreadable) passes through for the caller to name.
    """
    # O_NONBLOCK: opening a FIFO planted where a file should be must not wait for a writer.
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    with os.fdopen(fd, "rb") as handle:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise Untrusted(f"{path} is not a regular file")
        if st.st_size > cap:
            raise Untrusted(f"{path} is {st.st_size:,} bytes, more than the {cap:,} allowed")
        # read(n) allocates n bytes up front: ask for what the file held when opened, not
        # the cap. What an append adds meanwhile is left for the next read.
        return handle.read(st.st_size)


def load_json(data: str | bytes) -> object:
    """Parse untrusted JSON; any failure (bad text, bad UTF-8, nesting too deep) is Untrusted."""
    try:
        return json.loads(data)
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
        raise Untrusted(f"not valid JSON ({type(exc).__name__}: {str(exc)[:120]})") from exc


@dataclass(frozen=True)
class TransferPace:
    """How slow a download from an untrusted server may be: a total deadline, and after
    a grace period a minimum average rate. A slow-loris server (a byte every few
    seconds, never done) is cut off, however alive it looks."""

    deadline_s: float
    min_bytes_per_s: float = 8 * 1024
    grace_s: float = 10.0

    def problem(self, elapsed: float, received: int) -> str | None:
        """Why a transfer that has `received` bytes after `elapsed` seconds must stop."""
        if elapsed > self.deadline_s:
            return f"took longer than {self.deadline_s:.0f} s"
        if elapsed > self.grace_s and received < self.min_bytes_per_s * elapsed:
            rate = self.min_bytes_per_s / 1024
            return f"slower than {rate:.0f} KiB/s ({received:,} bytes in {elapsed:.0f} s)"
        return None


# What the API accepts as an input (docs/xai-api.md, "Input limits"): images up to
# 10 MiB; input videos up to 50 MB (third-party figure, the largest seen).
INPUT_CAPS = {"image": 10 * 1024 * 1024, "video": 50 * 1000 * 1000}


def input_file_problem(path: Path) -> str | None:
    """Why a local input file cannot be sent to the API, or None: larger than the API
    takes, or its first bytes are not the media type its name announces."""
    wanted = media_type_for(path)
    if wanted is None:
        return None
    try:
        size = path.stat().st_size
        with path.open("rb") as handle:
            head = handle.read(32)
    except OSError as exc:
        return f"cannot be read ({exc.strerror})"
    cap = INPUT_CAPS["video" if wanted.startswith("video/") else "image"]
    if size > cap:
        return f"is {size:,} bytes; the API takes inputs of at most {cap:,}"
    found = sniff(head)
    if found != wanted:
        return f"does not hold {wanted}" + (f" (it holds {found})" if found else "")
    return None


def check_inputs_for_api(asset: str, inputs: Iterable[Any]) -> None:
    """Raise InputError for the first local input file (`.path` of each) the API would
    refuse or that is not what its name says: nothing is uploaded or paid for it."""
    for item in inputs:
        problem = input_file_problem(item.path)
        if problem:
            raise InputError(
                f"{asset}: input {printable(item.path.name)} {problem}",
                hint="use a real PNG, JPEG or WebP image of at most 10 MiB, or an MP4",
            )


_MAX_DIGITS = 12  # below 10**12: adjusted() reads it without the context's limits


def finite_decimal(value: object) -> Decimal | None:
    """`value` (a number or its text) as a finite Decimal of sane magnitude, else None."""
    if isinstance(value, bool) or not isinstance(value, (str, int, float, Decimal)):
        return None
    if isinstance(value, str) and len(value) > 64:
        return None
    try:
        number = Decimal(str(value))
    except (InvalidOperation, ValueError):
        return None
    if not number.is_finite() or (number and number.adjusted() >= _MAX_DIGITS):
        return None
    return number


def check_api_key(key: str, name: str = "XAI_API_KEY") -> None:
    """Raise Untrusted if a key cannot be sent in an HTTP header; the message never shows it."""
    if any(c in key for c in "\r\n\0"):
        raise Untrusted(f"{name} contains a line break or NUL; set it to the key alone")
    if not key.isascii() or not key.isprintable():
        raise Untrusted(
            f"{name} contains a non-ASCII or control character; set it to the key alone"
        )
    if any(c.isspace() for c in key):
        raise Untrusted(f"{name} contains whitespace; set it to the key alone")


# Bidi embeddings, overrides, isolates and marks: they reorder how text displays.
_BIDI = frozenset("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def unsafe_characters(text: str) -> list[str]:
    """The control, bidi and zero-width format characters in `text` (each once, in order)."""
    found: list[str] = []
    for c in text:
        if (c in _BIDI or unicodedata.category(c) in ("Cc", "Cf")) and c not in found:
            found.append(c)
    return found


_SCRIPTS = ("LATIN", "CYRILLIC", "GREEK", "ARMENIAN", "CHEROKEE")


def spoofing_problem(path: str) -> str | None:
    """Why `path` could display as another path, or None: a control, bidi or zero-width
    character, or a name mixing look-alike scripts (Latin with Cyrillic or Greek)."""
    found = unsafe_characters(path)
    if found:
        codes = ", ".join(f"U+{ord(c):04X}" for c in found[:3])
        return f"contains control, bidi or invisible characters ({codes})"
    if unicodedata.normalize("NFC", path) != path:
        return "is not in Unicode normal form NFC"
    for word in re.findall(r"[^\W\d_]+", path):  # each run of letters
        scripts = {
            script
            for c in word
            for script in _SCRIPTS
            if unicodedata.name(c, "").startswith(script)
        }
        if len(scripts) > 1:
            return f"mixes look-alike scripts in {printable(word)!r} ({', '.join(sorted(scripts))})"
    return None


_ERRNO_HINTS = {
    errno.ENOSPC: "free some space on that disk, or point IMAGINEBUILD_CACHE_DIR elsewhere",
    errno.EDQUOT: "free some space within your quota",
    errno.EACCES: "check the permissions of that path (and its folders)",
    errno.EPERM: "check the permissions of that path (and its folders)",
    errno.EROFS: "that file system is read-only: run from a writable copy, or use `status`, "
    "`plan` or `show`, which only read",
    errno.ENOTDIR: "a file stands where a folder is needed: move it away",
    errno.EISDIR: "a folder stands where a file is needed: move it away",
}


def environment_failure(exc: OSError) -> EnvironmentFailure:
    """An OSError as the environment failure it is: the path, what went wrong, what to do."""
    what = exc.strerror or str(exc) or type(exc).__name__
    hint = _ERRNO_HINTS.get(exc.errno or 0, "check that the path exists and is writable")
    text = what if exc.filename is None else f"{exc.filename}: {what}"
    return EnvironmentFailure(printable(text), hint=hint)


def printable(text: str) -> str:
    """`text` with control, bidi and format characters shown as escapes (for terminals).

    Tabs and newlines are kept; everything else that could move the cursor,
    recolour the terminal or reorder the line is written as `\\xNN` / `\\uNNNN`.
    """
    if text.isprintable():
        return text
    out = []
    for c in text:
        if c in "\n\t" or not (c in _BIDI or unicodedata.category(c) in ("Cc", "Cf")):
            out.append(c)
        else:
            out.append(c.encode("unicode_escape").decode("ascii"))
    return "".join(out)
