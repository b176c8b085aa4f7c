"""Request bodies of the xAI media endpoints, one per kind (pure: data in, JSON out).

Only fields of xAI's OpenAPI document (xai-org/xai-sdk-ts spec/openapi.json
@ 41e766acb9160402c47301beca97764ace073ffc) are sent; tests/contract/ holds
the JSON Schema derived from it that every body in the test suite must pass.

image            POST /images/generations  prompt model n response_format aspect_ratio resolution
edit             POST /images/edits        … image {url} (one input: no aspect_ratio, the API
                                            keeps the input's) | images [{url}] (2–3)
video            POST /videos/generations  prompt model duration aspect_ratio resolution
animate          POST /videos/generations  prompt model duration resolution image {url}
                                            (aspect_ratio is ignored for image-to-video)
reference_video  POST /videos/generations  … + reference_images [{url}]
video_edit       POST /videos/edits        prompt model video {url}
extend           POST /videos/extensions   prompt model video {url} duration
"""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from imaginebuild.capabilities import ratio_follows_input
from imaginebuild.errors import InputError
from imaginebuild.model import Kind
from imaginebuild.providers.base import InputFile

IMAGES_GENERATIONS = "/images/generations"
IMAGES_EDITS = "/images/edits"
VIDEOS_GENERATIONS = "/videos/generations"
VIDEOS_EDITS = "/videos/edits"
VIDEOS_EXTENSIONS = "/videos/extensions"

ENDPOINTS: Mapping[Kind, str] = {
    Kind.IMAGE: IMAGES_GENERATIONS,
    Kind.EDIT: IMAGES_EDITS,
    Kind.VIDEO: VIDEOS_GENERATIONS,
    Kind.ANIMATE: VIDEOS_GENERATIONS,
    Kind.REFERENCE_VIDEO: VIDEOS_GENERATIONS,
    Kind.VIDEO_EDIT: VIDEOS_EDITS,
    Kind.EXTEND: VIDEOS_EXTENSIONS,
}


@dataclass(frozen=True)
class ApiRequest:
    """One submission: the endpoint path (below the base URL) and its JSON body."""

    endpoint: str
    body: Mapping[str, object]


def input_url(item: InputFile) -> str:
    """How an input travels: its original https URL, else a base64 data URI of its bytes."""
    if item.url is not None and item.url.startswith("https://"):
        return item.url
    return data_uri(item.path.read_bytes(), item.media_type)


def data_uri(data: bytes, media_type: str) -> str:
    """`data:<type>;base64,<bytes>`."""
    return f"data:{media_type};base64,{base64.b64encode(data).decode('ascii')}"


def _set(body: dict[str, object], name: str, value: object) -> None:
    if value is not None:
        body[name] = value


def build_request(
    kind: Kind,
    prompt: str,
    model: str,
    params: Mapping[str, object],
    input_urls: Sequence[str],
    *,
    response_format: str = "b64_json",
    deferred: bool = False,
) -> ApiRequest:
    """The endpoint and body for one asset; `input_urls` are https URLs or data URIs.

    `deferred` asks an image call to answer at once with a request id to poll (the
    spec allows it with `response_format: "url"` only)."""
    body: dict[str, object] = {"prompt": prompt, "model": model}
    ratio = None if ratio_follows_input(kind, len(input_urls)) else params.get("aspect_ratio")
    if kind in (Kind.IMAGE, Kind.EDIT):
        body["n"] = int(str(params.get("count") or 1))
        body["response_format"] = response_format
        _set(body, "aspect_ratio", ratio)
        _set(body, "resolution", params.get("resolution"))
        if deferred:
            body["deferred"] = True
        if kind is Kind.EDIT:
            images = [{"url": url} for url in input_urls]
            if len(images) == 1:
                body["image"] = images[0]
            else:
                body["images"] = images
    elif kind in (Kind.VIDEO, Kind.ANIMATE, Kind.REFERENCE_VIDEO):
        _set(body, "duration", params.get("duration"))
        _set(body, "aspect_ratio", ratio)
        _set(body, "resolution", params.get("resolution"))
        if kind is Kind.ANIMATE:
            body["image"] = {"url": input_urls[0]}
        elif kind is Kind.REFERENCE_VIDEO:
            body["reference_images"] = [{"url": url} for url in input_urls]
    else:
        body["video"] = {"url": input_urls[0]}
        if kind is Kind.EXTEND:
            _set(body, "duration", params.get("duration"))
    return ApiRequest(ENDPOINTS[kind], body)


def read_inputs(inputs: Sequence[InputFile]) -> list[str]:
    """The URL form of every input, in order (reads local files)."""
    urls = []
    for item in inputs:
        try:
            urls.append(input_url(item))
        except OSError as exc:
            raise InputError(f"{item.path}: cannot read input: {exc.strerror}") from exc
    return urls
