"""Output sizes per resolution and aspect ratio, as the media API returns them (pure).

Images: `1k` ≈ 1 megapixel (1024² area), `2k` ≈ 4 megapixels (2048² area); each side
is the exact side for that area and ratio, rounded to the nearest multiple of 16.

    ratio    1k           2k
    1:1      1024×1024    2048×2048
    16:9     1360×768     2736×1536
    9:16     768×1360     1536×2736
    4:3      1184×880     2368×1776
    3:4      880×1184     1776×2368
    3:2      1248×832     2512×1680
    2:3      832×1248     1680×2512
    2:1      1456×720     2896×1456
    1:2      720×1456     1456×2896
    20:9     1520×688     3056×1376
    9:20     688×1520     1376×3056
    19.5:9   1504×688     3008×1392
    9:19.5   688×1504     1392×3008

`auto` takes the ratio of an edit's first input (1:1 when there is none).

Videos: the API's fixed frame sizes; 720p is 480p × 1.5 (the API's 1280×720 for 16:9).
Inputs of `video_edit` and `extend` keep their own size, capped at 720 on the short
side and rounded to even sides (H.264 4:2:0 needs them even).
"""

from __future__ import annotations

import math

IMAGE_AREAS = {"1k": 1024 * 1024, "1.5k": 1536 * 1536, "2k": 2048 * 2048}
DEFAULT_IMAGE_RESOLUTION = "1k"
DEFAULT_VIDEO_RESOLUTION = "480p"
DEFAULT_VIDEO_ASPECT = "16:9"
FPS = 24
MAX_SHORT_SIDE = 720

VIDEO_SIZES: dict[str, dict[str, tuple[int, int]]] = {
    "480p": {
        "16:9": (848, 480), "9:16": (480, 848), "4:3": (640, 480), "3:4": (480, 640),
        "3:2": (720, 480), "2:3": (480, 720), "1:1": (480, 480),
    },
    "720p": {
        "16:9": (1280, 720), "9:16": (720, 1280), "4:3": (960, 720), "3:4": (720, 960),
        "3:2": (1080, 720), "2:3": (720, 1080), "1:1": (720, 720),
    },
    "1080p": {
        "16:9": (1920, 1080), "9:16": (1080, 1920), "4:3": (1440, 1080), "3:4": (1080, 1440),
        "3:2": (1620, 1080), "2:3": (1080, 1620), "1:1": (1080, 1080),
    },
}  # fmt: skip


def parse_ratio(aspect_ratio: str) -> float:
    """Width over height of an API ratio string such as `16:9` or `9:19.5`."""
    width, _, height = aspect_ratio.partition(":")
    return float(width) / float(height)


def _round16(value: float) -> int:
    return max(16, round(value / 16) * 16)


def image_size_for_ratio(resolution: str | None, ratio: float) -> tuple[int, int]:
    """The image size for a resolution and a width/height ratio (any ratio, for `auto`)."""
    area = IMAGE_AREAS[resolution or DEFAULT_IMAGE_RESOLUTION]
    return _round16(math.sqrt(area * ratio)), _round16(math.sqrt(area / ratio))


def image_size(
    resolution: str | None, aspect_ratio: str | None, input_size: tuple[int, int] | None = None
) -> tuple[int, int]:
    """The image size the API returns; `auto`/None follows `input_size`, else 1:1."""
    if aspect_ratio is None or aspect_ratio == "auto":
        ratio = input_size[0] / input_size[1] if input_size else 1.0
    else:
        ratio = parse_ratio(aspect_ratio)
    return image_size_for_ratio(resolution, ratio)


def nearest_video_aspect(width: int, height: int) -> str:
    """The video aspect ratio closest to a picture's shape (for `animate` without one)."""
    shape = math.log(width / height)
    return min(VIDEO_SIZES["480p"], key=lambda name: abs(math.log(parse_ratio(name)) - shape))


def video_size(resolution: str | None, aspect_ratio: str | None) -> tuple[int, int]:
    """The frame size of a generated video (defaults: 480p, 16:9)."""
    sizes = VIDEO_SIZES[resolution or DEFAULT_VIDEO_RESOLUTION]
    return sizes[aspect_ratio or DEFAULT_VIDEO_ASPECT]


def inherited_video_size(width: int, height: int) -> tuple[int, int]:
    """The output size for an input clip: its own, capped at 720p, with even sides."""
    scale = min(1.0, MAX_SHORT_SIDE / min(width, height))
    return max(2, round(width * scale / 2) * 2), max(2, round(height * scale / 2) * 2)


def frame_count(seconds: float) -> int:
    """How many frames at 24 fps make `seconds` (at least one)."""
    return max(1, round(seconds * FPS))
