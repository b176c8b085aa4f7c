"""What an asset's call would cost, from the mediafile alone (pure but for the price file).

What the price depends on is read from the declaration: the number of input
images (every input of an image-taking kind is one; validation saw to it), the
resolution an edit or extension inherits from its input clip, and the declared
length of a clip that `video_edit` bills per second.
"""

from __future__ import annotations

from typing import Any

from imaginebuild.model import Asset, Kind, Media, Mediafile


class Estimator:
    """Estimates in ticks for the assets of one mediafile (the price table loads once)."""

    def __init__(self, mediafile: Mediafile) -> None:
        self.mediafile = mediafile
        self._table: Any = None

    def ticks(self, asset: Asset) -> int:
        """What the xAI API would charge for `asset`, whichever provider builds it."""
        from imaginebuild.engine.pricing import estimate, load_price_table

        if self._table is None:
            self._table = load_price_table(self.mediafile.pricing or None)
        upstream = asset.inputs[0].asset if asset.inputs else None
        params = asset.params()
        seconds = None
        if asset.kind in (Kind.VIDEO_EDIT, Kind.EXTEND) and upstream:
            inherited = self.video_resolution(upstream)
            if inherited is not None:
                params = {**params, "resolution": inherited}
            if asset.kind is Kind.VIDEO_EDIT:
                seconds = self.video_seconds(upstream)
        return estimate(
            self._table,
            kind=asset.kind,
            model=asset.model,
            params=params,
            # validation made every input of an image-taking kind an image
            input_count=len(asset.inputs) if asset.kind.spec.input_media is Media.IMAGE else 0,
            input_video_seconds=seconds,
        ).ticks

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
