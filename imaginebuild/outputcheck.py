"""Checks a provider's outputs before they are recorded: right count, right media, decodable.

A result that is empty, truncated, of the wrong media or the wrong length is
never stored, locally or remotely (cache poisoning would pin it forever).
"""

from __future__ import annotations

from collections.abc import Sequence

from imaginebuild.errors import InvalidMedia
from imaginebuild.model import Asset, Kind, Media
from imaginebuild.providers.base import OutputFile

# The API's clips may run a little short or long of the asked duration.
DURATION_TOLERANCE_S = 1.0


def check_outputs(asset: Asset, outputs: Sequence[OutputFile]) -> None:
    """Raise InvalidMedia unless `outputs` are what `asset` asked for and all decode."""
    from imaginebuild.mediaprobe import probe  # media libraries load only when building

    if len(outputs) != asset.count:
        raise InvalidMedia(f"{asset.name}: expected {asset.count} output(s), got {len(outputs)}")
    family = asset.output_media.value
    for out in outputs:
        if not out.media_type.startswith(family + "/"):
            raise InvalidMedia(f"{asset.name}: expected {family} output, got {out.media_type}")
        info = probe(out.path, out.media_type)
        if not info.media_type.startswith(family + "/"):
            raise InvalidMedia(f"{asset.name}: output decodes as {info.media_type}, not {family}")
        if asset.output_media is Media.VIDEO:
            _check_duration(asset, info.duration_s)


def _check_duration(asset: Asset, seconds: float | None) -> None:
    if seconds is None or seconds <= 0:
        raise InvalidMedia(f"{asset.name}: the video has no duration")
    fixed_length = asset.kind in (Kind.VIDEO, Kind.ANIMATE, Kind.REFERENCE_VIDEO)
    if fixed_length and asset.duration and abs(seconds - asset.duration) > DURATION_TOLERANCE_S:
        raise InvalidMedia(
            f"{asset.name}: the video lasts {seconds:.2f} s, {asset.duration} s were asked"
        )
    too_short = asset.duration is not None and seconds < asset.duration - DURATION_TOLERANCE_S
    if asset.kind is Kind.EXTEND and too_short:
        raise InvalidMedia(
            f"{asset.name}: the extended video lasts {seconds:.2f} s, "
            f"shorter than the {asset.duration} s it should add"
        )
