"""What the xAI media API's answers mean (pure): job status, result URLs, bills, refusals.

Answer shapes are those of xAI's OpenAPI document (xai-org/xai-sdk-ts
spec/openapi.json @ 41e766acb9160402c47301beca97764ace073ffc): VideoResponse,
GetDeferredImageResponse, GeneratedImageResponse and MediaUsage.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

from imaginebuild.errors import CallInfo, InvalidMedia, JobExpired, JobFailed, ModerationRefused

EXPIRED_HINT = "rerun with --retry-expired to submit the job again (it is billed again)"


def job_status(http_status: int, data: Mapping[str, object]) -> str:
    """pending | done | failed | expired, from a poll answer (unknown statuses are pending)."""
    status = data.get("status")
    if http_status == 202:
        return "pending"
    if isinstance(status, str) and status.lower() in ("done", "failed", "expired"):
        return status.lower()
    video = data.get("video")
    if status is None and isinstance(video, dict) and video.get("url"):
        return "done"
    return "pending"


def video_url(done: Mapping[str, object], info: CallInfo) -> str:
    """The result URL of a finished video job; ModerationRefused when it was withheld."""
    video = done.get("video")
    video = video if isinstance(video, dict) else {}
    if video.get("respect_moderation") is False:
        info.cost_ticks = ticks_of(done)  # a withheld result is billed all the same
        raise ModerationRefused(
            f"job {info.request_id}: the video was withheld on content-policy grounds",
            info=info,
            hint="change the prompt or inputs; a rerun of the same request is billed again",
        )
    url = video.get("url")
    if not isinstance(url, str) or not url:
        raise InvalidMedia(f"job {info.request_id} is done but has no video URL", info=info)
    return url


def image_items(data: Mapping[str, object], info: CallInfo) -> list[Mapping[str, object]]:
    """The GeneratedImage entries of an answer (each with bytes or a URL, or withheld)."""
    info.cost_ticks = ticks_of(data)  # billed even when moderation withholds the images
    items = data.get("data")
    if not isinstance(items, list) or not items:
        raise InvalidMedia(f"{info.endpoint}: the answer holds no images", info=info)
    entries: list[Mapping[str, object]] = [item for item in items if isinstance(item, dict)]
    if any(item.get("respect_moderation") is False for item in entries):
        raise ModerationRefused(
            f"{info.endpoint}: the API withheld the image(s) on content-policy grounds", info=info
        )
    return entries


def result_urls(
    done: Mapping[str, object], info: CallInfo, *, images: bool
) -> tuple[str, ...] | None:
    """The result URLs of a finished job in output order; None when an image came inline
    (or withheld) instead. ModerationRefused / InvalidMedia as `video_url`, `image_items`."""
    if not images:
        return (video_url(done, info),)
    urls = [item.get("url") for item in image_items(done, info)]
    if all(isinstance(url, str) and url for url in urls):
        return tuple(str(url) for url in urls)
    return None


def failed(data: Mapping[str, object], info: CallInfo) -> JobFailed:
    """The error of a job that ended `failed` (VideoError / ImageError: code and message)."""
    error = data.get("error")
    error = error if isinstance(error, dict) else {}
    code = str(error.get("code") or "unknown")
    message = str(error.get("message") or "no detail given")
    return JobFailed(
        f"job {info.request_id} failed: {code}: {message}",
        info=replace(info, extra={"code": code}, cost_ticks=ticks_of(data)),
    )


def expired(reason: str, info: CallInfo) -> JobExpired:
    """The error of a job whose result is gone."""
    return JobExpired(f"job {info.request_id}: {reason}", info=info, hint=EXPIRED_HINT)


def ticks_of(data: Mapping[str, object]) -> int | None:
    """`usage.cost_in_usd_ticks` of an answer (MediaUsage), or None when it has none."""
    usage = data.get("usage")
    if isinstance(usage, dict):
        ticks = usage.get("cost_in_usd_ticks")
        if isinstance(ticks, int) and not isinstance(ticks, bool):
            return ticks
    return None


def progress_note(data: Mapping[str, object]) -> str:
    """` (NN%)` when a pending answer says how far it is."""
    value = data.get("progress")
    return f" ({value}%)" if isinstance(value, int) else ""
