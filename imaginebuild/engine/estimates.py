"""What an asset's call would cost and how long it would take, from the mediafile alone.

What the price depends on is read from the declaration: the number of input
images (every input of an image-taking kind is one; validation saw to it), the
resolution an edit or extension inherits from its input clip, and the declared
length of the clip that `video_edit` and `extend` bill per input second. Pure but
for the price file.

The expected time of a call is a rough guess, not a measurement: it only has to
rank steps (the scheduler starts the slowest chain first) and weigh the path
`plan --critical-path` shows. An image call takes about IMAGE_CALL_S; a video
call about VIDEO_CALL_BASE_S plus VIDEO_CALL_PER_S per second of clip (a clip of
unknown length counts as DEFAULT_VIDEO_S).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from imaginebuild.model import Asset, Kind, Media, Mediafile

if TYPE_CHECKING:
    from imaginebuild.engine.pricing import Estimate, PriceTable

IMAGE_CALL_S = 10.0
VIDEO_CALL_BASE_S = 60.0
VIDEO_CALL_PER_S = 15.0
DEFAULT_VIDEO_S = 8


def expected_seconds(asset: Asset) -> float:
    """Roughly how long a provider call for `asset` takes (videos are the slow ones)."""
    if asset.output_media is Media.IMAGE:
        return IMAGE_CALL_S
    return VIDEO_CALL_BASE_S + VIDEO_CALL_PER_S * (asset.duration or DEFAULT_VIDEO_S)


class Estimator:
    """Estimates in ticks for the assets of one mediafile (the price table loads once).

    `prices` gives the table to estimate with (the project passes the built-in table
    with the user's and the mediafile's figures over it); by default the built-in
    table with the mediafile's `pricing:` over it.
    """

    def __init__(
        self, mediafile: Mediafile, prices: Callable[[], PriceTable] | None = None
    ) -> None:
        self.mediafile = mediafile
        self._prices = prices
        self._table: PriceTable | None = None

    @property
    def table(self) -> PriceTable:
        """The price table the estimates use (loaded on first use)."""
        if self._table is None:
            from imaginebuild.engine.priceoverrides import load_price_table

            load = self._prices or (lambda: load_price_table(self.mediafile.pricing or None))
            self._table = load()
        return self._table

    def forget_table(self) -> None:
        """Load the price table again on next use (after its sources changed)."""
        self._table = None

    def ticks(self, asset: Asset) -> int:
        """What the xAI API would charge for `asset`, whichever provider builds it."""
        return self.estimate(asset).ticks

    def estimate(self, asset: Asset) -> Estimate:
        """The itemized estimate of `asset`'s call, with the figures it rests on."""
        from imaginebuild.engine.pricing import estimate

        upstream = asset.inputs[0].asset if asset.inputs else None
        params = asset.params()
        seconds = None
        if asset.kind in (Kind.VIDEO_EDIT, Kind.EXTEND) and upstream:
            inherited = self.video_resolution(upstream)
            if inherited is not None:
                params = {**params, "resolution": inherited}
            seconds = self.video_seconds(upstream)  # both bill the input clip's seconds
        return estimate(
            self.table,
            kind=asset.kind,
            model=asset.model,
            params=params,
            # validation made every input of an image-taking kind an image
            input_count=len(asset.inputs) if asset.kind.spec.input_media is Media.IMAGE else 0,
            input_video_seconds=seconds,
        )

    def video_resolution(self, name: str) -> str | None:
        """The resolution an asset's video has as declared (edits and extensions inherit it)."""
        asset = self.mediafile.assets[name]
        if asset.resolution is not None:
            return asset.resolution
        upstream = asset.inputs[0].asset if asset.inputs else None
        return self.video_resolution(upstream) if upstream else None

    def video_seconds(self, name: str) -> float | None:
        """The length of an asset's video as declared (extend adds to its input)."""
        asset = self.mediafile.assets[name]
        if asset.kind in (Kind.VIDEO, Kind.ANIMATE, Kind.REFERENCE_VIDEO):
            return float(asset.duration or 0)
        upstream = asset.inputs[0].asset if asset.inputs else None
        before = self.video_seconds(upstream) if upstream else None
        if asset.kind is Kind.EXTEND:
            return None if before is None else before + (asset.duration or 0)
        return before
