"""mediafile.lock: per asset, the key, outputs and provenance of its last build.

The file is JSON with sorted keys and two-space indentation, one asset per
top-level entry, so diffs in git read line by line:

    {
      "assets": {
        "<name>": {
          "key": "<action key>",
          "fields": {kind, provider, model, params, prompt, variant, inputs[{ref, sha256, asset?}]},
          "outputs": [{"path", "sha256", "bytes", "media_type"}],
          "record": {provenance: request_ids, cost, timestamps, imaginebuild version…},
          "pick": {"take": "<take id>", "made_under": "<action key>"}    (only when picked)
        }
      },
      "version": 1
    }

It is rewritten atomically as steps finish, paced (see `PacedWriter`), and once more
at the end of a run. A lockfile that records a
pick (`imaginebuild pick`) is version 2, so a reader that does not know picks
refuses it rather than restore another take; one without picks stays version 1,
byte for byte as before.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from imaginebuild.atomic import atomic_write_bytes
from imaginebuild.errors import LockfileError
from imaginebuild.provenance import NO_RECORD, Provenance
from imaginebuild.untrusted import (
    LOCKFILE_CAP,
    Untrusted,
    is_sha256,
    load_json,
    printable,
    read_capped,
    relative_path,
    shown,
)

LOCKFILE_VERSION = 1
LOCKFILE_VERSION_PICKS = 2  # written only when some entry records a pick
_TAKE_ID = re.compile(r"[0-9a-f]{12}")


def is_take_id(value: object) -> bool:
    """Whether `value` is a take's id as `store.takes.take_id` makes it: 12 lowercase hex."""
    return isinstance(value, str) and _TAKE_ID.fullmatch(value) is not None


@dataclass(frozen=True)
class LockedOutput:
    """One materialized output of a locked asset."""

    path: str  # project-relative POSIX
    sha256: str
    size: int
    media_type: str

    def to_json(self) -> dict[str, object]:
        """JSON-ready form."""
        return {
            "path": self.path,
            "sha256": self.sha256,
            "bytes": self.size,
            "media_type": self.media_type,
        }


@dataclass(frozen=True)
class LockPick:
    """A take chosen by hand (`imaginebuild pick`): which, and the key it was made under."""

    take: str  # the take's id (12 hex digits)
    made_under: str  # the action key the take was made under (may differ by `variant`)

    def to_json(self) -> dict[str, object]:
        """JSON-ready form."""
        return {"take": self.take, "made_under": self.made_under}

    @classmethod
    def from_json(cls, data: object) -> LockPick:
        """Parse the JSON form; ValueError unless both fields are well-formed hex."""
        if not isinstance(data, dict):
            raise ValueError("a pick is an object")
        take, under = data.get("take"), data.get("made_under")
        if not is_take_id(take):
            raise ValueError(f"pick: take {shown(take)} is not a take id")
        if not is_sha256(under):
            raise ValueError(f"pick: made_under {shown(under)} is not an action key")
        return cls(str(take), str(under))


@dataclass(frozen=True)
class LockEntry:
    """What the lockfile says about one asset."""

    key: str
    fields: Mapping[str, Any]
    outputs: tuple[LockedOutput, ...]
    record: Provenance = NO_RECORD
    pick: LockPick | None = None  # the take chosen by hand, if one was

    def to_json(self) -> dict[str, object]:
        """JSON-ready form (no `pick` key unless a take was picked)."""
        data: dict[str, object] = {
            "key": self.key,
            "fields": dict(self.fields),
            "outputs": [o.to_json() for o in self.outputs],
            "record": self.record.to_json(),
        }
        if self.pick is not None:
            data["pick"] = self.pick.to_json()
        return data

    @functools.cached_property
    def rendered(self) -> str:
        """The entry's JSON as the lockfile spells it, made once per entry: a run rewrites
        the lockfile many times as steps finish, and re-rendering every entry each time made a
        build's lockfile writes grow with the square of its assets."""
        return json.dumps(self.to_json(), indent=2, sort_keys=True, ensure_ascii=False)


def parse_lockfile(
    text: str, name: str, warn: Callable[[str], None] = lambda message: None
) -> dict[str, LockEntry]:
    """Parse lockfile text; raises LockfileError naming `name` on anything malformed.

    An entry naming an output path outside the project, or a key or hash that is not
    64 lowercase hex, is dropped with a `warn`: it never names a file.
    """
    try:
        data = load_json(text)
    except Untrusted as exc:
        raise LockfileError(
            f"{name}: {exc}",
            hint="restore it from git, or delete it: the cache will rebuild it without calls",
        ) from exc
    if not isinstance(data, dict):
        raise LockfileError(
            f"{name}: a lockfile is a JSON object, not {type(data).__name__}",
            hint="restore it from git, or delete it: the cache will rebuild it without calls",
        )
    if data.get("version") not in (LOCKFILE_VERSION, LOCKFILE_VERSION_PICKS):
        version = data.get("version")
        raise LockfileError(
            f"{name}: lockfile version {version!r} is not {LOCKFILE_VERSION} "
            f"or {LOCKFILE_VERSION_PICKS}",
            hint="it was written by another imaginebuild version; upgrade, or delete the file",
        )
    entries: dict[str, LockEntry] = {}
    assets = data.get("assets")
    if not isinstance(assets, dict):
        raise LockfileError(
            f"{name}: 'assets' must be an object",
            hint="restore it from git, or delete it: the cache will rebuild it without calls",
        )
    for asset, raw in assets.items():
        escaping = _escaping_path(raw)
        if escaping:
            # Never trusted, never fatal: the entry is dropped and the asset rebuilt or restored.
            warn(f"{name}: assets.{printable(str(asset))}: ignored: {escaping}")
            continue
        try:
            entries[asset] = _entry(raw)
        except (KeyError, TypeError, ValueError, AttributeError, OverflowError) as exc:
            raise LockfileError(
                f"{name}: assets.{printable(str(asset))}: malformed entry ({printable(repr(exc))})",
                hint="restore it from git, or delete the entry",
            ) from exc
        hostile = _hostile_hash(entries[asset])
        if hostile:
            del entries[asset]
            warn(f"{name}: assets.{printable(str(asset))}: ignored: {hostile}")
    return entries


def _entry(raw: Any) -> LockEntry:
    """One asset's entry from its JSON; a missing or mistyped field raises (caught above)."""
    return LockEntry(
        key=str(raw["key"]),
        fields=dict(raw.get("fields") or {}),
        outputs=tuple(
            LockedOutput(str(o["path"]), str(o["sha256"]), int(o["bytes"]), str(o["media_type"]))
            for o in raw["outputs"]
        ),
        record=Provenance.from_json(dict(raw.get("record") or {})),
        pick=None if raw.get("pick") is None else LockPick.from_json(raw["pick"]),
    )


def _escaping_path(raw: object) -> str | None:
    """Why an entry's output path cannot be trusted (it leaves the project), or None."""
    outputs = raw.get("outputs") if isinstance(raw, dict) else None
    for out in outputs if isinstance(outputs, list) else []:
        if isinstance(out, dict) and "path" in out and relative_path(out["path"]) is None:
            return f"output path {shown(out['path'])} leaves the project"
    return None


def _hostile_hash(entry: LockEntry) -> str | None:
    """Why a well-formed entry's hashes cannot name a blob (not 64 lowercase hex), or None."""
    for out in entry.outputs:
        if not is_sha256(out.sha256):
            return f"output hash {shown(out.sha256)} is not a sha256"
    inputs = entry.fields.get("inputs")
    for item in inputs if isinstance(inputs, list) else []:
        if isinstance(item, dict) and "sha256" in item and not is_sha256(item["sha256"]):
            return f"input hash {shown(item['sha256'])} is not a sha256"
    return None


def render_lockfile(entries: Mapping[str, LockEntry]) -> str:
    """The lockfile text for `entries`: sorted, deterministic, newline-terminated.

    Byte for byte what `json.dumps({"version": …, "assets": …}, indent=2,
    sort_keys=True)` writes, assembled from each entry's cached rendering.
    """
    if not entries:
        empty = {"version": LOCKFILE_VERSION, "assets": {}}
        return json.dumps(empty, indent=2, sort_keys=True) + "\n"
    picked = any(e.pick is not None for e in entries.values())
    version = LOCKFILE_VERSION_PICKS if picked else LOCKFILE_VERSION
    body = ",\n".join(
        f"    {json.dumps(name, ensure_ascii=False)}: "
        + entries[name].rendered.replace("\n", "\n    ")
        for name in sorted(entries)
    )
    return f'{{\n  "assets": {{\n{body}\n  }},\n  "version": {version}\n}}\n'


def read_lockfile(
    path: Path, warn: Callable[[str], None] = lambda message: None, *, label: str | None = None
) -> dict[str, LockEntry]:
    """Read mediafile.lock; a missing file is an empty lock. Messages name it `label`
    (default: its file name), so another project's lockfile can be named in full."""
    try:
        text = read_capped(path, LOCKFILE_CAP).decode("utf-8")
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError, Untrusted) as exc:
        raise LockfileError(
            f"cannot read {path}: {printable(str(exc))}",
            hint="restore it from git, or delete it: the cache will rebuild it without calls",
        ) from exc
    return parse_lockfile(text, label or path.name, warn)


def write_lockfile(path: Path, entries: Mapping[str, LockEntry]) -> None:
    """Write mediafile.lock atomically (unchanged content is not rewritten)."""
    text = render_lockfile(entries)
    try:
        if path.read_text(encoding="utf-8") == text:
            return
    except (OSError, UnicodeDecodeError):
        pass
    atomic_write_bytes(path, text.encode("utf-8"))


class PacedWriter:
    """Writes the lockfile after finished steps, paced so writing stays a small share
    of the run: after a write that took `t`, the next comes no sooner than
    max(`floor`, `t` / `share`) later; `flush` writes what is pending at once.

    A lockfile of 10,000 entries is megabytes; written after each of 10,000 steps it
    would cost more than the build. What a crash can lose is the last interval's
    entries, and their outputs are already in the cache: the next run restores them
    without a call.
    """

    def __init__(
        self,
        path: Path,
        entries: Mapping[str, LockEntry],
        clock: Callable[[], float],
        *,
        share: float = 0.1,
        floor: float = 0.05,
    ) -> None:
        self._path = path
        self._entries = entries
        self._clock = clock
        self._share = share
        self._floor = floor
        self._next = 0.0
        self.pending = False

    def changed(self) -> None:
        """The entries changed: write now if due, else leave the write pending."""
        self.pending = True
        if self._clock() >= self._next:
            self.flush()

    def due_in(self) -> float:
        """Seconds until a pending write is due (0 when it is due now)."""
        return max(0.0, self._next - self._clock())

    def flush(self) -> None:
        """Write the pending entries now (nothing if none are pending)."""
        if not self.pending:
            return
        began = self._clock()
        write_lockfile(self._path, self._entries)
        took = self._clock() - began
        self.pending = False
        self._next = self._clock() + max(self._floor, took / self._share)
