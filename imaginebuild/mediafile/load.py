"""The mediafile front end: read, parse, interpolate vars, merge defaults, validate, build.

read_source ─▶ compose (YAML + marks) ─▶ interpolate (vars) ─▶ schema layer
                                                   └─▶ merge_defaults ─▶ semantic layer
no diagnostics at all ─▶ build the frozen Mediafile; otherwise MediafileError(every one)
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import math
import posixpath
from collections.abc import Collection, Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any

from imaginebuild.atomic import atomic_write_bytes
from imaginebuild.capabilities import ratio_follows_input
from imaginebuild.errors import Diagnostic, MediafileError
from imaginebuild.gcpause import paused_gc
from imaginebuild.layout import StateLayout, text_digest
from imaginebuild.layout import absolute as absolute_path
from imaginebuild.mediafile.inputs import resolve_input
from imaginebuild.mediafile.interpolate import interpolate, resolve_vars
from imaginebuild.mediafile.matrix import Combination, expand_matrices
from imaginebuild.mediafile.relabel import relabel
from imaginebuild.mediafile.schema import schema_text
from imaginebuild.mediafile.schemacheck import kind_of, schema_diagnostics
from imaginebuild.mediafile.validate import Draft, outputs_of, semantic_diagnostics
from imaginebuild.mediafile.yamlload import (
    JsonPath,
    MarkedProblems,
    Parsed,
    compose,
    read_source,
)
from imaginebuild.model import (
    IMAGE_ASPECT_RATIOS,
    IMAGE_RESOLUTIONS,
    KIND_SPECS,
    MEDIAFILE_VERSION,
    PROJECT_ONLY,
    VIDEO_ASPECT_RATIOS,
    VIDEO_RESOLUTIONS,
    Asset,
    InputPolicy,
    InputRef,
    Kind,
    Media,
    Mediafile,
    ProviderSettings,
)
from imaginebuild.spelled import PROVIDERS, ProviderName
from imaginebuild.untrusted import check_state_dir
from imaginebuild.version import __version__

BUDGET_KEYS = ("max_usd", "max_usd_per_day", "max_usd_total")  # the keys of `budget:`

# What a kind gets when neither the asset nor `defaults:` says (duration: KindSpec).
_BUILTIN: Mapping[Kind, Mapping[str, object]] = {
    Kind.IMAGE: {"resolution": "1k", "aspect_ratio": "1:1", "count": 1},
    Kind.EDIT: {"resolution": "1k", "aspect_ratio": "auto", "count": 1},
    Kind.VIDEO: {"resolution": "480p", "aspect_ratio": "16:9"},
    Kind.ANIMATE: {"resolution": "480p", "aspect_ratio": None},
    Kind.REFERENCE_VIDEO: {"resolution": "480p", "aspect_ratio": "16:9"},
    Kind.VIDEO_EDIT: {},
    Kind.EXTEND: {},
}
_RESOLUTIONS: Mapping[Media, tuple[str, ...]] = {
    Media.IMAGE: IMAGE_RESOLUTIONS,
    Media.VIDEO: VIDEO_RESOLUTIONS,
}
_ASPECT_RATIOS: Mapping[Media, tuple[str, ...]] = {
    Media.IMAGE: IMAGE_ASPECT_RATIOS,
    Media.VIDEO: VIDEO_ASPECT_RATIOS,
}
_PARAMS = ("model", "resolution", "aspect_ratio", "count", "duration")
# `extend`'s duration is the seconds it adds, not a length: a default length does not reach it.
_NOT_FROM_DEFAULTS: Mapping[Kind, frozenset[str]] = {Kind.EXTEND: frozenset({"duration"})}


def load_mediafile(path: Path, policy: InputPolicy = PROJECT_ONLY) -> Mediafile:
    """Read, parse, validate and build the mediafile at `path`.

    Raises `UsageError` if the file does not exist and `MediafileError` carrying
    every located problem of the file for anything else wrong with it.
    """
    display = _display(path)
    text = read_source(path, display)
    absolute = absolute_path(path)
    layout = StateLayout.of_mediafile(absolute)
    check_state_dir(layout.folder)  # refused before anything is written
    stamp = layout.validated
    digest = _schema_digest(text, _identity(absolute))
    trusted = _read_stamp(stamp) == digest
    with paused_gc():
        mediafile = parse_mediafile(
            text, display, absolute, absolute.parent, check_schema=not trusted, policy=policy
        )
    if not trusted and stamp.parent.is_dir():
        with contextlib.suppress(OSError):
            atomic_write_bytes(stamp, digest.encode())
    return mediafile


def _identity(path: Path) -> str:
    """This very file on this machine: device, inode and change time (ctime cannot be set
    by a checkout, so a stamp committed to a repository never matches)."""
    try:
        st = path.stat()
    except OSError:
        return ""
    return f"{st.st_dev}:{st.st_ino}:{st.st_ctime_ns}"


def _schema_digest(text: str, identity: str) -> str:
    """What a schema verdict depends on: this version, the schema and the file's text,
    bound to the file's identity on this machine.

    The schema layer is a pure function of the first three, so a file whose digest
    matches the stamp of its last success passes again; skipping it keeps
    jsonschema's import (most of a no-op run's start-up) off the path where nothing
    changed. The identity makes a stamp that came from elsewhere worthless.
    """
    digest = hashlib.sha256(f"{__version__}\0{identity}\0".encode())
    digest.update(schema_text().encode())
    digest.update(b"\0" + text.encode())
    return digest.hexdigest()


def _read_stamp(path: Path) -> str | None:
    try:
        return path.read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError):
        return None


def _display(path: Path) -> str:
    """The path as diagnostics show it: relative to the working folder when inside it."""
    if not path.is_absolute():
        return str(path)
    try:
        return str(path.relative_to(Path.cwd()))
    except (ValueError, OSError):
        return str(path)


def parse_mediafile(
    text: str,
    display: str,
    path: Path,
    root: Path,
    *,
    check_schema: bool = True,
    policy: InputPolicy = PROJECT_ONLY,
) -> Mediafile:
    """Parse, validate and build a mediafile from its text; `root` is the project folder.

    `check_schema=False` skips only the schema layer, for text known to pass it.
    """
    parsed = compose(text, display)
    diagnostics = list(parsed.diagnostics)
    if parsed.data is None and diagnostics:
        raise MediafileError(diagnostics)
    if not isinstance(parsed.data, dict):
        mark = parsed.mark(())
        diagnostics.append(
            Diagnostic(
                display, mark.line, mark.column, "",
                f"the mediafile must be a mapping of keys, got {_what(parsed.data)}",
                hint="start with `version: 1` and an `assets:` mapping",
            )
        )  # fmt: skip
        raise MediafileError(diagnostics)
    expansion = expand_matrices(parsed.data, parsed)  # its diagnostics name their combination
    data, problems = interpolate(expansion.data, parsed)
    diagnostics += problems
    if check_schema:
        diagnostics += schema_diagnostics(data, parsed)
    if not diagnostics:
        diagnostics += _pricing_diagnostics(data, parsed)
    output_dir = _output_dir(data)
    drafts = merge_defaults(data)
    diagnostics += semantic_diagnostics(drafts, output_dir, root, parsed, policy)
    diagnostics += _value_diagnostics(data, drafts, parsed)
    if diagnostics or expansion.diagnostics:
        raise MediafileError(expansion.diagnostics + relabel(diagnostics, expansion.origins))
    built = _build(data, drafts, output_dir, path, root, parsed, policy, text_digest(text))
    return _with_templates(built, expansion.origins)


def _value_diagnostics(
    data: Mapping[str, Any], drafts: list[Draft], where: Parsed
) -> list[Diagnostic]:
    """Values the schema lets through but nothing can use: a prompt of blanks, a budget
    that is not a finite number (YAML's .nan and .inf are numbers to JSON Schema)."""
    problems = MarkedProblems(where)
    for draft in drafts:
        prompt = draft.values.get("prompt")
        if isinstance(prompt, str) and prompt and not prompt.strip():
            problems.at(("assets", draft.name, "prompt"), "the prompt is only blanks")
    budget = data.get("budget")
    for key in BUDGET_KEYS:
        limit = budget.get(key) if isinstance(budget, dict) else None
        if isinstance(limit, float) and not math.isfinite(limit):
            problems.at(("budget", key), f"{limit} is not an amount of money")
    return problems.diagnostics


def _pricing_diagnostics(data: Mapping[str, Any], where: Parsed) -> list[Diagnostic]:
    """Figures the schema cannot judge (e.g. a price that is not a number), at `pricing:`."""
    if "pricing" not in data:
        return []
    from imaginebuild.engine.priceoverrides import load_price_table

    try:
        load_price_table(data["pricing"], file=where.filename)
    except MediafileError as exc:
        mark = where.mark(("pricing",))
        return [dataclasses.replace(d, line=mark.line, column=mark.column) for d in exc.diagnostics]
    return []


def _what(value: object) -> str:
    if isinstance(value, list):
        return "a list"
    return "a single value" if value is not None else "nothing"


def _output_dir(data: Mapping[str, Any]) -> str:
    value = data.get("output_dir", "out")
    return posixpath.normpath(value) if isinstance(value, str) and value else "out"


# ------------------------------------------------------------------- defaults


def merge_defaults(data: Mapping[str, Any]) -> list[Draft]:
    """Every asset with `defaults:` and built-in defaults merged under its own keys.

    Works on half-valid data: a value of the wrong type or out of range is left
    out (the schema layer reports it) and the next source fills in.
    """
    assets = data.get("assets")
    if not isinstance(assets, dict):
        return []
    found = data.get("defaults")
    defaults: Mapping[str, Any] = found if isinstance(found, dict) else {}
    top = data.get("provider") if data.get("provider") in PROVIDERS else "xai"
    return [
        _draft(name, raw if isinstance(raw, dict) else {}, defaults, str(top))
        for name, raw in assets.items()
    ]


def _draft(name: str, raw: Mapping[str, Any], defaults: Mapping[str, Any], top: str) -> Draft:
    kind = kind_of(raw.get("kind"))
    section = KIND_SPECS[kind].defaults_section if kind else None
    shared = defaults.get(section) if section else None
    shared = shared if isinstance(shared, dict) else {}
    values: dict[str, Any] = {}
    sources: dict[str, JsonPath] = {}
    own = ("assets", name)
    for key in _PARAMS:
        if kind is not None and key not in KIND_SPECS[kind].params:
            continue
        reachable = kind is not None and key not in _NOT_FROM_DEFAULTS.get(kind, frozenset())
        if _valid(key, raw.get(key), kind):
            values[key], sources[key] = _plain(raw[key]), (*own, key)
        elif (
            reachable and _valid(key, shared.get(key), kind) and not _follows_input(kind, key, raw)
        ):
            values[key], sources[key] = _plain(shared[key]), ("defaults", str(section), key)
        elif kind is not None:
            values[key] = _builtin(kind, key)
    provider = raw.get("provider") if raw.get("provider") in PROVIDERS else None
    provider = provider or (shared.get("provider") if shared.get("provider") in PROVIDERS else top)
    values["provider"] = provider
    values["prompt"] = raw.get("prompt") if isinstance(raw.get("prompt"), str) else ""
    variant = _as_int(raw.get("variant"))
    values["variant"] = variant if variant is not None and variant >= 0 else 0
    if isinstance(raw.get("output"), str) and raw["output"]:
        values["output"] = raw["output"]
    entries = raw.get("inputs", [])
    listed = entries if isinstance(entries, list) else []
    inputs = tuple((i, s) for i, s in enumerate(listed) if isinstance(s, str) and s)
    count = len(listed) if isinstance(entries, list) else None
    return Draft(name, kind, values, sources, inputs, count)


def _follows_input(kind: Kind | None, key: str, raw: Mapping[str, Any]) -> bool:
    """Whether `key` is `aspect_ratio` on a kind whose output keeps its single input image's
    ratio (the API takes none there), so a `defaults:` value must not reach it."""
    entries = raw.get("inputs")
    count = len(entries) if isinstance(entries, list) else 0
    return key == "aspect_ratio" and kind is not None and ratio_follows_input(kind, count)


def _builtin(kind: Kind, key: str) -> object:
    if key == "model":
        return KIND_SPECS[kind].default_model
    if key == "duration":
        return KIND_SPECS[kind].default_duration
    return _BUILTIN[kind].get(key)


def _as_int(value: object) -> int | None:
    """An integer value, counting 3.0 as 3 like JSON Schema does; None for anything else."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    return int(value) if isinstance(value, float) and value.is_integer() else None


def _plain(value: object) -> object:
    """Integers written as 3.0 count as 3 (JSON Schema calls them integers too)."""
    return int(value) if isinstance(value, float) and value.is_integer() else value


def _valid(key: str, value: object, kind: Kind | None) -> bool:
    """Whether `value` is acceptable for `key` on `kind` (None: any kind's rules)."""
    if value is None:
        return False
    media = KIND_SPECS[kind].output if kind else None
    if key == "model":
        return isinstance(value, str) and bool(value)
    if key == "resolution":
        return media is not None and str(value) in _RESOLUTIONS[media]
    if key == "aspect_ratio":
        return media is not None and str(value) in _ASPECT_RATIOS[media]
    number = _as_int(value)
    if number is None:
        return False
    if key == "count":
        return 1 <= number <= 10
    spec = KIND_SPECS[kind] if kind else None
    low, high = (spec.duration_range if spec else None) or (1, 15)
    return low <= number <= high


# ---------------------------------------------------------------------- build


def _usd_or_none(value: object) -> Decimal | None:
    """A validated budget figure as an exact Decimal (None when absent)."""
    return None if value is None else Decimal(str(value))


def _build(
    data: Mapping[str, Any],
    drafts: list[Draft],
    output_dir: str,
    path: Path,
    root: Path,
    where: Parsed,
    policy: InputPolicy,
    source_digest: str,
) -> Mediafile:
    """The frozen model of a mediafile that passed every check."""
    names = dict.fromkeys(draft.name for draft in drafts)  # ordered, and O(1) to ask
    assets = {draft.name: _asset(draft, names, output_dir, root, where, policy) for draft in drafts}
    budget = {key: _usd_or_none(data.get("budget", {}).get(key)) for key in BUDGET_KEYS}
    providers = {
        name: ProviderSettings(**settings) for name, settings in data.get("providers", {}).items()
    }
    return Mediafile(
        path=path,
        root=root,
        assets=assets,
        provider=ProviderName(str(data.get("provider", "xai"))),  # checked by the schema
        output_dir=output_dir,
        vars=resolve_vars(data.get("vars"), where, MarkedProblems(where)),
        budget_usd=budget["max_usd"],
        budget_per_day_usd=budget["max_usd_per_day"],
        budget_total_usd=budget["max_usd_total"],
        providers=providers,
        pricing=data.get("pricing", {}),
        remote=data.get("remote"),
        remote_readonly=bool(data.get("remote_readonly", False)),
        version=MEDIAFILE_VERSION,
        policy=policy,
        source_digest=source_digest,
    )


def _with_templates(mediafile: Mediafile, origins: Mapping[str, Combination]) -> Mediafile:
    """Mark the assets expanded from a matrix with their template (for grouping in output)."""
    if not origins:
        return mediafile
    assets = {
        name: dataclasses.replace(asset, template=origins[name].template)
        if name in origins
        else asset
        for name, asset in mediafile.assets.items()
    }
    return dataclasses.replace(mediafile, assets=assets)


def _asset(
    draft: Draft,
    names: Collection[str],
    output_dir: str,
    root: Path,
    where: Parsed,
    policy: InputPolicy,
) -> Asset:
    values = draft.values
    inputs = tuple(_input(raw, names, root, policy) for _, raw in draft.inputs)
    return Asset(
        name=draft.name,
        kind=Kind(draft.kind),  # only drafts with a valid kind reach the build
        provider=ProviderName(str(values["provider"])),  # a known name (_draft)
        prompt=str(values["prompt"]),
        inputs=inputs,
        model=str(values["model"]),
        resolution=values.get("resolution"),
        aspect_ratio=values.get("aspect_ratio"),
        count=int(values.get("count", 1)),
        duration=values.get("duration"),
        variant=int(values["variant"]),
        outputs=outputs_of(draft, output_dir),
        mark=where.mark(draft.path, key=True),
    )


def _input(raw: str, names: Collection[str], root: Path, policy: InputPolicy) -> InputRef:
    ref = resolve_input(raw, names, root, policy)
    if not isinstance(ref, InputRef):
        raise MediafileError([Diagnostic("", 1, 1, "", ref.message)])  # checked before; unreachable
    return ref
