"""A finished answer's outputs into the workdir: decoded from inline base64, or downloaded
from their result URLs (both for synchronous images and for journaled jobs)."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from pathlib import Path

from imaginebuild.errors import CallInfo, ModerationRefused
from imaginebuild.model import MP4, PNG, Media
from imaginebuild.providers.base import GenerationRequest, OutputFile
from imaginebuild.providers.xai import answers
from imaginebuild.providers.xai.download import IMAGE_CAP, download, store_b64
from imaginebuild.providers.xai.http import XaiHttp


def output_path(request: GenerationRequest, media: Media, index: int) -> Path:
    """Where output `index` of `request` goes in its workdir (a request makes one video)."""
    if media is Media.VIDEO:
        return request.workdir / f"{request.asset}.mp4"
    return request.workdir / f"{request.asset}-{index}.png"


async def store_images(
    http: XaiHttp,
    request: GenerationRequest,
    data: Mapping[str, object],
    info: CallInfo,
    cap: int | None,
) -> tuple[tuple[OutputFile, ...], int]:
    """Decode or download every image of an answer into the workdir; retries made."""
    items = answers.image_items(data, info)
    outputs, retries = [], 0
    for index, item in enumerate(items):
        dest = output_path(request, Media.IMAGE, index)
        b64, url = item.get("b64_json"), item.get("url")
        if isinstance(b64, str) and b64:
            # decoding takes a while: off the loop
            await asyncio.to_thread(store_b64, b64, dest, info, cap or IMAGE_CAP)
        elif isinstance(url, str) and url:
            retries += await download(http.client, url, dest, Media.IMAGE, http.retrier, info, cap)
        else:  # GeneratedImage with neither bytes nor URL: withheld (the spec has no flag)
            raise ModerationRefused(
                f"{info.endpoint}: image {index} came back with neither data nor URL "
                "(withheld on content-policy grounds)",
                info=info,
            )
        outputs.append(OutputFile(dest, PNG))
    return tuple(outputs), retries


async def fetch_urls(
    http: XaiHttp,
    request: GenerationRequest,
    urls: Sequence[str],
    media: Media,
    info: CallInfo,
    cap: int | None,
) -> tuple[tuple[OutputFile, ...], int]:
    """Download the result URLs of a job, in output order, into the workdir; retries made.
    Each URL is checked (https, or http on loopback) before it is fetched, without the key."""
    outputs, retries = [], 0
    for index, url in enumerate(urls):
        dest = output_path(request, media, index)
        retries += await download(http.client, url, dest, media, http.retrier, info, cap)
        outputs.append(OutputFile(dest, MP4 if media is Media.VIDEO else PNG))
    return tuple(outputs), retries
