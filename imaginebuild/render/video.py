"""H.264 MP4 through PyAV: encode Pillow frames, decode clips at 24 fps, join without re-encoding.

Determinism: x264 runs on one thread (its output depends on the thread count), without
macroblock-tree rate control (which varied between runs on identical frames), and
RGB↔YUV conversion is done by Pillow rather than swscale, whose SIMD paths are not
promised to be bit-exact across CPUs. x264 itself is bit-exact across CPUs, so the
same frames give the same bytes on every machine with the same PyAV build.

Output: yuv420p (BT.601, limited range, tagged), 24 fps, no audio, moov at the front.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from types import TracebackType
from typing import cast

import av
from PIL import Image

from imaginebuild.providers.local.geometry import FPS

CODEC = "libx264"
PRESET = "veryfast"
CRF = "20"
# x264's macroblock-tree rate control gave different bytes for the same frames from run
# to run (seen at 480×480, even on one thread); without it every run is identical.
X264_PARAMS = "mbtree=0"
PIX_FMT = "yuv420p"
CONTAINER_OPTIONS = {"movflags": "+faststart"}
_BT601 = 6  # SMPTE 170M: colorspace, primaries and transfer all use the value 6
_LIMITED = 1  # AVCOL_RANGE_MPEG

# Pillow's YCbCr is full range (JPEG); H.264 players expect limited range.
_TO_LIMITED = [16 + round(v * 219 / 255) for v in range(256)] + 2 * [
    16 + round(v * 224 / 255) for v in range(256)
]
_Y_TO_FULL = [min(255, max(0, round((v - 16) * 255 / 219))) for v in range(256)]
_C_TO_FULL = [min(255, max(0, round((v - 16) * 255 / 224))) for v in range(256)]


def rgb_to_frame(img: Image.Image) -> av.VideoFrame:
    """A yuv420p frame of a Pillow RGB picture (even sides), converted by Pillow."""
    width, height = img.size
    ycc = img.convert("YCbCr").point(_TO_LIMITED)
    y, cb, cr = ycc.split()
    frame = av.VideoFrame(width, height, PIX_FMT)
    for plane, band in zip(frame.planes, (y, cb.reduce(2), cr.reduce(2)), strict=True):
        _fill_plane(plane, band)
    return frame


def _fill_plane(plane: av.video.plane.VideoPlane, band: Image.Image) -> None:
    data = band.tobytes()
    if plane.line_size == band.width:
        plane.update(data)
        return
    padding = b"\0" * (plane.line_size - band.width)
    plane.update(
        b"".join(
            data[row * band.width : (row + 1) * band.width] + padding for row in range(band.height)
        )
    )


def _plane_image(plane: av.video.plane.VideoPlane, width: int, height: int) -> Image.Image:
    return Image.frombuffer("L", (width, height), bytes(plane), "raw", "L", plane.line_size, 1)


def frame_to_rgb(frame: av.VideoFrame) -> Image.Image:
    """A Pillow RGB picture of a decoded frame, converted by Pillow where the format allows."""
    if frame.format.name not in ("yuv420p", "yuvj420p"):
        frame = frame.reformat(format="yuv420p")
    width, height = frame.width, frame.height
    cw, ch = (width + 1) // 2, (height + 1) // 2
    y, cb, cr = (
        _plane_image(p, w, h)
        for p, (w, h) in zip(frame.planes, ((width, height), (cw, ch), (cw, ch)), strict=True)
    )
    if frame.format.name == "yuv420p":
        y, cb, cr = y.point(_Y_TO_FULL), cb.point(_C_TO_FULL), cr.point(_C_TO_FULL)
    size = (width, height)
    chroma = (
        cb.resize(size, Image.Resampling.BILINEAR),
        cr.resize(size, Image.Resampling.BILINEAR),
    )
    return Image.merge("YCbCr", (y, *chroma)).convert("RGB")


class Encoder:
    """Writes Pillow frames as a 24 fps H.264 MP4 at `path` (use as a context manager)."""

    def __init__(self, path: Path, size: tuple[int, int]) -> None:
        self.size = size
        self.frames = 0
        self._container = av.open(str(path), "w", format="mp4", options=CONTAINER_OPTIONS)
        stream = cast(
            "av.VideoStream",
            self._container.add_stream(
                CODEC, rate=FPS, options={"preset": PRESET, "crf": CRF, "x264-params": X264_PARAMS}
            ),
        )
        stream.width, stream.height = size
        stream.pix_fmt = PIX_FMT
        context = stream.codec_context
        context.thread_count = 1  # encoded bytes depend on the thread count
        context.time_base = Fraction(1, FPS)
        context.colorspace = context.color_primaries = context.color_trc = _BT601
        context.color_range = _LIMITED
        self._stream = stream

    def write(self, img: Image.Image) -> None:
        """Append one frame (resized to the clip's size if it differs)."""
        if img.size != self.size:
            img = img.resize(self.size, Image.Resampling.BILINEAR)
        frame = rgb_to_frame(img.convert("RGB"))
        frame.pts = self.frames
        frame.time_base = Fraction(1, FPS)
        self._container.mux(self._stream.encode(frame))
        self.frames += 1

    def close(self) -> None:
        """Flush the encoder and finish the file."""
        self._container.mux(self._stream.encode(None))
        self._container.close()

    def __enter__(self) -> Encoder:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        if kind is None:
            self.close()
        else:
            self._container.close()


def encode(path: Path, size: tuple[int, int], frames: Iterable[Image.Image]) -> int:
    """Encode `frames` into an MP4 at `path`; return how many were written."""
    with Encoder(path, size) as encoder:
        for img in frames:
            encoder.write(img)
    return encoder.frames


@dataclass(frozen=True)
class ClipInfo:
    """What a clip is, as far as joining and resampling need to know."""

    width: int
    height: int
    frames: int  # decoded frames
    duration: Fraction  # seconds, first frame to end of last
    last: Image.Image  # the last picture, for a continuation


def _decoded(path: Path) -> Iterator[tuple[Fraction, av.VideoFrame]]:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.thread_count = 1
        base = stream.time_base or Fraction(1, FPS)
        for frame in container.decode(stream):
            pts = frame.pts if frame.pts is not None else 0
            yield Fraction(pts) * base, frame


def _frame_period(path: Path) -> Fraction:
    with av.open(str(path)) as container:
        rate = container.streams.video[0].average_rate
        return 1 / Fraction(rate) if rate else Fraction(1, FPS)


def inspect(path: Path) -> ClipInfo:
    """Decode the whole clip once: its frame size, frame count, length and last picture.

    Every frame is decoded (no seeking shortcut), so `last` really is the last one.
    """
    times: list[Fraction] = []
    last: av.VideoFrame | None = None
    for time, frame in _decoded(path):
        times.append(time)
        last = frame
    if last is None:
        raise ValueError(f"{path} has no video frames")
    duration = max(times) - min(times) + _frame_period(path)
    return ClipInfo(last.width, last.height, len(times), duration, frame_to_rgb(last))


def frames_at_24fps(path: Path, total: int) -> Iterator[Image.Image]:
    """`total` pictures sampled from the clip at 24 fps (the frame showing at each tick)."""
    current: Image.Image | None = None
    emitted, start = 0, None
    for time, frame in _decoded(path):
        start = time if start is None else start
        while current is not None and emitted < total and Fraction(emitted, FPS) < time - start:
            yield current
            emitted += 1
        current = frame_to_rgb(frame)
    while current is not None and emitted < total:
        yield current
        emitted += 1


def join(first: Path, second: Path, out: Path) -> bool:
    """Append `second` to `first` into `out` without re-encoding, if their streams match.

    Returns False (writing nothing) when the codec parameters differ; the caller
    then re-encodes.
    """
    with av.open(str(first)) as a, av.open(str(second)) as b:
        sa, sb = a.streams.video[0], b.streams.video[0]
        same = (
            len(a.streams) == len(b.streams) == 1
            and sa.codec_context.extradata == sb.codec_context.extradata
            and (sa.codec_context.width, sa.codec_context.height)
            == (sb.codec_context.width, sb.codec_context.height)
            and sa.time_base == sb.time_base
            and sa.average_rate == sb.average_rate
        )
        if not same:
            return False
        with av.open(str(out), "w", format="mp4", options=CONTAINER_OPTIONS) as output:
            stream = output.add_stream_from_template(sa)
            offset = _remux(a, sa, stream, output, 0)
            _remux(b, sb, stream, output, offset)
    return True


def _remux(
    source: av.container.InputContainer,
    src: av.video.stream.VideoStream,
    dst: av.video.stream.VideoStream,
    output: av.container.OutputContainer,
    offset: int,
) -> int:
    """Copy every packet of `src` into `dst` shifted by `offset`; return the end time."""
    end = offset
    for packet in source.demux(src):
        if packet.dts is None:
            continue  # the demuxer's empty flush packet
        packet.pts = (packet.pts or 0) + offset
        packet.dts += offset
        end = max(end, packet.pts + (packet.duration or 0))
        packet.stream = dst
        output.mux(packet)
    return end
