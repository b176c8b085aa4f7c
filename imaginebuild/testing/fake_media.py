"""Real media for the fake xAI server: PNG/JPEG/WebP images and H.264 MP4s from Pillow and PyAV."""

from __future__ import annotations

import hashlib
import io


def video_size(resolution: str, aspect: str) -> tuple[int, int]:
    """Pixel size of a generated video (480p 16:9 is 848x480), even numbers."""
    short = {"480p": 480, "720p": 720, "1080p": 1080}.get(resolution, 480)
    w_ratio, h_ratio = (float(x) for x in aspect.split(":"))
    if w_ratio >= h_ratio:
        width, height = short * w_ratio / h_ratio, float(short)
    else:
        width, height = float(short), short * h_ratio / w_ratio
    return round(width / 16) * 16, round(height / 2) * 2


def scaled(size: tuple[int, int], full: bool, longest: int) -> tuple[int, int]:
    """`size` itself when `full`, else shrunk so its longest side is `longest` (even numbers)."""
    if full:
        return size
    factor = longest / max(size)
    return max(2, round(size[0] * factor / 2) * 2), max(2, round(size[1] * factor / 2) * 2)


def color_for(seed: str) -> tuple[int, int, int]:
    """A colour that depends only on `seed`."""
    digest = hashlib.sha256(seed.encode()).digest()
    return digest[0], digest[1], digest[2]


def render_image(size: tuple[int, int], color: tuple[int, int, int], fmt: str) -> bytes:
    """A real image file of `size` in `fmt` (png, jpeg, webp)."""
    from PIL import Image, ImageDraw

    image = Image.new("RGB", size, color)
    draw = ImageDraw.Draw(image)
    draw.rectangle((size[0] // 4, size[1] // 4, size[0] // 2, size[1] // 2), fill=(255, 255, 255))
    out = io.BytesIO()
    image.save(out, format={"jpeg": "JPEG", "webp": "WEBP"}.get(fmt, "PNG"))
    return out.getvalue()


def render_mp4(size: tuple[int, int], seconds: int, color: tuple[int, int, int]) -> bytes:
    """A real H.264 MP4 of `seconds` seconds (8 fps, a moving bar so frames differ)."""
    import av
    from PIL import Image, ImageDraw

    fps = 8
    out = io.BytesIO()
    with av.open(out, mode="w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height = size
        stream.pix_fmt = "yuv420p"
        stream.options = {"preset": "ultrafast"}
        for index in range(seconds * fps):
            image = Image.new("RGB", size, color)
            x = (index * 4) % size[0]
            ImageDraw.Draw(image).rectangle((x, 0, x + 3, size[1]), fill=(255, 255, 255))
            frame = av.VideoFrame.from_image(image)  # type: ignore[no-untyped-call]  # PyAV leaves it unannotated
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return out.getvalue()


def mp4_seconds(data: bytes) -> int | None:
    """The whole-second duration of an MP4's bytes, or None when they do not decode."""
    import av

    try:
        with av.open(io.BytesIO(data)) as container:
            if container.duration is None:
                return None
            return max(1, round(int(container.duration) / 1_000_000))
    except (av.FFmpegError, ValueError, OSError):
        return None
