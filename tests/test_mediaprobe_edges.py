"""The media prober at the edges its framing checks guard: a WebP cut shorter than its RIFF
header says, a PNG whose header claims more pixels than any image may have (refused before
a byte is decoded), and MP4 boxes with a 64-bit size, whole or torn.
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import pytest
from test_mediaprobe import mp4, picture_bytes, write

from imaginebuild.errors import InvalidMedia
from imaginebuild.mediaprobe import MAX_PIXELS, probe

__all__ = ["mp4"]  # the fixture, shared with test_mediaprobe


def test_a_webp_shorter_than_its_riff_header_says_is_truncated(tmp_path: Path) -> None:
    whole = picture_bytes("WEBP")
    assert probe(write(tmp_path, "whole.webp", whole)).media_type == "image/webp"
    with pytest.raises(InvalidMedia, match="truncated: the WebP is shorter than its RIFF header"):
        probe(write(tmp_path, "cut.webp", whole[:-16]))


def png_claiming(width: int, height: int) -> bytes:
    """A small valid PNG whose IHDR (with a correct CRC) claims `width`×`height`."""
    data = bytearray(picture_bytes("PNG"))
    assert data[12:16] == b"IHDR"
    data[16:24] = struct.pack(">II", width, height)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
    return bytes(data)


def test_a_png_claiming_more_pixels_than_any_image_may_have_is_not_decoded(
    tmp_path: Path,
) -> None:
    side = 8193  # 8193 × 8193 is just over MAX_PIXELS (64 Mi)
    assert side * side > MAX_PIXELS
    with pytest.raises(InvalidMedia, match=r"8193×8193 pixels is more than the 67,108,864"):
        probe(write(tmp_path, "bomb.png", png_claiming(side, side)))


def test_a_64_bit_box_size_is_read_and_a_torn_one_is_refused(tmp_path: Path, mp4: bytes) -> None:
    # A free box written with the 64-bit size form (size field 1, then the real size).
    large_free = struct.pack(">I4sQ", 1, b"free", 24) + bytes(8)
    assert probe(write(tmp_path, "large.mp4", mp4 + large_free)).frames == 12
    torn = struct.pack(">I4s", 1, b"free") + bytes(4)  # the 64-bit size is cut short
    with pytest.raises(InvalidMedia, match="torn box header"):
        probe(write(tmp_path, "torn.mp4", mp4 + torn))
