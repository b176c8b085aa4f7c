"""The `xai` provider: the Grok Imagine REST API over one pooled httpx client per run.

    image/edit          POST → JSON with images (b64 or URL) → PNG files
    video kinds         journal? ─yes→ resume polling that request id
                          │no
                        POST → request_id → journal.put (fsynced) → poll GET /videos/{id}
                          → done: download MP4 · failed: JobFailed · expired/404: JobExpired
                            (resubmitted only with retry_expired) · deadline: JobTimeout

The API key is read from the context's environment only when a call is needed,
so a fully cached run needs none. The journal record of a finished job is left
for the engine to remove once the outputs are stored.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import replace

import httpx

from imaginebuild.errors import (
    AuthError,
    CallInfo,
    DownloadCutOff,
    InvalidMedia,
    JobExpired,
    JobFailed,
    JobTimeout,
    ModerationRefused,
    ProviderError,
    RequestRejected,
)
from imaginebuild.model import MP4, PNG, Media
from imaginebuild.providers.base import (
    CallRecord,
    GenerationRequest,
    GenerationResult,
    OutputFile,
    Phase,
    ProgressFn,
    ProviderContext,
    ignore_progress,
)
from imaginebuild.providers.xai.bodies import build_request, read_inputs
from imaginebuild.providers.xai.download import download, store_b64
from imaginebuild.providers.xai.http import (
    DEFAULT_BASE_URL,
    KEY_HINT,
    Retrier,
    SleepFn,
    XaiHttp,
    check_url,
    scrub,
)
from imaginebuild.retry import RetryPolicy, policy_with_backoff
from imaginebuild.store.journal import JobRecord, Journal

DEFAULT_CONCURRENCY = 8
DEFAULT_POLL_INTERVAL = 2.0
DEFAULT_JOB_TIMEOUT = 900.0
DEFAULT_MAX_RETRIES = 4
# Backoff between retries as `BASE,MAX` seconds (first delay, cap); unset: the default.
BACKOFF_ENV = "IMAGINEBUILD_XAI_BACKOFF"
EXPIRED_HINT = "rerun with --retry-expired to submit the job again (it is billed again)"


class _Expired(Exception):
    """The journaled job is gone (expired, unknown, or its result URL lapsed)."""

    def __init__(self, error: JobExpired) -> None:
        super().__init__(error.message)
        self.error = error


class XaiProvider:
    """Makes assets with xAI's Grok Imagine API (see the module docstring for the flow)."""

    name = "xai"

    def __init__(
        self,
        context: ProviderContext,
        *,
        sleep: SleepFn | None = None,
        rng: random.Random | None = None,
        clock: Callable[[], float] = time.monotonic,
        retry_policy: RetryPolicy | None = None,
        request_timeout: float = 60.0,
        image_cap: int | None = None,
        video_cap: int | None = None,
        image_response_format: str = "b64_json",
    ) -> None:
        settings = context.settings
        self.context = context
        self.max_concurrency = settings.max_concurrency or DEFAULT_CONCURRENCY
        self.poll_interval = (
            DEFAULT_POLL_INTERVAL if settings.poll_interval is None else settings.poll_interval
        )
        self.job_timeout = settings.timeout or DEFAULT_JOB_TIMEOUT
        retries = DEFAULT_MAX_RETRIES if settings.max_retries is None else settings.max_retries
        self.policy = retry_policy or policy_with_backoff(
            retries, context.env.get(BACKOFF_ENV), BACKOFF_ENV
        )
        self.base_url = context.env.get("XAI_BASE_URL") or settings.base_url or DEFAULT_BASE_URL
        self.journal = Journal(context.state_dir / "journal")
        self._sleep = sleep or asyncio.sleep
        self._rng = rng
        self._clock = clock
        self._timeout = settings.request_timeout or request_timeout
        self._caps = {Media.IMAGE: image_cap, Media.VIDEO: video_cap}
        self._response_format = image_response_format
        self._http: XaiHttp | None = None

    # -- the Provider interface ----------------------------------------------------

    async def generate(
        self, request: GenerationRequest, progress: ProgressFn = ignore_progress
    ) -> GenerationResult:
        """Make the request's outputs in its workdir, or raise a ProviderError."""
        http = self._client()
        try:
            if request.kind.spec.output is Media.IMAGE:
                return await self._images(http, request, progress)
            return await self._video(http, request, progress)
        except ProviderError as error:
            raise scrub(error, http.key) from None

    async def aclose(self) -> None:
        """Close the pooled connections (safe to call when nothing was ever sent)."""
        if self._http is not None:
            await self._http.client.aclose()
            self._http = None

    # -- setup ------------------------------------------------------------------------

    def _client(self) -> XaiHttp:
        if self._http is None:
            base_url = check_url(self.base_url, "XAI_BASE_URL")
            key = self.context.env.get("XAI_API_KEY", "").strip()
            if not key:
                raise AuthError("XAI_API_KEY is not set; the xai provider needs it", hint=KEY_HINT)
            limits = httpx.Limits(
                max_connections=self.max_concurrency * 2,
                max_keepalive_connections=self.max_concurrency,
            )
            client = httpx.AsyncClient(
                timeout=httpx.Timeout(self._timeout, connect=min(10.0, self._timeout)),
                limits=limits,
                follow_redirects=True,
                trust_env=False,
            )
            retrier = Retrier(self.policy, self._sleep, self._rng, key)
            self._http = XaiHttp(client, base_url, key, retrier)
        return self._http

    # -- images ----------------------------------------------------------------------

    async def _images(
        self, http: XaiHttp, request: GenerationRequest, progress: ProgressFn
    ) -> GenerationResult:
        api = build_request(
            request.kind,
            request.prompt,
            _model(request),
            request.params,
            read_inputs(request.inputs),
            response_format=self._response_format,
        )
        info = CallInfo(asset=request.asset, endpoint=api.endpoint)
        started_at, began = time.time(), self._clock()
        progress(Phase.CALLING, f"POST {api.endpoint}")
        response = await http.call("POST", api.endpoint, api.body, info, _gate(request))
        info = replace(info, retries=response.retries)
        data = response.data or {}
        _report(request, CallRecord(
            endpoint=api.endpoint, model=_model(request), request_id=_opt_str(data.get("id")),
            cost_ticks=_ticks(data), retries=response.retries, started_at=started_at,
            duration_s=self._clock() - began,
        ))  # fmt: skip
        items = _image_items(data, info)
        progress(Phase.DOWNLOADING, f"{len(items)} image(s)")
        download_began, retries = self._clock(), response.retries
        outputs = []
        for index, item in enumerate(items):
            dest = request.workdir / f"{request.asset}-{index}.png"
            b64, url = item.get("b64_json"), item.get("url")
            if isinstance(b64, str) and b64:
                cap = self._caps[Media.IMAGE] or 50 * 1024 * 1024
                await asyncio.to_thread(store_b64, b64, dest, info, cap)  # decodes: off the loop
            elif isinstance(url, str) and url:
                retries += await download(
                    http.client, url, dest, Media.IMAGE, http.retrier, info, self._caps[Media.IMAGE]
                )
            else:
                raise InvalidMedia(f"image {index} came back with neither data nor URL", info=info)
            outputs.append(OutputFile(dest, PNG))
        call = CallRecord(
            endpoint=api.endpoint,
            model=_model(request),
            request_id=_opt_str(data.get("id")),
            cost_ticks=_ticks(data),
            retries=retries,
            started_at=started_at,
            duration_s=self._clock() - began,
            http={"request_s": response.seconds, "download_s": self._clock() - download_began},
        )
        return GenerationResult(tuple(outputs), (call,))

    # -- videos ------------------------------------------------------------------------

    async def _video(
        self, http: XaiHttp, request: GenerationRequest, progress: ProgressFn
    ) -> GenerationResult:
        started_at, began = time.time(), self._clock()
        record = self.journal.get(request.key)
        resumed, resubmitted = record is not None, False
        while True:
            timings: dict[str, float] = {}
            retries = 0
            if record is None:
                record, retries = await self._submit(http, request, progress, timings)
            else:
                progress(Phase.POLLING, f"resuming job {record.request_id}")
            try:
                done, poll_retries = await self._poll(http, record, progress, timings)
                _report(request, CallRecord(
                    endpoint=record.endpoint, model=str(done.get("model") or record.model),
                    request_id=record.request_id, cost_ticks=_ticks(done), started_at=started_at,
                    retries=retries + poll_retries, duration_s=self._clock() - began,
                ))  # fmt: skip
                dest = request.workdir / f"{request.asset}.mp4"
                info = CallInfo(request.asset, record.request_id, record.endpoint)
                progress(Phase.DOWNLOADING, f"job {record.request_id}")
                download_began = self._clock()
                try:
                    url = _video_url(done, info)
                except ModerationRefused:
                    self.journal.remove(request.key)  # terminal: a rerun should try afresh
                    raise
                try:
                    fetched = await download(
                        http.client, url, dest, Media.VIDEO, http.retrier, info,
                        self._caps[Media.VIDEO],
                    )  # fmt: skip
                except JobExpired as exc:
                    raise _Expired(_expired(exc.message, info)) from None
                except DownloadCutOff:
                    raise  # the journal keeps the job: the next run fetches it again, unpaid
                except InvalidMedia:
                    # Spoiled in transit the first time (resume, no new charge); spoiled
                    # again on the resume means the result itself is bad: start afresh.
                    if resumed:
                        self.journal.remove(request.key)
                    raise
                timings["download_s"] = self._clock() - download_began
            except _Expired as gone:
                if not self.context.retry_expired or resubmitted:
                    raise gone.error from None
                self.journal.remove(request.key)
                progress(Phase.CALLING, f"job {record.request_id} expired; submitting again")
                record, resubmitted = None, True
                continue
            call = CallRecord(
                endpoint=record.endpoint,
                model=str(done.get("model") or record.model),
                request_id=record.request_id,
                cost_ticks=_ticks(done),
                retries=retries + poll_retries + fetched,
                started_at=started_at,
                duration_s=self._clock() - began,
                http=timings,
            )
            return GenerationResult((OutputFile(dest, MP4),), (call,))

    async def _submit(
        self,
        http: XaiHttp,
        request: GenerationRequest,
        progress: ProgressFn,
        timings: dict[str, float],
    ) -> tuple[JobRecord, int]:
        api = build_request(
            request.kind,
            request.prompt,
            _model(request),
            request.params,
            read_inputs(request.inputs),
        )
        info = CallInfo(asset=request.asset, endpoint=api.endpoint)
        progress(Phase.CALLING, f"POST {api.endpoint}")
        response = await http.call("POST", api.endpoint, api.body, info, _gate(request))
        timings["submit_s"] = response.seconds
        request_id = (response.data or {}).get("request_id")
        if not isinstance(request_id, str) or not request_id:
            raise InvalidMedia(f"{api.endpoint}: the answer carries no request_id", info=info)
        record = JobRecord(
            key=request.key,
            asset=request.asset,
            request_id=request_id,
            endpoint=api.endpoint,
            model=_model(request),
            submitted_at=time.time(),
        )
        self.journal.put(record)  # before the first poll: a crash from here on resumes
        return record, response.retries

    async def _poll(
        self,
        http: XaiHttp,
        record: JobRecord,
        progress: ProgressFn,
        timings: dict[str, float],
    ) -> tuple[Mapping[str, object], int]:
        """Poll until the job is done; its final body and the retries made."""
        info = CallInfo(record.asset, record.request_id, record.endpoint)
        deadline = self._clock() + self.job_timeout
        began, retries, polls = self._clock(), 0, 0
        path = f"/videos/{record.request_id}"
        while True:
            try:
                response = await http.call("GET", path, None, info)
            except RequestRejected as exc:
                if exc.info.status_code == 404:
                    raise _Expired(_expired("the API no longer knows this job", info)) from None
                raise
            polls += 1
            retries += response.retries
            data = response.data or {}
            status = _job_status(response.status, data)
            if status == "done":
                timings["poll_s"], timings["polls"] = self._clock() - began, float(polls)
                return data, retries
            if status == "failed":
                self.journal.remove(record.key)  # terminal: a rerun should try afresh
                raise _failed(data, info)
            if status == "expired":
                raise _Expired(_expired("the job has expired", info))
            if self._clock() >= deadline:
                raise JobTimeout(
                    f"job {record.request_id} still pending after {self.job_timeout:.0f} s",
                    info=replace(info, retries=retries),
                    hint="run again to keep waiting for the same job (it is not submitted twice), "
                    "or raise providers.xai.timeout",
                )
            progress(Phase.POLLING, f"job {record.request_id} pending{_progress(data)}")
            await self._sleep(self.poll_interval)


# -- pure helpers ------------------------------------------------------------------------


def _job_status(http_status: int, data: Mapping[str, object]) -> str:
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


def _video_url(done: Mapping[str, object], info: CallInfo) -> str:
    video = done.get("video")
    video = video if isinstance(video, dict) else {}
    if video.get("respect_moderation") is False or done.get("block_reason"):
        info.cost_ticks = _ticks(done)  # a withheld result is billed all the same
        raise ModerationRefused(
            f"job {info.request_id}: the video was withheld on content-policy grounds",
            info=info,
            hint="change the prompt or inputs; a rerun of the same request is billed again",
        )
    url = video.get("url")
    if not isinstance(url, str) or not url:
        raise InvalidMedia(f"job {info.request_id} is done but has no video URL", info=info)
    return url


def _image_items(data: Mapping[str, object], info: CallInfo) -> list[Mapping[str, object]]:
    reason = data.get("block_reason")
    info.cost_ticks = _ticks(data)  # billed even when moderation withholds the images
    if reason:
        raise ModerationRefused(f"{info.endpoint}: the request was blocked: {reason}", info=info)
    items = data.get("data")
    if not isinstance(items, list) or not items:
        raise InvalidMedia(f"{info.endpoint}: the answer holds no images", info=info)
    entries: list[Mapping[str, object]] = [item for item in items if isinstance(item, dict)]
    if any(item.get("respect_moderation") is False for item in entries):
        raise ModerationRefused(
            f"{info.endpoint}: the API withheld the image(s) on content-policy grounds", info=info
        )
    return entries


def _failed(data: Mapping[str, object], info: CallInfo) -> JobFailed:
    error = data.get("error")
    error = error if isinstance(error, dict) else {}
    code = str(error.get("code") or "unknown")
    message = str(error.get("message") or "no detail given")
    return JobFailed(
        f"job {info.request_id} failed: {code}: {message}",
        info=replace(info, extra={"code": code}),
    )


def _expired(reason: str, info: CallInfo) -> JobExpired:
    return JobExpired(f"job {info.request_id}: {reason}", info=info, hint=EXPIRED_HINT)


def _ticks(data: Mapping[str, object]) -> int | None:
    usage = data.get("usage")
    if isinstance(usage, dict):
        ticks = usage.get("cost_in_usd_ticks")
        if isinstance(ticks, int) and not isinstance(ticks, bool):
            return ticks
    return None


def _progress(data: Mapping[str, object]) -> str:
    value = data.get("progress")
    return f" ({value}%)" if isinstance(value, int) else ""


def _opt_str(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def _gate(request: GenerationRequest) -> Callable[[], Awaitable[None]] | None:
    """The team coordinator's slot wait before a POST of `request` (issue 19), if any."""
    gate, model = request.gate, _model(request)
    return None if gate is None else lambda: gate(model)


def _report(request: GenerationRequest, call: CallRecord) -> None:
    """Tell the engine, before anything else can fail, that `call` was (or may have
    been) billed (record first)."""
    if request.on_billed is not None:
        request.on_billed(call)


def _model(request: GenerationRequest) -> str:
    return request.model or request.kind.spec.default_model
