"""What the fake xAI server checks in a request body, as the API does: required and known
fields, ranges and enums, media given as data URIs (decoded and measured), and the clip a
video request asks for; a bad body raises `Reply` with the API's status and message."""

from __future__ import annotations

import base64
import binascii
import io
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from imaginebuild.testing.fake_faults import Route
from imaginebuild.testing.fake_media import mp4_seconds
from imaginebuild.testing.fake_spec import (
    ALLOWED_FIELDS,
    MAX_REFERENCE_IMAGES,
    MEDIA_URL_FIELDS,
    MODELS_WITH_1080P,
    REFERENCE_VIDEO_MAX_S,
    VIDEO_ASPECTS,
    nearest_aspect,
)


class Reply(Exception):
    """Raised inside a handler to answer with an xAI error body."""

    def __init__(self, status: int, message: str, code: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code


def require_prompt(body: Mapping[str, object]) -> None:
    """A generation needs a non-empty prompt (400 otherwise)."""
    prompt = body.get("prompt")
    if prompt is None:
        raise Reply(422, "missing field `prompt`")
    if not isinstance(prompt, str) or not prompt.strip():
        raise Reply(400, "`prompt` must be a non-empty string")


def check_fields(route: Route, body: Mapping[str, object]) -> None:
    """Every field of `body` is one the route accepts (400 names the unknown ones)."""
    unknown = sorted(set(body) - ALLOWED_FIELDS[route])
    if unknown:
        raise Reply(422, f"Argument not supported: {', '.join(unknown)}")
    model = body.get("model")
    if model is not None and not isinstance(model, str):
        raise Reply(400, "`model` must be a string")


def int_field(body: Mapping[str, object], name: str, low: int, high: int, default: int) -> int:
    """An integer field within [low, high], or `default` when absent (400 otherwise)."""
    value = body.get(name, default)
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise Reply(400, f"`{name}` must be an integer from {low} to {high}, got {value!r}")
    return value


def enum_field(body: Mapping[str, object], name: str, allowed: Sequence[str], default: str) -> str:
    """One of `allowed`, or `default` when absent (400 otherwise)."""
    value = body.get(name, default)
    if value not in allowed:
        raise Reply(400, f"invalid `{name}` {value!r}; expected one of {', '.join(allowed)}")
    return str(value)


_DATA_URI = re.compile(r"^data:([a-z]+/[a-z0-9.+-]+);base64,(.*)$", re.DOTALL)


def decode_media_url(url: object, family: str, field_name: str) -> bytes | None:
    """Check an input `url` (https or a base64 data URI of `family`); the decoded
    bytes of a data URI, None for an https URL. Raises 400 otherwise."""
    if not isinstance(url, str) or not url:
        raise Reply(400, f"`{field_name}.url` must be a non-empty string")
    if url.startswith("https://"):
        return None
    match = _DATA_URI.match(url)
    if match is None or not match.group(1).startswith(family + "/"):
        raise Reply(400, f"`{field_name}.url` must be an https URL or a {family} data URI")
    try:
        return base64.b64decode(match.group(2), validate=True)
    except (binascii.Error, ValueError):
        raise Reply(400, f"`{field_name}.url` is not valid base64") from None


def media_object(value: object, family: str, field_name: str) -> bytes | None:
    """Check an ImageUrl / VideoUrl object (`url` only; `file_id` is not served here)."""
    if not isinstance(value, dict) or "url" not in value:
        raise Reply(400, f"`{field_name}` must be an object with a `url`")
    extra = set(value) - MEDIA_URL_FIELDS
    if extra:
        raise Reply(422, f"Argument not supported: {field_name}.{sorted(extra)[0]}")
    return decode_media_url(value["url"], family, field_name)


def image_shape(data: bytes | None) -> tuple[int, int] | None:
    """Width and height of an input image's bytes (None for an https URL or bad bytes)."""
    if data is None:
        return None
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as image:
            width, height = image.size
            return int(width), int(height)
    except (UnidentifiedImageError, OSError, ValueError):
        raise Reply(400, "the input image does not decode") from None


def _clip_shape(data: bytes | None) -> tuple[int, int] | None:
    """Width and height of an input MP4's bytes (None for an https URL)."""
    if data is None:
        return None
    import av

    try:
        with av.open(io.BytesIO(data)) as container:
            stream = container.streams.video[0]
            return int(stream.codec_context.width), int(stream.codec_context.height)
    except (av.FFmpegError, ValueError, OSError, IndexError):
        return None


@dataclass(frozen=True)
class ClipSpec:
    """What a video job will make: its length, shape and what is billed for it."""

    duration: int
    resolution: str
    aspect: str
    billed_s: int  # seconds of output billed (an extension: the added seconds only)
    input_s: int = 0  # seconds of input video (edits and extensions pay for them)
    size: tuple[int, int] | None = None  # the input clip's pixel size, kept by the output


def generation_spec(body: Mapping[str, Any], model: str) -> ClipSpec:
    """GenerateVideoRequest: text-, image- or reference-to-video."""
    duration = int_field(body, "duration", 1, 15, 8)
    resolutions = ("480p", "720p", "1080p") if model in MODELS_WITH_1080P else ("480p", "720p")
    resolution = enum_field(body, "resolution", resolutions, "480p")
    aspect = enum_field(body, "aspect_ratio", VIDEO_ASPECTS, "16:9")
    if "image" in body and "reference_images" in body:
        raise Reply(400, "`image` and `reference_images` are mutually exclusive")
    if "image" in body:
        # Image-to-video: aspect_ratio is ignored, the input image's ratio is kept.
        shape = image_shape(media_object(body["image"], "image", "image"))
        aspect = nearest_aspect(*shape, VIDEO_ASPECTS) if shape else aspect
    if "reference_images" in body:
        refs = body["reference_images"]
        if not isinstance(refs, list) or not len(refs) >= 1:
            raise Reply(400, "`reference_images` must be a list of images")
        if len(refs) > MAX_REFERENCE_IMAGES:
            raise Reply(
                400, f"Too many reference images: {len(refs)}. "
                f"Maximum allowed is {MAX_REFERENCE_IMAGES}.",
            )  # fmt: skip
        for index, item in enumerate(refs):
            media_object(item, "image", f"reference_images[{index}]")
        if duration > REFERENCE_VIDEO_MAX_S:
            raise Reply(
                400, f"Duration {duration}s exceeds the maximum allowed for reference-to-video, "
                f"which is {REFERENCE_VIDEO_MAX_S}s.",
            )  # fmt: skip
        if resolution == "1080p":
            raise Reply(400, "reference-to-video supports at most 720p")
    return ClipSpec(duration, resolution, aspect, duration)


def clip_spec(route: Route, body: Mapping[str, Any]) -> ClipSpec:
    """EditVideoRequest / ExtendVideoRequest: the output keeps the input clip's shape."""
    if "video" not in body:
        raise Reply(422, "missing field `video`")
    data = media_object(body["video"], "video", "video")
    found = mp4_seconds(data) if data is not None else 6
    if found is None:
        raise Reply(400, "`video` does not decode as an MP4 video")
    size = _clip_shape(data)
    aspect = nearest_aspect(*size, VIDEO_ASPECTS) if size else "16:9"
    if route is Route.VIDEO_EDITS:
        duration = min(found, 9)  # at most 8.7 s of the input is edited (docs.x.ai)
        return ClipSpec(duration, "480p", aspect, duration, found, size)
    if not 2 <= found <= 15:  # ExtendVideoRequest: "between 2 and 15 seconds long"
        raise Reply(400, f"input video must be 2 to 15 seconds, got {found}")
    added = int_field(body, "duration", 2, 10, 6)
    return ClipSpec(found + added, "480p", aspect, added, found, size)


# -- the request handler -------------------------------------------------------------
