"""Verify that a file is the media it claims to be by decoding all of it.

`probe` reads PNG, JPEG and WebP through Pillow (`verify`, then a full `load`)
and MP4 through PyAV (the container opens, has a video stream, every frame the
index promises decodes). Anything empty, truncated, mislabelled or undecodable
raises `InvalidMedia`, never a foreign error: the engine and the providers call it
before they record an output as a success. Pillow and PyAV are imported only
when a file of their kind is probed.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import BinaryIO

from imaginebuild.errors import InvalidMedia

PNG, JPEG, WEBP, MP4 = "image/png", "image/jpeg", "image/webp", "video/mp4"
IMAGE_TYPES = (PNG, JPEG, WEBP)
_BY_SUFFIX = {".png": PNG, ".jpg": JPEG, ".jpeg": JPEG, ".webp": WEBP, ".mp4": MP4}
_PIL_FORMATS = {"PNG": PNG, "JPEG": JPEG, "WEBP": WEBP}


@dataclass(frozen=True)
class MediaInfo:
    """What a verified media file holds; video-only fields are None for images."""

    media_type: str
    width: int
    height: int
    frames: int | None = None
    duration_s: float | None = None
    fps: float | None = None
    codec: str | None = None


def media_type_for(path: Path) -> str | None:
    """The media type a file's name announces (.png, .jpg/.jpeg, .webp, .mp4), or None."""
    return _BY_SUFFIX.get(path.suffix.lower())


def suffix_for(media_type: str) -> str:
    """The file suffix for a media type (`.bin` for one imaginebuild does not make)."""
    return {PNG: ".png", JPEG: ".jpg", WEBP: ".webp", MP4: ".mp4"}.get(media_type, ".bin")


def sniff_file(path: Path) -> str | None:
    """The media type a file's first bytes announce, or None (raises OSError)."""
    with path.open("rb") as f:
        return sniff(f.read(16))


def sniff(head: bytes) -> str | None:
    """The media type the first bytes of a file announce, or None (pure)."""
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return PNG
    if head.startswith(b"\xff\xd8\xff"):
        return JPEG
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return WEBP
    if head[4:8] == b"ftyp":
        return MP4
    return None


def probe(path: Path, expected: str | None = None) -> MediaInfo:
    """Decode `path` completely and describe it, or raise InvalidMedia.

    `expected` is the media type the caller wants; without it the file's suffix
    (.png, .jpg, .webp, .mp4) sets it, so a PNG named `.mp4` is rejected.
    """
    try:
        with path.open("rb") as handle:
            head = handle.read(32)
    except OSError as error:
        raise InvalidMedia(f"{path}: cannot read: {error.strerror or error}") from error
    if not head:
        raise InvalidMedia(f"{path}: empty file")
    found = sniff(head)
    wanted = expected or media_type_for(path)
    if found is None:
        raise InvalidMedia(f"{path}: not a PNG, JPEG, WebP or MP4 file")
    if wanted is not None and found != wanted:
        raise InvalidMedia(f"{path}: holds {found}, expected {wanted}")
    problem = _read_structure(path, found, head)
    if problem:
        raise InvalidMedia(f"{path}: {problem}")
    if found == MP4:
        return _probe_video(path)
    return _probe_image(path, found)


def _read_structure(path: Path, media_type: str, head: bytes) -> str | None:
    """Check the file's framing (decoders forgive a missing end); return the problem, if any."""
    try:
        size = path.stat().st_size
        with path.open("rb") as handle:
            if media_type == MP4:
                return mp4_framing_problem(_box_headers(handle, size), size)
            handle.seek(max(0, size - _TAIL))
            return tail_problem(media_type, head, handle.read(), size)
    except OSError as error:
        return f"cannot read: {error.strerror or error}"


_TAIL = 4096
# Far above any image the API makes or takes (its largest, 2k, is about 4 MP), far below
# what would exhaust memory: an 8-byte-per-pixel decode of this is 512 MiB at most.
MAX_PIXELS = 64 * 1024 * 1024


def tail_problem(media_type: str, head: bytes, tail: bytes, size: int) -> str | None:
    """Whether an image file ends where its format says it does (pure)."""
    if media_type == PNG and b"IEND\xaeB`\x82" not in tail:
        return "truncated: the PNG has no IEND chunk"
    if media_type == JPEG and b"\xff\xd9" not in tail:
        return "truncated: the JPEG has no end-of-image marker"
    if media_type == WEBP and int.from_bytes(head[4:8], "little") + 8 > size:
        return "truncated: the WebP is shorter than its RIFF header says"
    return None


def _box_headers(handle: BinaryIO, size: int) -> list[tuple[int, bytes, int]]:
    """(offset, type, declared size) of each top-level MP4 box; stops at a torn header."""
    boxes: list[tuple[int, bytes, int]] = []
    offset = 0
    while offset < size:
        handle.seek(offset)
        header = handle.read(16)
        if len(header) < 8:
            boxes.append((offset, b"", -1))
            break
        length, kind = int.from_bytes(header[:4], "big"), header[4:8]
        if length == 1:
            length = int.from_bytes(header[8:16], "big") if len(header) == 16 else -1
        elif length == 0:
            length = size - offset  # the last box runs to the end of the file
        boxes.append((offset, kind, length))
        if length < 8:
            break
        offset += length
    return boxes


def mp4_framing_problem(boxes: list[tuple[int, bytes, int]], size: int) -> str | None:
    """Whether top-level MP4 boxes tile the file exactly, with a `moov` among them (pure)."""
    for offset, kind, length in boxes:
        if length < 8:
            return f"truncated: a torn box header at byte {offset}"
        if offset + length > size:
            name = kind.decode("latin-1")
            return f"truncated: box {name!r} needs {offset + length} bytes, the file has {size}"
    if not any(kind == b"moov" for _, kind, _ in boxes):
        return "no 'moov' box: the MP4 index is missing"
    return None


def _probe_image(path: Path, media_type: str) -> MediaInfo:
    from PIL import Image

    try:
        with Image.open(path) as img:
            width, height = img.size  # from the header: nothing is decoded yet
            if width * height > MAX_PIXELS:
                raise InvalidMedia(
                    f"{path}: {width}×{height} pixels is more than the {MAX_PIXELS:,} an "
                    "image may have (a decompression bomb?); not decoded"
                )
            img.verify()
        with Image.open(path) as img:
            img.load()
            info = MediaInfo(_PIL_FORMATS.get(img.format or "", media_type), *img.size)
            codec = (img.format or "").lower() or None
    except InvalidMedia:
        raise
    except Exception as error:  # Pillow raises OSError, SyntaxError, ValueError, zlib.error…
        raise InvalidMedia(f"{path}: image does not decode: {error}") from error
    if info.media_type != media_type:
        raise InvalidMedia(f"{path}: decodes as {info.media_type}, expected {media_type}")
    return MediaInfo(media_type, info.width, info.height, codec=codec)


def _probe_video(path: Path) -> MediaInfo:
    import av

    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise InvalidMedia(f"{path}: no video stream")
            stream = container.streams.video[0]
            promised = stream.frames
            times = [frame.time for frame in container.decode(stream)]
            rate = stream.average_rate
            codec = stream.codec_context.name
            width, height = stream.codec_context.width, stream.codec_context.height
    except InvalidMedia:
        raise
    except Exception as error:  # PyAV raises FFmpegError subclasses, ValueError, OSError…
        raise InvalidMedia(f"{path}: video does not decode: {error}") from error
    if not times:
        raise InvalidMedia(f"{path}: no video frame decodes")
    if promised and len(times) < promised:
        raise InvalidMedia(f"{path}: truncated: {len(times)} of {promised} frames decode")
    fps = float(rate) if rate else None
    duration = _duration(times, rate)
    return MediaInfo(MP4, width, height, len(times), duration, fps, codec)


def _duration(times: list[float | None], rate: Fraction | None) -> float | None:
    """First frame to the end of the last, in seconds (None without timestamps)."""
    known = [t for t in times if t is not None]
    if not known:
        return None
    period = float(1 / rate) if rate else 0.0
    return max(known) - min(known) + period
