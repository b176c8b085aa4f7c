"""The media prober: good files are described; junk of any kind is InvalidMedia, nothing else."""

from __future__ import annotations

import io
import random
from fractions import Fraction
from pathlib import Path

import av
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from imaginebuild.errors import InvalidMedia
from imaginebuild.mediaprobe import MediaInfo, mp4_framing_problem, probe, sniff


def picture_bytes(fmt: str, size: tuple[int, int] = (64, 48)) -> bytes:
    img = Image.new("RGB", size, (10, 20, 30))
    for x in range(size[0]):
        img.putpixel((x, x % size[1]), (x * 4 % 256, 200, 90))
    buffer = io.BytesIO()
    img.save(buffer, fmt)
    return buffer.getvalue()


def clip_bytes(tmp_path: Path, frames: int = 12, size: tuple[int, int] = (64, 48)) -> bytes:
    """A small H.264 MP4 written by PyAV directly (not by the local provider)."""
    path = tmp_path / "made.mp4"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=24)
        stream.width, stream.height = size
        stream.pix_fmt = "yuv420p"
        for n in range(frames):
            img = Image.new("RGB", size, (n * 20 % 256, 100, 200))
            frame = av.VideoFrame.from_image(img)
            frame.pts, frame.time_base = n, Fraction(1, 24)
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return path.read_bytes()


@pytest.fixture(scope="module")
def mp4(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    return clip_bytes(tmp_path_factory.mktemp("clip"))


def write(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


@pytest.mark.parametrize(
    ("fmt", "name", "media_type"),
    [("PNG", "a.png", "image/png"), ("JPEG", "a.jpg", "image/jpeg"),
     ("WEBP", "a.webp", "image/webp")],
)  # fmt: skip
def test_images_are_described(tmp_path: Path, fmt: str, name: str, media_type: str) -> None:
    info = probe(write(tmp_path, name, picture_bytes(fmt)))
    assert info == MediaInfo(media_type, 64, 48, codec=fmt.lower())


def test_a_clip_is_described(tmp_path: Path, mp4: bytes) -> None:
    info = probe(write(tmp_path, "a.mp4", mp4))
    assert (info.media_type, info.width, info.height, info.codec) == ("video/mp4", 64, 48, "h264")
    assert info.frames == 12
    assert info.fps == 24.0
    assert info.duration_s == pytest.approx(0.5)


def test_the_content_decides_when_the_name_has_no_suffix(tmp_path: Path, mp4: bytes) -> None:
    assert probe(write(tmp_path, "blob", mp4)).media_type == "video/mp4"
    assert probe(write(tmp_path, "blob2", picture_bytes("PNG"))).media_type == "image/png"


@pytest.mark.parametrize("name", ["empty.png", "empty.mp4", "empty"])
def test_an_empty_file_is_invalid(tmp_path: Path, name: str) -> None:
    with pytest.raises(InvalidMedia, match="empty"):
        probe(write(tmp_path, name, b""))


def test_a_missing_file_is_invalid(tmp_path: Path) -> None:
    with pytest.raises(InvalidMedia, match="cannot read"):
        probe(tmp_path / "nothing.png")


def test_random_bytes_are_invalid(tmp_path: Path) -> None:
    junk = random.Random(7).randbytes(5000)
    for name in ("junk.png", "junk.mp4", "junk"):
        with pytest.raises(InvalidMedia):
            probe(write(tmp_path, name, junk))


def test_a_png_named_mp4_is_invalid(tmp_path: Path) -> None:
    with pytest.raises(InvalidMedia, match="holds image/png, expected video/mp4"):
        probe(write(tmp_path, "clip.mp4", picture_bytes("PNG")))


def test_an_mp4_named_png_is_invalid(tmp_path: Path, mp4: bytes) -> None:
    with pytest.raises(InvalidMedia, match="expected image/png"):
        probe(write(tmp_path, "still.png", mp4))


def test_the_expected_type_wins_over_the_suffix(tmp_path: Path) -> None:
    path = write(tmp_path, "download", picture_bytes("JPEG"))
    assert probe(path, expected="image/jpeg").media_type == "image/jpeg"
    with pytest.raises(InvalidMedia):
        probe(path, expected="image/png")


@pytest.mark.parametrize("fraction", [0.02, 0.2, 0.5, 0.8, 0.97, 0.999])
def test_a_truncated_png_is_invalid(tmp_path: Path, fraction: float) -> None:
    data = picture_bytes("PNG", (300, 200))
    with pytest.raises(InvalidMedia):
        probe(write(tmp_path, "cut.png", data[: max(9, int(len(data) * fraction))]))


@pytest.mark.parametrize("fraction", [0.2, 0.5, 0.9])
def test_a_truncated_jpeg_is_invalid(tmp_path: Path, fraction: float) -> None:
    data = picture_bytes("JPEG", (300, 200))
    with pytest.raises(InvalidMedia):
        probe(write(tmp_path, "cut.jpg", data[: int(len(data) * fraction)]))


@pytest.mark.parametrize("fraction", [0.01, 0.1, 0.3, 0.5, 0.8, 0.95, 0.995])
def test_a_truncated_mp4_is_invalid(tmp_path: Path, mp4: bytes, fraction: float) -> None:
    with pytest.raises(InvalidMedia):
        probe(write(tmp_path, "cut.mp4", mp4[: max(12, int(len(mp4) * fraction))]))


def test_an_mp4_without_video_is_invalid(tmp_path: Path) -> None:
    path = tmp_path / "audio.mp4"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("aac", rate=44100)
        samples = av.AudioFrame(format="fltp", layout="mono", samples=1024)
        for plane in samples.planes:
            plane.update(bytes(plane.buffer_size))
        samples.sample_rate, samples.pts = 44100, 0
        container.mux(stream.encode(samples))
        container.mux(stream.encode(None))
    with pytest.raises(InvalidMedia, match="no video stream"):
        probe(path)


def test_sniff_knows_the_four_formats(mp4: bytes) -> None:
    assert sniff(picture_bytes("PNG")[:32]) == "image/png"
    assert sniff(picture_bytes("JPEG")[:32]) == "image/jpeg"
    assert sniff(picture_bytes("WEBP")[:32]) == "image/webp"
    assert sniff(mp4[:32]) == "video/mp4"
    assert sniff(b"GIF89a") is None


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_damaged_files_give_media_info_or_invalid_media_only(
    tmp_path: Path, mp4: bytes, data: st.DataObject
) -> None:
    source = data.draw(st.sampled_from(["png", "jpg", "mp4"]))
    original = mp4 if source == "mp4" else picture_bytes("PNG" if source == "png" else "JPEG")
    damaged = bytearray(original[: data.draw(st.integers(0, len(original)))])
    for _ in range(data.draw(st.integers(0, 4))):
        if damaged:
            damaged[data.draw(st.integers(0, len(damaged) - 1))] = data.draw(st.integers(0, 255))
    try:
        info = probe(write(tmp_path, f"damaged.{source}", bytes(damaged)))
    except InvalidMedia:
        return
    assert info.width > 0 and info.height > 0


def test_bytes_after_the_last_mp4_box_are_invalid(tmp_path: Path, mp4: bytes) -> None:
    with pytest.raises(InvalidMedia, match="torn box header"):
        probe(write(tmp_path, "tail.mp4", mp4 + b"\0\0\0"))


def test_box_framing_rules() -> None:
    assert mp4_framing_problem([(0, b"ftyp", 32), (32, b"moov", 68)], 100) is None
    assert "needs 120" in (mp4_framing_problem([(0, b"ftyp", 32), (32, b"mdat", 88)], 100) or "")
    assert "moov" in (mp4_framing_problem([(0, b"ftyp", 32), (32, b"mdat", 68)], 100) or "")
