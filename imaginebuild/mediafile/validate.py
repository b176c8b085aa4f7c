"""Validation of a mediafile: the semantic layer, as located diagnostics (the schema layer
before it is `schemacheck`).

    plain data + marks ──schema_diagnostics──▶ shape problems (schemacheck)
    drafts (defaults merged) ──semantic_diagnostics──▶ references, inputs, cycles, paths

Both layers tolerate half-valid data: each reports what it can see and skips
what an earlier problem makes meaningless, so a file's problems come out together.
"""

from __future__ import annotations

import graphlib
import itertools
import os
import posixpath
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlsplit

from imaginebuild.capabilities import capability, ratio_follows_input
from imaginebuild.errors import Diagnostic
from imaginebuild.mediafile.inputs import ASSET_REF, Problem, project_path, resolve_input
from imaginebuild.mediafile.yamlload import JsonPath, MarkedProblems, Parsed
from imaginebuild.model import (
    KIND_SPECS,
    PROJECT_ONLY,
    InputPolicy,
    InputRef,
    Kind,
    Media,
    RefKind,
)
from imaginebuild.untrusted import printable, spoofing_problem

ASSET_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")
FILE_MEDIA: Mapping[str, Media] = {
    ".png": Media.IMAGE,
    ".jpg": Media.IMAGE,
    ".jpeg": Media.IMAGE,
    ".webp": Media.IMAGE,
    ".mp4": Media.VIDEO,
}
OUTPUT_SUFFIX: Mapping[Media, str] = {Media.IMAGE: ".png", Media.VIDEO: ".mp4"}
MAX_CYCLES = 20  # a file with more gets the first ones: enough to start untangling it
# Limits local file systems enforce, checked before any call is paid for: a file name of
# at most 255 bytes (ext4, XFS, btrfs, APFS, ZFS), a path of at most 4096 bytes with its
# NUL (Linux's PATH_MAX). Files are written as `.NAME.XXXXXXXX.tmp` then renamed, and
# providers name work files after the asset (`NAME-<i>.png`, `NAME.mp4`): both need room.
NAME_MAX = 255
PATH_MAX = 4096
_TEMP_EXTRA = len("..XXXXXXXX.tmp")
_WORK_EXTRA = len("-9.png")


@dataclass(frozen=True)
class Draft:
    """One asset with defaults merged, from possibly half-valid data.

    `values` holds only well-typed values; `sources` says where each came from
    (the asset's own key or a `defaults:` key), for locating problems.
    """

    name: str
    kind: Kind | None
    values: Mapping[str, Any]
    sources: Mapping[str, JsonPath]
    inputs: tuple[tuple[int, str], ...]  # (index in `inputs:`, raw text) of string entries
    input_count: int | None = 0  # entries of `inputs:`; None when it is not a list

    @property
    def path(self) -> JsonPath:
        """The JSON path of the asset's mapping."""
        return ("assets", self.name)

    @property
    def count(self) -> int:
        """How many outputs the asset makes (1 unless an image kind asks for more)."""
        count = self.values.get("count", 1)
        return count if isinstance(count, int) else 1


# -------------------------------------------------------------- semantic layer


def semantic_diagnostics(
    drafts: Sequence[Draft],
    output_dir: str,
    root: Path,
    where: Parsed,
    policy: InputPolicy = PROJECT_ONLY,
) -> list[Diagnostic]:
    """Check what the schema cannot: references, inputs per kind, cycles, paths, outputs."""
    report = MarkedProblems(where)
    by_name = {draft.name: draft for draft in drafts}
    spoof = spoofing_problem(output_dir)
    if spoof:
        report.at(("output_dir",), f"output_dir {printable(output_dir)!r} {spoof}")
    elif output_dir != "." and project_path(output_dir, root) is None:
        report.at(
            ("output_dir",), f"output_dir '{output_dir}' leaves the project",
            "use a folder inside the mediafile's folder, such as `out`",
        )  # fmt: skip
    for draft in drafts:
        _check_inputs(draft, by_name, root, report, policy)
        _check_capabilities(draft, report)
        _check_output(draft, root, report)
        _check_fs_limits(draft, output_dir, root, report)
    _check_cycles(drafts, report)
    _check_duplicate_outputs(drafts, output_dir, report)
    return report.diagnostics


def media_of(ref: InputRef, by_name: Mapping[str, Draft]) -> Media | None:
    """What an input holds: from its asset's kind, its file or URL extension; None if unknown."""
    if ref.kind is RefKind.ASSET:
        target = by_name.get(ref.asset or "")
        return KIND_SPECS[target.kind].output if target and target.kind else None
    where = ref.path if ref.kind is RefKind.FILE else urlsplit(ref.url or "").path
    suffix = PurePosixPath(where or "")
    return FILE_MEDIA.get(suffix.suffix.lower())


def _check_inputs(
    draft: Draft,
    by_name: Mapping[str, Draft],
    root: Path,
    report: MarkedProblems,
    policy: InputPolicy,
) -> None:
    spec = KIND_SPECS[draft.kind] if draft.kind is not None else None
    for index, raw in draft.inputs:
        path = (*draft.path, "inputs", index)
        ref = resolve_input(raw, by_name, root, policy)
        if isinstance(ref, Problem):
            report.at(path, ref.message, ref.hint)
            continue
        problem = _check_ref(ref, draft, by_name, root)
        if problem is None and spec is not None and spec.input_media is not None:
            media = media_of(ref, by_name)
            if media is not None and media is not spec.input_media:
                problem = Problem(
                    f"input '{raw}' is {_a(media)}; kind '{spec_name(draft)}' takes "
                    f"{spec.input_media.value} inputs"
                )
        if problem is not None:
            report.at(path, problem.message, problem.hint)
    if spec is not None and draft.input_count is not None:
        _check_input_count(draft, spec.min_inputs, spec.max_inputs, spec.input_media, report)


def _check_capabilities(draft: Draft, report: MarkedProblems) -> None:
    """What the model accepts for the kind (the capability table): a ratio the API takes
    from the input image, resolutions and durations a model or kind does not serve."""
    if draft.kind is None:
        return
    values, sources = draft.values, draft.sources
    ratio, inputs = values.get("aspect_ratio"), draft.input_count or 0
    own = (*draft.path, "aspect_ratio")
    explicit = sources.get("aspect_ratio") == own and not (
        draft.kind is Kind.EDIT and ratio == "auto"
    )
    if ratio_follows_input(draft.kind, inputs) and explicit:
        what = "an animate" if draft.kind is Kind.ANIMATE else "a single-image edit"
        report.at(
            own, f"aspect_ratio is not used by {what}: the API keeps the input image's ratio",
            "drop `aspect_ratio` here (crop or pad the input to the shape you want)",
        )  # fmt: skip
        return
    model = values.get("model")
    if not isinstance(model, str):
        return
    found = capability(model, draft.kind)
    for key, allowed in (("resolution", found.resolutions), ("aspect_ratio", found.aspect_ratios)):
        value = values.get(key)
        if value is not None and allowed and value not in allowed and key in sources:
            report.at(
                sources[key], f"{key} '{value}' is not available for kind "
                f"'{draft.kind.value}' on {model}; use one of {', '.join(allowed)}",
            )  # fmt: skip
    duration = values.get("duration")
    span = found.durations
    if isinstance(duration, int) and span and not span[0] <= duration <= span[1]:
        report.at(
            sources.get("duration", draft.path), f"duration {duration} is out of range for kind "
            f"'{draft.kind.value}' on {model} ({span[0]}–{span[1]} seconds)",
        )  # fmt: skip


def spec_name(draft: Draft) -> str:
    """The kind's name of a draft whose kind is known."""
    return draft.kind.value if draft.kind is not None else "?"


def _a(media: Media) -> str:
    return "an image" if media is Media.IMAGE else "a video"


def _check_ref(
    ref: InputRef, draft: Draft, by_name: Mapping[str, Draft], root: Path
) -> Problem | None:
    if ref.kind is RefKind.FILE:
        return _check_file(ref.path or "", root)
    if ref.kind is not RefKind.ASSET or ref.asset is None:
        return None
    if ref.asset == draft.name:
        return Problem(f"asset '{draft.name}' uses itself as an input")
    count = by_name[ref.asset].count
    last = f"{ref.asset}[{count - 1}]"
    if ref.index is None and count > 1:
        return Problem(
            f"'{ref.asset}' makes {count} outputs; name one of them",
            f"use {ref.asset}[0] … {last}",
        )
    if ref.index is not None and ref.index >= count:
        made = "1 output" if count == 1 else f"{count} outputs"
        return Problem(
            f"index {ref.index} is out of range: '{ref.asset}' makes {made}",
            f"use {ref.asset}[0]" + (f" … {last}" if count > 1 else ""),
        )
    return None


def _check_file(relative: str, root: Path) -> Problem | None:
    suffix = PurePosixPath(relative).suffix.lower()
    if suffix not in FILE_MEDIA:
        return Problem(
            f"input '{relative}' has an unsupported extension '{suffix or '(none)'}'",
            "inputs are .png, .jpg, .jpeg, .webp images or .mp4 videos",
        )
    if not (root / relative).is_file():
        return Problem(
            f"input file '{relative}' does not exist",
            "input paths are relative to the mediafile's folder",
        )
    return None


def _check_input_count(
    draft: Draft, low: int, high: int, media: Media | None, report: MarkedProblems
) -> None:
    got = draft.input_count or 0
    if low <= got <= high:
        return
    noun = f"{media.value} input" if media else "input"
    if high == 0:
        wanted = "no inputs"
    elif low == high:
        wanted = f"exactly {low} {noun}" + ("s" if low > 1 else "")
    else:
        wanted = f"{low}–{high} {noun}s"
    where = (*draft.path, "inputs") if got else draft.path
    report.at(where, f"kind '{spec_name(draft)}' takes {wanted}, got {got}")


def _check_output(draft: Draft, root: Path, report: MarkedProblems) -> None:
    output = draft.values.get("output")
    if not isinstance(output, str):
        return
    path = (*draft.path, "output")
    spoof = spoofing_problem(output)
    if spoof:
        report.at(path, f"output {printable(output)!r} {spoof}", "use plain characters")
        return
    if project_path(output, root) is None:
        report.at(path, f"output '{output}' leaves the project", "give a project-relative path")
        return
    if draft.kind is None:
        return
    spec = KIND_SPECS[draft.kind]
    suffix = OUTPUT_SUFFIX[spec.output]
    if PurePosixPath(output).suffix.lower() != suffix:
        report.at(
            path, f"output '{output}' must end in {suffix}: kind '{draft.kind.value}' makes "
            f"{_a(spec.output)}",
        )  # fmt: skip
    if draft.count > 1:
        report.at(
            path, f"output names one file but '{draft.name}' makes {draft.count} images",
            "drop `output` (outputs go to <output_dir>/NAME-<i>.png) or set count: 1",
        )  # fmt: skip


def _check_fs_limits(draft: Draft, output_dir: str, root: Path, report: MarkedProblems) -> None:
    """Names and paths a local file system would refuse (one problem per asset at most)."""
    explicit = isinstance(draft.values.get("output"), str)
    size = len(os.fsencode(draft.name))
    if size + _WORK_EXTRA > NAME_MAX:
        report.at(
            draft.path, f"the asset name is {size} bytes; files named after it would pass "
            f"the {NAME_MAX}-byte limit of a file name",
            f"use a name of at most {NAME_MAX - _WORK_EXTRA - _TEMP_EXTRA} bytes", key=True,
        )  # fmt: skip
        return
    where = (*draft.path, "output") if explicit else draft.path
    for output in outputs_of(draft, output_dir):
        *folders, name = PurePosixPath(output).parts
        too_long = [p for p in folders if len(os.fsencode(p)) > NAME_MAX]
        if too_long or len(os.fsencode(name)) + _TEMP_EXTRA > NAME_MAX:
            part = too_long[0] if too_long else name
            report.at(
                where, f"'{part}' in output '{output}' is {len(os.fsencode(part))} bytes; a "
                f"file name may have {NAME_MAX} (an output's {NAME_MAX - _TEMP_EXTRA}, leaving "
                "room for the temporary name it is written under)",
                "shorten the asset name or its `output`", key=not explicit,
            )  # fmt: skip
            return
        full = len(os.fsencode(str(root / output))) + _TEMP_EXTRA + 1
        if full > PATH_MAX:
            report.at(
                where, f"output '{output}' would be written at a path of {full} bytes "
                f"(with its temporary name); a path may have {PATH_MAX}",
                "shorten the output's path, or move the project to a shorter folder",
                key=not explicit,
            )  # fmt: skip
            return


def outputs_of(draft: Draft, output_dir: str) -> tuple[str, ...]:
    """The project-relative POSIX paths an asset materializes to."""
    output = draft.values.get("output")
    if isinstance(output, str):
        return (posixpath.normpath(output),)
    base = posixpath.normpath(output_dir)
    media = KIND_SPECS[draft.kind].output if draft.kind else Media.IMAGE
    suffix = OUTPUT_SUFFIX[media]
    if draft.count == 1:
        return (posixpath.normpath(posixpath.join(base, f"{draft.name}{suffix}")),)
    names = (f"{draft.name}-{i}{suffix}" for i in range(draft.count))
    return tuple(posixpath.normpath(posixpath.join(base, name)) for name in names)


def _check_duplicate_outputs(
    drafts: Sequence[Draft], output_dir: str, report: MarkedProblems
) -> None:
    owners: dict[str, str] = {}
    for draft in drafts:
        explicit = isinstance(draft.values.get("output"), str)
        for output in outputs_of(draft, output_dir):
            # Case-insensitive: on macOS and Windows these are one file.
            owner = owners.setdefault(output.casefold(), draft.name)
            if owner != draft.name:
                where = (*draft.path, "output") if explicit else draft.path
                report.at(
                    where, f"output '{output}' is also made by asset '{owner}'",
                    "give one of them a different `output` or name", key=not explicit,
                )  # fmt: skip


def _check_cycles(drafts: Sequence[Draft], report: MarkedProblems) -> None:
    """Name every cycle of asset references (at most MAX_CYCLES), each once.

    graphlib says whether there is any; only then is networkx imported, to list
    them all (its Johnson search yields one cycle per step, so the bound holds its time).
    """
    order = {draft.name: i for i, draft in enumerate(drafts)}
    reads: dict[str, dict[str, int]] = {}  # asset → {asset it reads: first index in inputs}
    for draft in drafts:
        for index, raw in draft.inputs:
            match = ASSET_REF.match(raw)
            target = match.group(1) if match else None
            if target in order and target != draft.name and "://" not in raw:
                reads.setdefault(draft.name, {}).setdefault(target or "", index)
    try:
        graphlib.TopologicalSorter(reads).prepare()
        return
    except graphlib.CycleError:
        pass
    import networkx as nx

    graph = nx.DiGraph((name, target) for name, targets in reads.items() for target in targets)
    found = list(itertools.islice(nx.simple_cycles(graph), MAX_CYCLES + 1))
    rings = sorted(
        (_ring(cycle, order) for cycle in found[:MAX_CYCLES]),
        key=lambda ring: [order[n] for n in ring],
    )
    for ring in rings:
        first, second = ring[0], ring[1 % len(ring)]
        report.at(
            ("assets", first, "inputs", reads[first][second]),
            "cycle: " + " → ".join([*ring, first]),
            "an asset cannot depend on its own output; break one of these inputs",
        )
    if len(found) > MAX_CYCLES:
        report.at(
            ("assets",), f"more than {MAX_CYCLES} cycles among the assets; the first are listed",
            "break those, then validate again to see the rest", key=True,
        )  # fmt: skip


def _ring(cycle: Sequence[str], order: Mapping[str, int]) -> list[str]:
    """A cycle turned to start at its earliest-declared asset, so each reads the same."""
    start = min(range(len(cycle)), key=lambda i: order[cycle[i]])
    return [*cycle[start:], *cycle[:start]]
