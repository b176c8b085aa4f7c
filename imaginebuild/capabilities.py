"""What each xAI model accepts per kind, read from `data/xai_capabilities.json`.

The table holds one row per group of models and kinds (aspect ratios,
resolutions, durations, input and image counts), each with its source; the
mediafile validator, the xai provider and the output checks all ask it, so a
fact of the API lives in one place.

Two rules are not rows but come straight from xAI's OpenAPI document
(xai-org/xai-sdk-ts spec/openapi.json @ 41e766acb9160402c47301beca97764ace073ffc):
a single-image edit takes no `aspect_ratio` ("For single image editing, do
not set this. It will always auto-detect from the input image",
EditImageRequest), and image-to-video ignores it ("always derived from the
input image", GenerateVideoRequest). `ratio_follows_input` says when.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from importlib import resources

from imaginebuild.model import Kind

WILDCARD = "*"


@dataclass(frozen=True)
class Capability:
    """What one model accepts for one kind; an empty tuple or None means "not a parameter"."""

    aspect_ratios: tuple[str, ...] = ()
    resolutions: tuple[str, ...] = ()
    durations: tuple[int, int] | None = None
    inputs: tuple[int, int] = (0, 0)
    count: tuple[int, int] = (1, 1)
    source: str = ""


def _pair(value: object, default: tuple[int, int] | None) -> tuple[int, int] | None:
    if isinstance(value, list) and len(value) == 2:
        return int(value[0]), int(value[1])
    return default


@functools.cache
def _rows() -> tuple[tuple[frozenset[str], frozenset[str], Capability], ...]:
    text = resources.files("imaginebuild").joinpath("data/xai_capabilities.json").read_text()
    rows = []
    for row in json.loads(text)["rows"]:
        capability = Capability(
            aspect_ratios=tuple(row.get("aspect_ratios", ())),
            resolutions=tuple(row.get("resolutions", ())),
            durations=_pair(row.get("durations"), None),
            inputs=_pair(row.get("inputs"), (0, 0)) or (0, 0),
            count=_pair(row.get("count"), (1, 1)) or (1, 1),
            source=str(row["source"]),
        )
        rows.append((frozenset(row["models"]), frozenset(row["kinds"]), capability))
    return tuple(rows)


def capability(model: str, kind: Kind) -> Capability:
    """The row for `model` and `kind` (a model no row names gets the kind's `*` row)."""
    rows = _rows()
    for models, kinds, found in rows:
        if model in models and kind.value in kinds:
            return found
    for models, kinds, found in rows:
        if WILDCARD in models and kind.value in kinds:
            return found
    raise LookupError(f"no capability row for kind {kind.value}")  # the table covers every kind


def ratio_follows_input(kind: Kind, input_count: int) -> bool:
    """Whether the API derives the output's aspect ratio from the (single) input image, so
    that `aspect_ratio` must not be sent: a single-image edit and every animate."""
    return kind is Kind.ANIMATE or (kind is Kind.EDIT and input_count == 1)
