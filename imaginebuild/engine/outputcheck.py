"""Checks a provider's outputs before they are recorded: right count, media, shape and length.

A result that is empty, truncated, of the wrong media, the wrong shape or the
wrong length is never stored, locally or remotely (cache poisoning would pin
it forever). The rules assert only what the API promises, with tolerances
wide enough that a real answer is never thrown away (that would be paid for
again on the rerun):

- shape: a generation's ratio must be nearer the asked ratio than to any other
  ratio the API offers (real 1k sizes are rounded to multiples of 16 and may
  sit a few percent off the nominal ratio: 16:9 has been reported as 1408×768,
  3.1 % off). A single-image edit and an animate keep their input image's
  ratio ("auto-detect from the input image" / "always derived from the input
  image", xAI's OpenAPI document), as do `video_edit` and `extend` their input
  clip's: the output must snap to the same offered ratio as the input;
- area, grok-imagine images only: 1k is about 1 MP (0.5–1.5), 1.5k about
  2.4 MP (1.2–3.4), 2k about 4 MP but up to ~5 MP (2.0–5.2; a live 2k 9:20
  image is 1440×3200, 4.6 MP);
- length: `video`, `animate` and `reference_video` last the asked duration,
  `video_edit` as long as its input (at most 8.7 s), `extend` its input plus
  the added seconds (each within one second).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from imaginebuild.capabilities import ratio_follows_input
from imaginebuild.errors import InvalidMedia
from imaginebuild.model import IMAGE_ASPECT_RATIOS, VIDEO_ASPECT_RATIOS, Asset, Kind, Media
from imaginebuild.providers.base import InputFile, OutputFile

if TYPE_CHECKING:
    from imaginebuild.mediaprobe import MediaInfo

# The API's clips may run a little short or long of the asked duration.
DURATION_TOLERANCE_S = 1.0
VIDEO_EDIT_MAX_S = 8.7  # the API edits at most this much of its input (docs.x.ai video overview)
# Pixel area per image resolution in megapixels (sides are rounded to multiples of 16).
IMAGE_AREA_MP = {"1k": (0.5, 1.5), "1.5k": (1.2, 3.4), "2k": (2.0, 5.2)}


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
            _check_image(asset, info, source)
        else:
            _check_video(asset, info, source)


def _source_clip(asset: Asset, inputs: Sequence[InputFile]) -> MediaInfo | None:
    """The input whose shape binds the output: the clip of a video_edit or extend, the one
    image of a single-image edit or an animate (probed); None when the asked ratio binds."""
    follows = ratio_follows_input(asset.kind, len(inputs))
    if not inputs or not (follows or asset.kind in (Kind.VIDEO_EDIT, Kind.EXTEND)):
        return None
    from imaginebuild.mediaprobe import probe

    return probe(inputs[0].path, inputs[0].media_type)


def _ratio(text: str | None) -> float | None:
    if not text or text == "auto":
        return None
    width, _, height = text.partition(":")
    return float(width) / float(height)


def nearest_ratio(ratio: float, offered: Sequence[str]) -> str:
    """The offered ratio (`W:H`) closest to `ratio`, measured on a log scale."""
    import math

    choices = [name for name in offered if name != "auto"]
    return min(choices, key=lambda name: abs(math.log(ratio / (_ratio(name) or 1.0))))


def _check_shape(
    asset: Asset, info: MediaInfo, wanted: float | None, offered: Sequence[str], what: str
) -> None:
    if wanted is None or not info.width or not info.height:
        return
    actual = info.width / info.height
    if nearest_ratio(actual, offered) != nearest_ratio(wanted, offered):
        asked = asset.aspect_ratio if asset.aspect_ratio and asset.aspect_ratio != "auto" else None
        raise InvalidMedia(
            f"{asset.name}: the {what} is {info.width}×{info.height}, "
            f"not the {f'asked {asked}' if asked else 'shape of its input'}"
        )


def _wanted_ratio(asset: Asset, source: MediaInfo | None) -> float | None:
    if source is not None:
        return source.width / source.height if source.width and source.height else None
    return _ratio(asset.aspect_ratio)


def _check_image(asset: Asset, info: MediaInfo, source: MediaInfo | None) -> None:
    _check_shape(asset, info, _wanted_ratio(asset, source), IMAGE_ASPECT_RATIOS, "image")
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
    _check_shape(asset, info, _wanted_ratio(asset, source), VIDEO_ASPECT_RATIOS, "video")
    clip = source if asset.kind in (Kind.VIDEO_EDIT, Kind.EXTEND) else None
    expected = _expected_seconds(asset, clip)
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
