"""Journaled jobs (videos, deferred images) after their POST: poll, journal the result, fetch.

    journal record ─result?─yes→ URLs pass check_url? ─yes→ fetch them (no poll) → done
        │no                        │no: refused, said          │403/404/410: the URL lapsed
        ▼                          ▼                           ▼
    poll GET /{videos|images}/{id} (5 s, backing off to 30 s; a budget of its own)
        → done: bill reported → result (URLs, bill) journaled → fetch → done
        · failed: JobFailed · expired/404: JobExpired (resubmitted only with retry_expired)
        · deadline: JobTimeout

A cut-off download leaves the record (with its result) for the next run, which
fetches the same URLs unpaid. A job resumed from its journaled result reports
its bill again; the engine counts each request id once.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace

from imaginebuild.errors import (
    CallInfo,
    DownloadCutOff,
    InvalidMedia,
    JobExpired,
    JobTimeout,
    ModerationRefused,
    ProviderError,
    RequestRejected,
    UsageError,
)
from imaginebuild.model import Media
from imaginebuild.providers.base import (
    CallRecord,
    GenerationRequest,
    GenerationResult,
    OutputFile,
    Phase,
    ProgressFn,
)
from imaginebuild.providers.xai import answers
from imaginebuild.providers.xai.http import SleepFn, XaiHttp, check_url
from imaginebuild.providers.xai.results import fetch_urls, store_images
from imaginebuild.store.journal import JobRecord, JobResult, Journal

POLL_BACKOFF = 1.5  # each wait between polls is this much longer, up to the maximum

Outputs = tuple[tuple[OutputFile, ...], int]  # the files made, and the retries it took
Submit = Callable[
    [XaiHttp, GenerationRequest, ProgressFn, dict[str, float]],
    Awaitable[tuple[JobRecord, int, str | None]],
]


class Expired(Exception):
    """The journaled job is gone (expired, unknown, or its result URL lapsed)."""

    def __init__(self, error: JobExpired) -> None:
        super().__init__(error.message)
        self.error = error


@dataclass(frozen=True)
class PollPace:
    """How a job is polled: the first wait, the longest wait, and how long in all."""

    interval: float
    max_interval: float
    timeout: float


@dataclass
class Attempt:
    """One job as this run follows it: when the run began on it, what its POST took."""

    started_at: float  # Unix time
    began: float  # the injected clock's reading
    resumed: bool  # the job was in the journal when the run began
    retries: int = 0
    header_id: str | None = None  # the `x-request-id` of the POST, when this run sent it
    timings: dict[str, float] = field(default_factory=dict)


def report(request: GenerationRequest, call: CallRecord) -> None:
    """Tell the engine at once that `call` was (or may have been) billed."""
    if request.on_billed is not None:
        request.on_billed(call)


def refused_urls(record: JobRecord, urls: Sequence[str]) -> str | None:
    """Why the result URLs of `record` may not be fetched (None: they may): each must be
    https (http only on loopback), and a video has exactly one."""
    if not record.endpoint.startswith("/images") and len(urls) != 1:
        return f"a video has one result URL, not {len(urls)}"
    for url in urls:
        try:
            check_url(url, "result URL")
        except UsageError as exc:
            return exc.message
    return None


class JobRunner:
    """Follows journaled jobs to their outputs (see the module docstring for the flow)."""

    def __init__(
        self,
        journal: Journal,
        pace: PollPace,
        *,
        poll_gate: Callable[[], Awaitable[None]],
        sleep: SleepFn,
        clock: Callable[[], float],
        caps: Mapping[Media, int | None],
        retry_expired: bool,
    ) -> None:
        self.journal = journal
        self.pace = pace
        self._poll_gate = poll_gate
        self._sleep = sleep
        self._clock = clock
        self._caps = caps
        self._retry_expired = retry_expired

    async def run(
        self, http: XaiHttp, request: GenerationRequest, progress: ProgressFn, submit: Submit
    ) -> GenerationResult:
        """The outputs of the request's journaled job, submitted first (by `submit`) when
        the journal holds none; an expired job is submitted once more with retry_expired."""
        started_at, began = time.time(), self._clock()
        record = self.journal.get(request.key)
        resumed, resubmitted = record is not None, False
        while True:
            attempt = Attempt(started_at, began, resumed)
            if record is None:
                submitted = await submit(http, request, progress, attempt.timings)
                record, attempt.retries, attempt.header_id = submitted
            else:
                progress(Phase.POLLING, f"resuming job {record.request_id}")
            try:
                return await self._finish(http, request, record, attempt, progress)
            except Expired as gone:
                if not self._retry_expired or resubmitted:
                    raise gone.error from None
                self.journal.remove(request.key)
                progress(Phase.CALLING, f"job {record.request_id} expired; submitting again")
                record, resubmitted = None, True

    async def _finish(
        self,
        http: XaiHttp,
        request: GenerationRequest,
        record: JobRecord,
        attempt: Attempt,
        progress: ProgressFn,
    ) -> GenerationResult:
        """One job to its outputs: from its journaled result, else polled until done."""
        if record.result is not None:
            fetched = await self._from_journal(
                http, request, record, record.result, attempt, progress
            )
            if fetched is not None:
                return fetched
        done, poll_retries = await self.poll(http, request, record, progress, attempt.timings)
        model = str(done.get("model") or record.model)
        call = self._call(record, attempt, model, answers.ticks_of(done), poll_retries)
        report(request, call)  # billed: recorded before anything is fetched
        progress(Phase.DOWNLOADING, f"job {record.request_id} done; fetching its result")
        download_began = self._clock()
        outputs = await self._collect(http, request, record, done, attempt.resumed)
        attempt.timings["download_s"] = self._clock() - download_began
        return self._result(call, outputs, attempt)

    async def _from_journal(
        self,
        http: XaiHttp,
        request: GenerationRequest,
        record: JobRecord,
        result: JobResult,
        attempt: Attempt,
        progress: ProgressFn,
    ) -> GenerationResult | None:
        """The outputs fetched from the journaled result URLs; None when they are refused
        or have lapsed (the job is then polled for fresh ones)."""
        refused = refused_urls(record, result.urls)
        if refused is not None:
            progress(
                Phase.POLLING,
                f"job {record.request_id}: the journal's result URL is refused ({refused}); "
                "polling the job instead",
            )
            return None
        call = self._call(record, attempt, result.model, result.cost_ticks, 0)
        report(request, call)  # the same bill as when the job was polled: counted once
        progress(Phase.DOWNLOADING, f"job {record.request_id}: fetching its journaled result")
        download_began = self._clock()
        try:
            outputs = await self._fetch(http, request, record, result.urls, resumed=True)
        except Expired:
            progress(
                Phase.POLLING,
                f"job {record.request_id}: the journaled result URL has lapsed; polling the job",
            )
            return None
        attempt.timings["download_s"] = self._clock() - download_began
        return self._result(call, outputs, attempt)

    async def _collect(
        self,
        http: XaiHttp,
        request: GenerationRequest,
        record: JobRecord,
        done: Mapping[str, object],
        resumed: bool,
    ) -> Outputs:
        """Journal a finished job's result, then fetch its outputs into the workdir."""
        images = record.endpoint.startswith("/images")
        info = CallInfo(request.asset, record.request_id, record.endpoint)
        try:
            urls = answers.result_urls(done, info, images=images)
            if urls is None:  # images that came inline: nothing to fetch again later
                return await store_images(http, request, done, info, self._caps[Media.IMAGE])
        except ProviderError as error:
            raise self._failed(error, request, info, resumed) from None
        if refused_urls(record, urls) is None:  # a bad URL fails below, never journaled
            model = str(done.get("model") or record.model)
            result = JobResult(urls, model, answers.ticks_of(done), time.time())
            self.journal.put(replace(record, result=result))  # before the download starts
        return await self._fetch(http, request, record, urls, resumed=resumed)

    async def _fetch(
        self,
        http: XaiHttp,
        request: GenerationRequest,
        record: JobRecord,
        urls: Sequence[str],
        *,
        resumed: bool,
    ) -> Outputs:
        """Download a job's result URLs into the workdir."""
        media = Media.IMAGE if record.endpoint.startswith("/images") else Media.VIDEO
        info = CallInfo(request.asset, record.request_id, record.endpoint)
        try:
            return await fetch_urls(http, request, urls, media, info, self._caps[media])
        except ProviderError as error:
            raise self._failed(error, request, info, resumed) from None

    def _failed(
        self, error: ProviderError, request: GenerationRequest, info: CallInfo, resumed: bool
    ) -> Exception:
        """What a failure to collect a finished job raises, its journal record kept or not.

        A cut-off download keeps the record: the next run fetches the result again, unpaid.
        A result spoiled in transit the first time is resumed likewise; spoiled again on the
        resume, the result itself is bad, and a moderation refusal is final: the record goes,
        so a rerun tries afresh."""
        if isinstance(error, JobExpired):
            return Expired(answers.expired(error.message, info))
        spoiled = isinstance(error, InvalidMedia) and not isinstance(error, DownloadCutOff)
        if isinstance(error, ModerationRefused) or (spoiled and resumed):
            self.journal.remove(request.key)
        return error

    def _call(
        self, record: JobRecord, attempt: Attempt, model: str, ticks: int | None, retries: int
    ) -> CallRecord:
        """The call record of a finished job, as the ledger gets it."""
        return CallRecord(
            endpoint=record.endpoint,
            model=model,
            request_id=record.request_id,
            cost_ticks=ticks,
            retries=attempt.retries + retries,
            started_at=attempt.started_at,
            duration_s=self._clock() - attempt.began,  # the ledger's time: when it finished
            http_request_id=attempt.header_id,
        )

    def _result(self, call: CallRecord, outputs: Outputs, attempt: Attempt) -> GenerationResult:
        files, fetched = outputs
        finished = replace(
            call,
            retries=call.retries + fetched,
            duration_s=self._clock() - attempt.began,
            http=attempt.timings,
        )
        return GenerationResult(files, (finished,))

    async def poll(
        self,
        http: XaiHttp,
        request: GenerationRequest,
        record: JobRecord,
        progress: ProgressFn,
        timings: dict[str, float],
    ) -> tuple[Mapping[str, object], int]:
        """Poll until the job is done; its final body and the retries made."""
        info = CallInfo(record.asset, record.request_id, record.endpoint)
        deadline = self._clock() + self.pace.timeout
        began, retries, polls, interval = self._clock(), 0, 0, self.pace.interval
        folder = "images" if record.endpoint.startswith("/images") else "videos"
        path = f"/{folder}/{record.request_id}"
        while True:
            try:
                response = await http.call("GET", path, None, info, self._poll_gate)
            except RequestRejected as exc:
                if exc.info.status_code == 404:
                    gone = answers.expired("the API no longer knows this job", info)
                    raise Expired(gone) from None
                raise
            polls += 1
            retries += response.retries
            data = response.data or {}
            status = answers.job_status(response.status, data)
            if status == "done":
                timings["poll_s"], timings["polls"] = self._clock() - began, float(polls)
                return data, retries
            self._not_done(request, record, status, data, info)
            if self._clock() >= deadline:
                raise JobTimeout(
                    f"job {record.request_id} still pending after {self.pace.timeout:.0f} s",
                    info=replace(info, retries=retries),
                    hint="run again to keep waiting for the same job (it is not submitted twice), "
                    "or raise providers.xai.timeout",
                )
            note = answers.progress_note(data)
            progress(Phase.POLLING, f"job {record.request_id} pending{note}")
            await self._sleep(interval)
            interval = min(self.pace.max_interval, interval * POLL_BACKOFF)

    def _not_done(
        self,
        request: GenerationRequest,
        record: JobRecord,
        status: str,
        data: Mapping[str, object],
        info: CallInfo,
    ) -> None:
        """Raise for a job that ended without a result (failed, expired); pending passes."""
        if status == "failed":
            self.journal.remove(record.key)  # terminal: a rerun should try afresh
            error = answers.failed(data, info)
            if error.info.cost_ticks is not None:
                report(request, _billed_failure(record, error))
            raise error
        if status == "expired":
            raise Expired(answers.expired("the job has expired", info))


def _billed_failure(record: JobRecord, error: ProviderError) -> CallRecord:
    return CallRecord(
        endpoint=record.endpoint,
        model=record.model,
        request_id=record.request_id,
        cost_ticks=error.info.cost_ticks,
        started_at=time.time(),
    )
