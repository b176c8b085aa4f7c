"""Checks a provider's outputs before they are recorded: right count, media, shape and length.

A result that is empty, truncated, of the wrong media, the wrong shape or the
wrong length is never stored, locally or remotely (cache poisoning would pin
it forever). The rules follow what the API promises:

- images: the asked aspect ratio (within 2 %; `auto` follows the input) and,
  for grok-imagine models, about 1 MP for `1k` and 4 MP for `2k`;
- videos: the asked aspect ratio; `video`, `animate` and `reference_video`
  last the asked duration, `video_edit` as long as its input, `extend` its
  input plus the added seconds (each within one second).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from imaginebuild.errors import InvalidMedia
from imaginebuild.model import Asset, Kind, Media
from imaginebuild.providers.base import InputFile, OutputFile

if TYPE_CHECKING:
    from imaginebuild.mediaprobe import MediaInfo

# The API's clips may run a little short or long of the asked duration.
DURATION_TOLERANCE_S = 1.0
RATIO_TOLERANCE = 0.02
VIDEO_EDIT_MAX_S = 8.7  # the API edits at most this much of its input
# Pixel area per image resolution (the API: 1k ≈ 1 MP, 2k ≈ 4 MP, sides rounded to 16).
IMAGE_AREA_MP = {"1k": (0.5, 1.5), "2k": (2.0, 4.5)}


def check_outputs(
    asset: Asset, outputs: Sequence[OutputFile], inputs: Sequence[InputFile] = ()
) -> None:
    """Raise InvalidMedia unless `outputs` are what `asset` asked for and all decode."""
    from imaginebuild.mediaprobe import probe  # media libraries load only when building

    if len(outputs) != asset.count:
        raise InvalidMedia(f"{asset.name}: expected {asset.count} output(s), got {len(outputs)}")
    family = asset.output_media.value
    source = _source_clip(asset, inputs)
    for out in outputs:
        if not out.media_type.startswith(family + "/"):
            raise InvalidMedia(f"{asset.name}: expected {family} output, got {out.media_type}")
        info = probe(out.path, out.media_type)
        if not info.media_type.startswith(family + "/"):
            raise InvalidMedia(f"{asset.name}: output decodes as {info.media_type}, not {family}")
        if asset.output_media is Media.IMAGE:
            _check_image(asset, info)
        else:
            _check_video(asset, info, source)


def _source_clip(asset: Asset, inputs: Sequence[InputFile]) -> MediaInfo | None:
    """The input clip of a video_edit or extend, probed (its shape and length bind the output)."""
    if asset.kind not in (Kind.VIDEO_EDIT, Kind.EXTEND) or not inputs:
        return None
    from imaginebuild.mediaprobe import probe

    return probe(inputs[0].path, inputs[0].media_type)


def _ratio(text: str | None) -> float | None:
    if not text or text == "auto":
        return None
    width, _, height = text.partition(":")
    return float(width) / float(height)


def _check_ratio(asset: Asset, info: MediaInfo, wanted: float | None, what: str) -> None:
    if wanted is None or not info.width or not info.height:
        return
    actual = info.width / info.height
    if abs(actual - wanted) / wanted > RATIO_TOLERANCE:
        raise InvalidMedia(
            f"{asset.name}: the {what} is {info.width}×{info.height}, "
            f"not the asked {asset.aspect_ratio or 'shape'}"
        )


def _check_image(asset: Asset, info: MediaInfo) -> None:
    _check_ratio(asset, info, _ratio(asset.aspect_ratio), "image")
    bounds = IMAGE_AREA_MP.get(asset.resolution or "")
    if bounds is None or not asset.model.startswith("grok-imagine") or not info.width:
        return
    megapixels = info.width * (info.height or 0) / 1e6
    if not bounds[0] <= megapixels <= bounds[1]:
        raise InvalidMedia(
            f"{asset.name}: the image is {info.width}×{info.height} ({megapixels:.2f} MP), "
            f"not a {asset.resolution} image"
        )


def _check_video(asset: Asset, info: MediaInfo, source: MediaInfo | None) -> None:
    seconds = info.duration_s
    if seconds is None or seconds <= 0:
        raise InvalidMedia(f"{asset.name}: the video has no duration")
    if source is not None and source.width and source.height:
        _check_ratio(asset, info, source.width / source.height, "video")
    else:
        _check_ratio(asset, info, _ratio(asset.aspect_ratio), "video")
    expected = _expected_seconds(asset, source)
    if expected is not None and abs(seconds - expected) > DURATION_TOLERANCE_S:
        raise InvalidMedia(
            f"{asset.name}: the video lasts {seconds:.2f} s, {expected:g} s expected"
        )


def _expected_seconds(asset: Asset, source: MediaInfo | None) -> float | None:
    if asset.kind in (Kind.VIDEO, Kind.ANIMATE, Kind.REFERENCE_VIDEO):
        return float(asset.duration) if asset.duration else None
    original = source.duration_s if source is not None else None
    if original is None:
        return None
    if asset.kind is Kind.EXTEND:
        return original + (asset.duration or 0)
    return min(original, VIDEO_EDIT_MAX_S)  # video_edit: as long as its (capped) input
