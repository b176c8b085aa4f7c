"""The `xai` provider: the Grok Imagine REST API over one pooled httpx client per run.

    every kind        journal? ─yes→ resume that request id (jobs.py: its journaled
                        │no             result URLs first, else polling)
                      pace (team slot, else the model's token bucket) → POST
                        → request_id → journal.put (fsynced) → poll GET /{videos|images}/{id}
                        → done: report the bill → journal the result URLs → download
                          (cut off: the journal keeps the job and its URLs, the next run
                          fetches again unpaid) · failed: JobFailed
                        · expired/404: JobExpired (resubmitted only with retry_expired)
                        · deadline: JobTimeout
    image, edit       deferred (`deferred: true`, xAI's OpenAPI document) like the videos;
                      a model that refuses `deferred` gets one synchronous call instead
                      (read timeout ≥ 360 s), said once per run

A call is reported to `request.on_billed` the moment an answer shows it was (or
may have been) billed, before anything is decoded or downloaded; a POST whose
answer was lost raises MaybeBilled and is reported as possibly billed. The API
key is read from the context's environment only when a call is needed, so a
fully cached run needs none. The journal record of a finished job is left for
the engine to remove once the outputs are stored.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace

import httpx

from imaginebuild.errors import (
    AuthError,
    CallInfo,
    InvalidMedia,
    MaybeBilled,
    ProviderError,
    RequestRejected,
)
from imaginebuild.model import Media
from imaginebuild.money import Billing
from imaginebuild.providers.base import (
    CallRecord,
    GenerationRequest,
    GenerationResult,
    Phase,
    ProgressFn,
    ProviderContext,
    ignore_progress,
)
from imaginebuild.providers.xai import answers
from imaginebuild.providers.xai.bodies import ApiRequest, build_request, read_inputs
from imaginebuild.providers.xai.http import (
    DEFAULT_BASE_URL,
    KEY_HINT,
    Retrier,
    SleepFn,
    XaiHttp,
    check_url,
    scrub,
)
from imaginebuild.providers.xai.jobs import JobRunner, PollPace, report
from imaginebuild.providers.xai.models import (
    IMAGE_MODELS_PATH,
    VIDEO_MODELS_PATH,
    LivePrices,
    parse_live_prices,
)
from imaginebuild.providers.xai.pacing import Pacer
from imaginebuild.providers.xai.results import store_images
from imaginebuild.retry import RetryPolicy, policy_with_backoff
from imaginebuild.spelled import ProviderName
from imaginebuild.store.journal import JobRecord, Journal
from imaginebuild.untrusted import Untrusted, check_api_key

DEFAULT_CONCURRENCY = 8
DEFAULT_POLL_INTERVAL = 5.0  # the first wait between polls
MAX_POLL_INTERVAL = 30.0  # polls back off (jobs.POLL_BACKOFF) up to this
DEFAULT_JOB_TIMEOUT = 900.0
DEFAULT_MAX_RETRIES = 4
# A synchronous image call may take minutes (2k and quality models: 60-80 s seen); xAI's
# SDK waits an hour (src/constants.ts DEFAULT_TIMEOUT_MS). We wait at least this long.
SYNC_IMAGE_TIMEOUT = 360.0
# Backoff between retries as `BASE,MAX` seconds (first delay, cap); unset: the default.
BACKOFF_ENV = "IMAGINEBUILD_XAI_BACKOFF"


class _NoDeferred(Exception):
    """The API refused `deferred` for this model: make the image synchronously."""


class XaiProvider:
    """Makes assets with xAI's Grok Imagine API (see the module docstring for the flow)."""

    name = ProviderName.XAI

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
        deferred_images: bool = True,
    ) -> None:
        settings = context.settings
        self.context = context
        self.max_concurrency = settings.max_concurrency or DEFAULT_CONCURRENCY
        self.poll_interval = (
            DEFAULT_POLL_INTERVAL if settings.poll_interval is None else settings.poll_interval
        )
        self.max_poll_interval = max(MAX_POLL_INTERVAL, self.poll_interval)
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
        self.pacer = Pacer(settings.rate_limits, settings.poll_rate, sleep=self._sleep, clock=clock)
        self.deferred_images = deferred_images
        self.no_deferred: set[str] = set()  # models that refused `deferred` in this run
        self.jobs = JobRunner(
            self.journal,
            PollPace(self.poll_interval, self.max_poll_interval, self.job_timeout),
            poll_gate=self.pacer.poll,
            sleep=self._sleep,
            clock=clock,
            caps=self._caps,
            retry_expired=context.retry_expired,
        )
        self.notices: list[str] = []  # said once per run (the engine may print them)
        self._http: XaiHttp | None = None

    # -- the Provider interface ----------------------------------------------------

    async def generate(
        self, request: GenerationRequest, progress: ProgressFn = ignore_progress
    ) -> GenerationResult:
        """Make the request's outputs in its workdir, or raise a ProviderError."""
        http = self._client()
        try:
            image = request.kind.spec.output is Media.IMAGE
            journaled = self.journal.get(request.key) is not None
            if image and not journaled and not self._defers(request):
                return await self._sync_images(http, request, progress, self._timeout)
            try:
                return await self.jobs.run(http, request, progress, self._submit)
            except _NoDeferred:
                return await self._sync_images(
                    http, request, progress, max(self._timeout, SYNC_IMAGE_TIMEOUT)
                )
        except MaybeBilled as error:
            report(request, _maybe_billed(request, error))
            raise scrub(error, http.key) from None
        except ProviderError as error:
            raise scrub(error, http.key) from None

    async def live_prices(self) -> LivePrices:
        """The prices xAI's model endpoints publish (two GETs; nothing is billed)."""
        http = self._client()
        answers_by_path: dict[str, object] = {}
        try:
            for path in (IMAGE_MODELS_PATH, VIDEO_MODELS_PATH):
                response = await http.call("GET", path, None, CallInfo(endpoint=path))
                answers_by_path[path] = response.data
            return parse_live_prices(
                answers_by_path[IMAGE_MODELS_PATH], answers_by_path[VIDEO_MODELS_PATH]
            )
        except ValueError as exc:
            raise ProviderError(f"xAI's model list is not readable: {exc}") from None
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
            try:
                check_api_key(key)  # a header can carry no CR, LF or non-ASCII byte
            except Untrusted as exc:
                raise AuthError(str(exc), hint=KEY_HINT) from None
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

    def _defers(self, request: GenerationRequest) -> bool:
        return self.deferred_images and _model(request) not in self.no_deferred

    def _pace(self, request: GenerationRequest) -> Callable[[], Awaitable[None]]:
        """The wait before each POST of `request`: the team coordinator's slot when a team is
        configured (its rate is the team-wide limit), else this process's token bucket."""
        gate, model = request.gate, _model(request)

        async def wait() -> None:
            if gate is not None:
                await gate(model)
            else:
                await self.pacer.submit(model)

        return wait

    def _api(self, request: GenerationRequest, *, deferred: bool = False) -> ApiRequest:
        return build_request(
            request.kind,
            request.prompt,
            _model(request),
            request.params,
            read_inputs(request.inputs),
            response_format="url" if deferred else self._response_format,
            deferred=deferred,
        )

    # -- synchronous images --------------------------------------------------------------

    async def _sync_images(
        self, http: XaiHttp, request: GenerationRequest, progress: ProgressFn, timeout: float
    ) -> GenerationResult:
        api = self._api(request)
        info = CallInfo(asset=request.asset, endpoint=api.endpoint)
        started_at, began = time.time(), self._clock()
        progress(Phase.CALLING, f"POST {api.endpoint}")
        response = await http.call(
            "POST", api.endpoint, api.body, info, self._pace(request), timeout=timeout
        )
        data = response.data or {}
        info = replace(info, retries=response.retries, request_id=response.request_id)
        call = CallRecord(
            endpoint=api.endpoint,
            model=_model(request),
            request_id=response.request_id,
            cost_ticks=answers.ticks_of(data),
            retries=response.retries,
            started_at=started_at,
            duration_s=self._clock() - began,
            http={"request_s": response.seconds},
            http_request_id=response.request_id,
        )
        report(request, call)  # billed: recorded before anything is decoded
        download_began = self._clock()
        outputs, fetched = await store_images(http, request, data, info, self._caps[Media.IMAGE])
        timings = {**call.http, "download_s": self._clock() - download_began}
        done = replace(
            call, retries=call.retries + fetched, duration_s=self._clock() - began, http=timings
        )
        return GenerationResult(outputs, (done,))

    # -- journaled jobs: videos and deferred images ---------------------------------------

    async def _submit(
        self,
        http: XaiHttp,
        request: GenerationRequest,
        progress: ProgressFn,
        timings: dict[str, float],
    ) -> tuple[JobRecord, int, str | None]:
        image = request.kind.spec.output is Media.IMAGE
        api = self._api(request, deferred=image)
        info = CallInfo(asset=request.asset, endpoint=api.endpoint)
        progress(Phase.CALLING, f"POST {api.endpoint}")
        try:
            response = await http.call("POST", api.endpoint, api.body, info, self._pace(request))
        except RequestRejected as exc:
            if image and exc.info.status_code in (400, 422) and "deferred" in exc.message:
                self._refuse_deferred(_model(request))
                raise _NoDeferred() from None
            raise
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
        return record, response.retries, response.request_id

    def _refuse_deferred(self, model: str) -> None:
        if model not in self.no_deferred:
            self.no_deferred.add(model)
            self.notices.append(
                f"{model} does not take deferred image requests: its images are made with one "
                f"synchronous call each (waiting up to {SYNC_IMAGE_TIMEOUT:.0f} s); a run killed "
                "meanwhile cannot resume them"
            )


# -- small helpers ------------------------------------------------------------------------


def _maybe_billed(request: GenerationRequest, error: ProviderError) -> CallRecord:
    return CallRecord(
        endpoint=error.info.endpoint or "",
        model=_model(request),
        request_id=error.info.request_id,
        cost_ticks=None,
        retries=error.info.retries,
        started_at=time.time(),
        billing=Billing.MAYBE_BILLED,
        http_request_id=error.info.request_id,
    )


def _model(request: GenerationRequest) -> str:
    return request.model or request.kind.spec.default_model
