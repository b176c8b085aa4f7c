"""Fetching `https://…` inputs into the store: https only, size-capped, time-bounded.

A URL input is fetched once, stored as a blob and pinned by its sha256 in the
lockfile; later runs use the pin and never touch the network for it.
Plain http is refused, except to a loopback host when the environment sets
`IMAGINEBUILD_ALLOW_HTTP_LOOPBACK=1` (for tests and local rehearsal servers).
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import urlsplit

from imaginebuild.errors import InputError
from imaginebuild.mediaprobe import sniff
from imaginebuild.model import InputPolicy
from imaginebuild.untrusted import TransferPace
from imaginebuild.urls import is_loopback_host

MAX_INPUT_BYTES = 64 * 1024 * 1024
TIMEOUT_S = 30.0
MAX_REDIRECTS = 5
FETCH_PACE = TransferPace(deadline_s=300.0)  # the full 64 MiB needs about 220 KiB/s


def check_url_allowed(url: str, env: Mapping[str, str]) -> None:
    """Raise InputError unless `url` is https (or loopback http when explicitly allowed)."""
    parts = urlsplit(url)
    if parts.scheme == "https" and parts.hostname:
        return
    loopback = parts.scheme == "http" and is_loopback_host(parts.hostname or "")
    if loopback and InputPolicy.from_env(env).allow_http_loopback:
        return
    raise InputError(
        f"refusing to fetch {url!r}: only https:// inputs are fetched",
        hint="download the file into the project and reference its path",
    )


async def fetch_to_file(url: str, folder: Path, env: Mapping[str, str]) -> tuple[Path, str]:
    """Download `url` into a new file in `folder`; returns the path and its media type.

    Redirects are followed by hand, at most MAX_REDIRECTS, each hop checked like
    the first URL (an https link must not bounce to plain http or elsewhere unchecked).
    """
    check_url_allowed(url, env)
    import httpx  # imported here: only runs that fetch a URL pay for it

    fd, name = tempfile.mkstemp(prefix=f".fetch-{os.getpid()}-", dir=folder)
    path = Path(name)
    try:
        with os.fdopen(fd, "wb") as out:
            async with httpx.AsyncClient(timeout=TIMEOUT_S, follow_redirects=False) as client:
                target = url
                for _ in range(MAX_REDIRECTS + 1):
                    async with client.stream("GET", target) as response:
                        if response.is_redirect:
                            location = response.headers.get("location", "")
                            target = str(response.url.join(location))
                            check_url_allowed(target, env)
                            continue
                        if response.status_code != 200:
                            raise InputError(
                                f"fetching {url!r} failed: HTTP {response.status_code}"
                            )
                        await _copy_capped(response, out, url)
                        break
                else:
                    raise InputError(
                        f"fetching {url!r} failed: more than {MAX_REDIRECTS} redirects"
                    )
        with path.open("rb") as f:
            media = sniff(f.read(16))
        if media is None:
            raise InputError(f"{url!r} is not a PNG, JPEG, WebP image or MP4 video")
        return path, media
    except httpx.HTTPError as exc:
        path.unlink(missing_ok=True)
        raise InputError(f"fetching {url!r} failed: {type(exc).__name__}") from exc
    except BaseException:
        path.unlink(missing_ok=True)
        raise


async def _copy_capped(response: Any, out: BinaryIO, url: str) -> None:
    size = 0
    began = time.monotonic()
    async for chunk in response.aiter_bytes():  # per network read: a trickle is seen at once
        size += len(chunk)
        if size > MAX_INPUT_BYTES:
            raise InputError(f"{url!r} is larger than {MAX_INPUT_BYTES // (1024 * 1024)} MiB")
        problem = FETCH_PACE.problem(time.monotonic() - began, size)
        if problem:
            raise InputError(f"fetching {url!r} stopped: it {problem}")
        out.write(chunk)
