"""Fetch a result into the workdir: streamed, capped, typed, decoded, then renamed into place.

Result URLs are temporary, so they are fetched at once. Bytes stream to a temp
file beside the target (never a whole video in memory); the declared
Content-Type, Content-Length and a size cap are checked while they arrive; the
file must decode as the declared media before it is renamed to its final name.
Images that arrive as JPEG or WebP are re-saved as PNG. A truncated or invalid
download never reaches its final name.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import os
import tempfile
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import httpx

from imaginebuild.atomic import fsync_dir
from imaginebuild.errors import (
    CallInfo,
    DownloadCutOff,
    InvalidMedia,
    JobExpired,
    ProviderError,
    RequestRejected,
    UsageError,
)
from imaginebuild.model import PNG, Media
from imaginebuild.providers.xai.http import (
    Retrier,
    Retryable,
    check_url,
    is_retryable_read,
    transport_reason,
)
from imaginebuild.untrusted import TransferPace

IMAGE_CAP = 50 * 1024 * 1024
VIDEO_CAP = 2 * 1024 * 1024 * 1024
_NEUTRAL_TYPES = frozenset({"application/octet-stream", "binary/octet-stream"})
# A paid result must still arrive in bounded time: a result server that trickles is cut
# off (and retried) rather than holding the run open. A 2 GiB video needs ~2.3 MiB/s.
IMAGE_PACE = TransferPace(deadline_s=300.0)
VIDEO_PACE = TransferPace(deadline_s=900.0)
EXPIRED_STATUSES = frozenset({403, 404, 410})


def content_type_fits(declared: str | None, media: Media) -> bool:
    """Whether a declared Content-Type may carry `media` (missing or generic ones may)."""
    if not declared:
        return True
    base = declared.split(";", 1)[0].strip().lower()
    if base in _NEUTRAL_TYPES:
        return True
    if media is Media.VIDEO:
        return base in {"video/mp4", "video/quicktime", "application/mp4"}
    return base.startswith("image/")


@contextlib.contextmanager
def _temp_in(folder: Path, suffix: str) -> Iterator[Path]:
    """A temp file path in `folder`, removed afterwards unless it was renamed away."""
    folder.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=".part-", suffix=suffix, dir=folder)
    os.close(fd)
    path = Path(name)
    try:
        yield path
    finally:
        with contextlib.suppress(OSError):
            path.unlink()


async def download(
    client: httpx.AsyncClient,
    url: str,
    dest: Path,
    media: Media,
    retrier: Retrier,
    info: CallInfo,
    cap: int | None = None,
) -> int:
    """Fetch `url` (no credentials are sent) into `dest` as verified PNG/MP4; retries made."""
    try:
        check_url(url, "result URL")
    except UsageError as exc:
        raise InvalidMedia(exc.message, info=info) from None
    limit = cap if cap is not None else (VIDEO_CAP if media is Media.VIDEO else IMAGE_CAP)
    with _temp_in(dest.parent, ".download") as part:

        async def attempt() -> None:
            await _stream_to(client, url, part, media, limit, info)

        _, retries = await retrier.run(attempt, info, "download of the result")
        # Decoding (and re-encoding to PNG) takes milliseconds to seconds: off the loop.
        await asyncio.to_thread(finish, part, dest, media, replace(info, retries=retries))
        return retries


async def _stream_to(
    client: httpx.AsyncClient, url: str, part: Path, media: Media, limit: int, info: CallInfo
) -> None:
    """One download attempt into `part` (truncating it first)."""
    try:
        async with client.stream("GET", url) as response:
            _check_response(response, media, limit, info)
            expected = response.headers.get("content-length")
            received = 0
            began = time.monotonic()
            pace = VIDEO_PACE if media is Media.VIDEO else IMAGE_PACE
            with part.open("wb") as out:
                async for chunk in response.aiter_bytes():  # per network read, not per MiB
                    received += len(chunk)
                    if received > limit:
                        raise InvalidMedia(f"the result exceeds the {limit}-byte cap", info=info)
                    problem = pace.problem(time.monotonic() - began, received)
                    if problem:
                        raise Retryable(f"the download {problem}", exhausted=InvalidMedia)
                    out.write(chunk)
                # No fsync here, on the event loop: the work file is temporary, and the
                # store fsyncs the bytes before a blob of them becomes visible.
    except httpx.TimeoutException as exc:
        raise Retryable(f"timed out ({transport_reason(exc)})") from None
    except httpx.TransportError as exc:  # includes a body shorter than its Content-Length
        raise Retryable(transport_reason(exc), exhausted=DownloadCutOff) from None
    except httpx.HTTPError as exc:
        raise ProviderError(f"download failed: {transport_reason(exc)}", info=info) from None
    if expected is not None and expected.isdigit() and int(expected) != received:
        raise Retryable(
            f"truncated: {received} of {expected} bytes arrived", exhausted=DownloadCutOff
        )
    if received == 0:
        raise Retryable("the result is empty", exhausted=InvalidMedia)


def _check_response(response: httpx.Response, media: Media, limit: int, info: CallInfo) -> None:
    status = response.status_code
    if is_retryable_read(status):
        raise Retryable(f"HTTP {status}", status=status)
    if status in EXPIRED_STATUSES:
        raise JobExpired(
            f"the result URL has expired or is gone (HTTP {status})",
            info=replace(info, status_code=status),
        )
    if status != 200:
        raise RequestRejected(
            f"download of the result: HTTP {status}", info=replace(info, status_code=status)
        )
    declared = response.headers.get("content-type")
    if not content_type_fits(declared, media):
        raise InvalidMedia(f"the result is {declared!r}, not {media.value}", info=info)
    length = response.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > limit:
        raise InvalidMedia(f"the result is {length} bytes, over the {limit}-byte cap", info=info)


def store_b64(value: str, dest: Path, info: CallInfo, cap: int = IMAGE_CAP) -> None:
    """Decode a `b64_json` image (plain base64 or a data URI) into `dest` as a verified PNG."""
    text = value.split("base64,", 1)[1] if value.startswith("data:") else value
    if len(text) * 3 // 4 > cap:
        raise InvalidMedia(f"the inline image exceeds the {cap}-byte cap", info=info)
    try:
        data = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidMedia("the inline image is not valid base64", info=info) from None
    if not data:
        raise InvalidMedia("the inline image is empty", info=info)
    with _temp_in(dest.parent, ".download") as part:
        with part.open("wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        finish(part, dest, Media.IMAGE, info)


def finish(part: Path, dest: Path, media: Media, info: CallInfo) -> None:
    """Verify the downloaded `part` decodes as `media`, normalise images to PNG, rename."""
    from imaginebuild.mediaprobe import probe  # media libraries load only when building

    try:
        found = probe(part)
    except InvalidMedia as exc:
        raise InvalidMedia(f"the result does not decode: {exc.message}", info=info) from None
    if not found.media_type.startswith(media.value + "/"):
        raise InvalidMedia(f"the result is {found.media_type}, not {media.value}", info=info)
    if media is Media.IMAGE and found.media_type != PNG:
        with _temp_in(dest.parent, ".png") as png:
            to_png(part, png, info)
            png.replace(dest)
    else:
        part.replace(dest)
    fsync_dir(dest.parent)


def to_png(source: Path, target: Path, info: CallInfo) -> None:
    """Re-save any image Pillow reads as PNG (the engine's images are always PNG)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(source) as image:
            image.load()
            mode = "RGBA" if image.mode in ("RGBA", "LA", "P") else "RGB"
            with target.open("wb") as out:
                image.convert(mode).save(out, format="PNG")
                out.flush()
                os.fsync(out.fileno())
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise InvalidMedia(
            f"the result image cannot be converted to PNG: {exc}", info=info
        ) from None
