"""What the fake xAI server accepts and how big its answers are, from xAI's own spec.

Facts from xAI's OpenAPI 3.1 document (xai-org/xai-sdk-ts spec/openapi.json
@ 41e766acb9160402c47301beca97764ace073ffc), named by schema beside each one;
sizes the spec does not give come from reported live answers (named too).
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from imaginebuild.testing.fake_faults import Route

# ImageAspectRatio, ImageResolution, VideoAspectRatio, VideoResolution.
IMAGE_ASPECTS = (
    "1:1", "3:4", "4:3", "9:16", "16:9", "2:3", "3:2",
    "9:19.5", "19.5:9", "9:20", "20:9", "1:2", "2:1", "21:9", "5:2", "auto",
)  # fmt: skip
IMAGE_RESOLUTIONS = ("1k", "1.5k", "2k")
VIDEO_ASPECTS = ("1:1", "16:9", "9:16", "4:3", "3:4", "3:2", "2:3")
VIDEO_RESOLUTIONS = ("480p", "720p", "1080p")
# 1080p: grok-imagine-video-1.5 only, text- and image-to-video (Vercel AI SDK xai 3.0.121).
MODELS_WITH_1080P = frozenset({"grok-imagine-video-1.5"})
# docs.x.ai reference-to-video: at most 10 s and 720p with reference images; the API's
# error text for more images: "Too many reference images: 8. Maximum allowed is 7."
REFERENCE_VIDEO_MAX_S = 10
MAX_REFERENCE_IMAGES = 7

# The properties of each request schema: GenerateImageRequest, EditImageRequest,
# GenerateVideoRequest, EditVideoRequest, ExtendVideoRequest.
ALLOWED_FIELDS: Mapping[Route, frozenset[str]] = {
    Route.IMAGES: frozenset(
        {"prompt", "model", "n", "response_format", "aspect_ratio", "resolution", "deferred"}
        | {"output", "storage_options", "user"}
    ),
    Route.EDITS: frozenset(
        {"prompt", "model", "n", "response_format", "aspect_ratio", "resolution", "deferred"}
        | {"output", "storage_options", "user", "image", "images"}
    ),
    Route.VIDEOS: frozenset(
        {"prompt", "model", "duration", "aspect_ratio", "resolution", "image", "user"}
        | {"reference_images", "reference_audios", "keyframes", "output", "storage_options"}
    ),
    Route.VIDEO_EDITS: frozenset({"prompt", "model", "video", "user", "output", "storage_options"}),
    Route.EXTENSIONS: frozenset({"prompt", "model", "video", "duration", "output"})
    | frozenset({"storage_options"}),
}
# ImageUrl and VideoUrl: `url` or `file_id`, nothing else.
MEDIA_URL_FIELDS = frozenset({"url", "file_id"})

# Sizes reported from live answers, where they differ from the rounded-area rule.
REPORTED_IMAGE_SIZES: Mapping[tuple[str, str], tuple[int, int]] = {
    ("2k", "9:20"): (1440, 3200),  # a live 2k 9:20 image (4.6 MP)
    ("1k", "16:9"): (1408, 768),  # a third-party size table (3.1 % off 16:9; unconfirmed)
}
_AREA = {"1k": 1024 * 1024, "1.5k": 1536 * 1536, "2k": 2048 * 2048}


def ratio_of(text: str) -> float:
    """`W:H` as a number."""
    width, _, height = text.partition(":")
    return float(width) / float(height)


def nearest_aspect(width: int, height: int, offered: tuple[str, ...]) -> str:
    """The offered ratio closest to a width and height (how the API keeps an input's shape)."""
    actual = width / max(1, height)
    choices = [name for name in offered if name != "auto"]
    return min(choices, key=lambda name: abs(math.log(actual / ratio_of(name))))


def image_size(resolution: str, aspect: str) -> tuple[int, int]:
    """Pixel size of a generated image: a reported live size where one is known, else the
    resolution's area (1k ≈ 1 MP, 1.5k ≈ 2.4 MP, 2k ≈ 4 MP) at the ratio, sides rounded to 16."""
    if aspect == "auto":
        aspect = "1:1"
    reported = REPORTED_IMAGE_SIZES.get((resolution, aspect))
    if reported is not None:
        return reported
    area = _AREA.get(resolution, _AREA["1k"])
    ratio = ratio_of(aspect)
    width = math.sqrt(area * ratio)
    height = width / ratio
    return max(16, round(width / 16) * 16), max(16, round(height / 16) * 16)
