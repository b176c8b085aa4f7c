"""The xai provider against the fake xAI server on loopback: kinds, bodies, faults, journal."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from dataclasses import replace
from pathlib import Path

import httpx
import pytest
from conftest import assert_still_running, wait_for_state

from imaginebuild.errors import (
    AuthError,
    CallInfo,
    InvalidMedia,
    JobExpired,
    JobFailed,
    JobTimeout,
    MaybeBilled,
    ModerationRefused,
    ProviderError,
    RequestRejected,
    TransientError,
    UsageError,
)
from imaginebuild.mediaprobe import probe
from imaginebuild.model import Kind, ProviderSettings
from imaginebuild.money import Billing
from imaginebuild.providers.base import (
    CallRecord,
    GenerationRequest,
    GenerationResult,
    InputFile,
    Phase,
    ProviderContext,
)
from imaginebuild.providers.xai.http import Retrier, XaiHttp, error_for_status, error_message
from imaginebuild.providers.xai.provider import XaiProvider
from imaginebuild.retry import RetryPolicy
from imaginebuild.store.journal import JobRecord, Journal
from imaginebuild.testing.fake_xai import FakeXai, Fault, Route, render_image, render_mp4

KEY = "xai-TESTKEY-0123456789abcdef"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


class Sleeps:
    """An injected sleep that records the delays asked for and returns at once."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)
        await asyncio.sleep(0)


def make_provider(
    fake: FakeXai,
    tmp_path: Path,
    *,
    env: dict[str, str] | None = None,
    retry_expired: bool = False,
    settings: ProviderSettings | None = None,
    sleep: Sleeps | None = None,
    **kwargs: object,
) -> XaiProvider:
    context = ProviderContext(
        settings=settings
        or ProviderSettings(base_url=fake.base_url, poll_interval=0.001, max_retries=3),
        state_dir=tmp_path / ".imaginebuild",
        env={"XAI_API_KEY": KEY} if env is None else env,
        retry_expired=retry_expired,
    )
    kwargs.setdefault("deferred_images", False)  # synchronous images unless a test asks
    return XaiProvider(context, sleep=sleep or Sleeps(), rng=random.Random(7), **kwargs)  # type: ignore[arg-type]


def png_input(tmp_path: Path, name: str = "in.png", url: str | None = None) -> InputFile:
    path = tmp_path / name
    path.write_bytes(render_image((32, 24), (200, 10, 10), "png"))
    return InputFile(path, "0" * 64, "image/png", url)


def mp4_input(tmp_path: Path, seconds: int = 3) -> InputFile:
    path = tmp_path / "in.mp4"
    path.write_bytes(render_mp4((64, 36), seconds, (0, 100, 0)))
    return InputFile(path, "1" * 64, "video/mp4")


def make_request(
    tmp_path: Path,
    kind: Kind,
    params: dict[str, object] | None = None,
    inputs: tuple[InputFile, ...] = (),
    key: str = "k" * 16,
) -> GenerationRequest:
    workdir = tmp_path / "work" / kind.value
    workdir.mkdir(parents=True, exist_ok=True)
    return GenerationRequest(
        asset=f"a_{kind.value}",
        kind=kind,
        key=key,
        prompt=f"a {kind.value} prompt",
        model=kind.spec.default_model,
        params=params or {},
        inputs=inputs,
        workdir=workdir,
    )


def run(
    provider: XaiProvider, request: GenerationRequest, events: list[str] | None = None
) -> GenerationResult:
    def progress(phase: Phase, detail: str) -> None:
        if events is not None:
            events.append(f"{phase.value}: {detail}")

    async def go() -> GenerationResult:
        try:
            return await provider.generate(request, progress)
        finally:
            await provider.aclose()

    return asyncio.run(go())


def data_uri(item: InputFile) -> str:
    return f"data:{item.media_type};base64,{base64.b64encode(item.path.read_bytes()).decode()}"


# -- every kind, and the exact bodies the server receives ---------------------------------


def test_image_body_and_outputs(fake: FakeXai, tmp_path: Path) -> None:
    params = {"count": 2, "aspect_ratio": "16:9", "resolution": "1k"}
    result = run(make_provider(fake, tmp_path), make_request(tmp_path, Kind.IMAGE, params))
    [sent] = fake.requests(Route.IMAGES)
    assert sent.body == {
        "prompt": "a image prompt",
        "model": "grok-imagine-image",
        "n": 2,
        "response_format": "b64_json",
        "aspect_ratio": "16:9",
        "resolution": "1k",
    }
    assert sent.headers["content-type"] == "application/json"
    assert sent.has_auth
    assert [o.media_type for o in result.outputs] == ["image/png", "image/png"]
    for out in result.outputs:
        assert out.path.read_bytes().startswith(PNG_MAGIC)  # the fake sent JPEG
        assert probe(out.path).media_type == "image/png"
    [call] = result.calls
    assert call.cost_ticks == fake.billed_ticks() == 400_000_000
    assert call.endpoint == "/images/generations"
    assert call.retries == 0


@pytest.mark.parametrize("image_format", ["png", "jpeg", "webp"])
@pytest.mark.parametrize("data_uri_form", [False, True])
def test_b64_images_in_every_format_become_png(
    tmp_path: Path, image_format: str, data_uri_form: bool
) -> None:
    with FakeXai(image_format=image_format, b64_data_uri=data_uri_form) as server:
        result = run(make_provider(server, tmp_path), make_request(tmp_path, Kind.IMAGE))
    assert result.outputs[0].path.read_bytes().startswith(PNG_MAGIC)


def test_url_images_are_downloaded_without_the_key(fake: FakeXai, tmp_path: Path) -> None:
    provider = make_provider(fake, tmp_path, image_response_format="url")
    result = run(provider, make_request(tmp_path, Kind.IMAGE, {"count": 3}))
    assert len(result.outputs) == 3
    downloads = fake.requests(Route.DOWNLOAD)
    assert len(downloads) == 3
    assert not any(d.has_auth for d in downloads)


def test_edit_with_one_local_image_sends_a_data_uri(fake: FakeXai, tmp_path: Path) -> None:
    item = png_input(tmp_path)
    run(make_provider(fake, tmp_path), make_request(tmp_path, Kind.EDIT, {}, (item,)))
    [sent] = fake.requests(Route.EDITS)
    assert sent.body == {
        "prompt": "a edit prompt",
        "model": "grok-imagine-image",
        "n": 1,
        "response_format": "b64_json",
        "image": {"url": data_uri(item)},
    }
    assert fake.billed_ticks() == 200_000_000 + 20_000_000


def test_edit_with_several_images_passes_https_urls_on(fake: FakeXai, tmp_path: Path) -> None:
    local = png_input(tmp_path, "a.png")
    remote = png_input(tmp_path, "b.png", url="https://example.com/b.png")
    request = make_request(tmp_path, Kind.EDIT, {"count": 1}, (local, remote))
    run(make_provider(fake, tmp_path), request)
    [sent] = fake.requests(Route.EDITS)
    assert isinstance(sent.body, dict)
    assert "image" not in sent.body
    assert sent.body["images"] == [
        {"url": data_uri(local)},
        {"url": "https://example.com/b.png"},
    ]


def test_video_body_job_and_record(fake: FakeXai, tmp_path: Path) -> None:
    params = {"duration": 3, "aspect_ratio": "16:9", "resolution": "720p"}
    events: list[str] = []
    result = run(make_provider(fake, tmp_path), make_request(tmp_path, Kind.VIDEO, params), events)
    [sent] = fake.submissions()
    assert sent.body == {
        "prompt": "a video prompt",
        "model": "grok-imagine-video",
        "duration": 3,
        "aspect_ratio": "16:9",
        "resolution": "720p",
    }
    [out] = result.outputs
    assert out.media_type == "video/mp4"
    info = probe(out.path)
    assert info.duration_s == pytest.approx(3.0, abs=0.5)
    [call] = result.calls
    assert call.request_id == fake.bills[0].request_id
    assert call.cost_ticks == fake.billed_ticks() == 3 * 700_000_000
    assert call.endpoint == "/videos/generations"
    assert call.http["polls"] == 2.0
    assert {"submit_s", "poll_s", "download_s"} <= set(call.http)
    assert any(e.startswith("polling: job") for e in events)
    assert not any(d.has_auth for d in fake.requests(Route.DOWNLOAD))


def test_animate_sends_the_image_and_omits_missing_aspect(fake: FakeXai, tmp_path: Path) -> None:
    item = png_input(tmp_path)
    request = make_request(tmp_path, Kind.ANIMATE, {"duration": 2, "resolution": "480p"}, (item,))
    run(make_provider(fake, tmp_path), request)
    [sent] = fake.submissions()
    assert sent.body == {
        "prompt": "a animate prompt",
        "model": "grok-imagine-video",
        "duration": 2,
        "resolution": "480p",
        "image": {"url": data_uri(item)},
    }


def test_reference_video_sends_reference_images(fake: FakeXai, tmp_path: Path) -> None:
    refs = (png_input(tmp_path, "a.png"), png_input(tmp_path, "b.png"))
    request = make_request(tmp_path, Kind.REFERENCE_VIDEO, {"duration": 1}, refs)
    run(make_provider(fake, tmp_path), request)
    [sent] = fake.submissions()
    assert sent.body == {
        "prompt": "a reference_video prompt",
        "model": "grok-imagine-video",
        "duration": 1,
        "reference_images": [{"url": data_uri(refs[0])}, {"url": data_uri(refs[1])}],
    }


def test_video_edit_sends_only_the_video(fake: FakeXai, tmp_path: Path) -> None:
    clip = mp4_input(tmp_path, 2)
    result = run(
        make_provider(fake, tmp_path), make_request(tmp_path, Kind.VIDEO_EDIT, {}, (clip,))
    )
    [sent] = fake.submissions(Route.VIDEO_EDITS)
    assert sent.body == {
        "prompt": "a video_edit prompt",
        "model": "grok-imagine-video",
        "video": {"url": data_uri(clip)},
    }
    assert probe(result.outputs[0].path).duration_s == pytest.approx(2.0, abs=0.5)


def test_extend_sends_video_and_duration(fake: FakeXai, tmp_path: Path) -> None:
    clip = mp4_input(tmp_path, 2)
    request = make_request(tmp_path, Kind.EXTEND, {"duration": 2}, (clip,))
    result = run(make_provider(fake, tmp_path), request)
    [sent] = fake.submissions(Route.EXTENSIONS)
    assert sent.body == {
        "prompt": "a extend prompt",
        "model": "grok-imagine-video",
        "video": {"url": data_uri(clip)},
        "duration": 2,
    }
    assert probe(result.outputs[0].path).duration_s == pytest.approx(4.0, abs=0.5)


# -- configuration ----------------------------------------------------------------------------


def test_no_key_needed_to_construct_but_needed_to_call(fake: FakeXai, tmp_path: Path) -> None:
    provider = make_provider(fake, tmp_path, env={})
    asyncio.run(provider.aclose())
    with pytest.raises(AuthError, match="XAI_API_KEY") as caught:
        run(provider, make_request(tmp_path, Kind.IMAGE))
    assert caught.value.hint is not None and "XAI_API_KEY" in caught.value.hint
    assert fake.log == []


def test_env_base_url_wins_over_settings(fake: FakeXai, tmp_path: Path) -> None:
    settings = ProviderSettings(base_url="https://api.invalid/v1", poll_interval=0.001)
    env = {"XAI_API_KEY": KEY, "XAI_BASE_URL": fake.base_url}
    run(
        make_provider(fake, tmp_path, env=env, settings=settings),
        make_request(tmp_path, Kind.IMAGE),
    )
    assert len(fake.requests(Route.IMAGES)) == 1


@pytest.mark.parametrize("url", ["http://api.x.ai/v1", "ftp://127.0.0.1/v1", "http://10.0.0.1/v1"])
def test_plain_http_is_refused_off_loopback(fake: FakeXai, tmp_path: Path, url: str) -> None:
    env = {"XAI_API_KEY": KEY, "XAI_BASE_URL": url}
    with pytest.raises(UsageError, match="https"):
        run(make_provider(fake, tmp_path, env=env), make_request(tmp_path, Kind.IMAGE))


def test_settings_reach_the_provider(fake: FakeXai, tmp_path: Path) -> None:
    settings = ProviderSettings(max_concurrency=3, poll_interval=0.5, timeout=42, max_retries=1)
    provider = make_provider(fake, tmp_path, settings=settings)
    assert (provider.max_concurrency, provider.poll_interval, provider.job_timeout) == (3, 0.5, 42)
    assert provider.policy.max_retries == 1
    assert provider.name == "xai"


# -- transient faults end in success, with the retries in the record --------------------------


@pytest.mark.parametrize("status", [408, 409, 500, 502, 503, 504, 529])
def test_server_errors_on_polls_are_retried(fake: FakeXai, tmp_path: Path, status: int) -> None:
    """Finding 7: 529 on a poll was not retried (GET retries xAI's SDK's statuses)."""
    fake.inject(Route.POLL, Fault.http(status), Fault.http(status))
    result = run(make_provider(fake, tmp_path), make_request(tmp_path, Kind.VIDEO, {"duration": 1}))
    assert result.calls[0].retries == 2
    assert len(fake.submissions()) == 1


@pytest.mark.parametrize("status", [500, 502, 503, 504, 529])
def test_a_5xx_after_a_post_is_maybe_billed_and_not_resent(
    fake: FakeXai, tmp_path: Path, status: int
) -> None:
    """Finding 2: a POST was re-sent after a 5xx (each one may have been billed)."""
    reported: list[CallRecord] = []
    fake.inject(Route.VIDEOS, Fault.http(status))
    request = replace(
        make_request(tmp_path, Kind.VIDEO, {"duration": 1}), on_billed=reported.append
    )
    with pytest.raises(MaybeBilled) as caught:
        run(make_provider(fake, tmp_path), request)
    assert len(fake.requests(Route.VIDEOS)) == 1
    assert caught.value.info.status_code == status
    assert caught.value.info.request_id  # the answer's x-request-id
    [call] = reported
    assert call.billing is Billing.MAYBE_BILLED and call.endpoint == "/videos/generations"
    assert call.request_id == caught.value.info.request_id


def test_rate_limit_honours_retry_after(fake: FakeXai, tmp_path: Path) -> None:
    sleeps = Sleeps()
    fake.inject(Route.IMAGES, Fault.rate_limited(retry_after="7"))
    result = run(make_provider(fake, tmp_path, sleep=sleeps), make_request(tmp_path, Kind.IMAGE))
    assert result.calls[0].retries == 1
    assert sleeps.delays[0] == 7.0
    assert len(fake.requests(Route.IMAGES)) == 2


def test_a_connection_reset_after_a_post_is_maybe_billed(fake: FakeXai, tmp_path: Path) -> None:
    fake.inject(Route.IMAGES, Fault.reset())
    with pytest.raises(MaybeBilled, match="answer was lost"):
        run(make_provider(fake, tmp_path), make_request(tmp_path, Kind.IMAGE))
    assert len(fake.requests(Route.IMAGES)) == 1


def test_a_connection_reset_on_a_poll_is_retried(fake: FakeXai, tmp_path: Path) -> None:
    fake.inject(Route.POLL, Fault.reset())
    result = run(make_provider(fake, tmp_path), make_request(tmp_path, Kind.VIDEO, {"duration": 1}))
    assert result.calls[0].retries == 1


def test_a_refused_connection_is_retried_even_for_a_post(tmp_path: Path) -> None:
    """Nothing left this machine: a retry cannot pay twice."""
    with FakeXai() as server:
        port = server.port
    settings = ProviderSettings(base_url=f"http://127.0.0.1:{port}/v1", max_retries=2)
    provider = make_provider(server, tmp_path, settings=settings)  # nothing listens there now
    with pytest.raises(TransientError) as caught:
        run(provider, make_request(tmp_path, Kind.IMAGE))
    assert caught.value.info.retries == 2


def test_read_timeout_is_retried(fake: FakeXai, tmp_path: Path) -> None:
    fake.inject(Route.POLL, Fault.hang())
    provider = make_provider(fake, tmp_path, request_timeout=0.3)
    result = run(provider, make_request(tmp_path, Kind.VIDEO, {"duration": 1}))
    assert result.calls[0].retries == 1
    assert len(fake.submissions()) == 1


def test_faults_while_polling_and_downloading_are_retried(fake: FakeXai, tmp_path: Path) -> None:
    fake.inject(Route.VIDEOS, Fault.rate_limited("0"))
    fake.inject(Route.POLL, Fault.http(502), Fault.malformed_json(), Fault.reset())
    fake.inject(Route.DOWNLOAD, Fault.truncated(), Fault.http(503))
    provider = make_provider(fake, tmp_path, settings=ProviderSettings(
        base_url=fake.base_url, poll_interval=0.001, max_retries=4
    ))  # fmt: skip
    result = run(provider, make_request(tmp_path, Kind.VIDEO, {"duration": 1}))
    assert result.calls[0].retries == 1 + 3 + 2
    assert len(fake.submissions()) == 1
    assert probe(result.outputs[0].path).media_type == "video/mp4"


def test_slow_download_succeeds(fake: FakeXai, tmp_path: Path) -> None:
    fake.inject(Route.DOWNLOAD, Fault.slow(0.01))
    provider = make_provider(fake, tmp_path, image_response_format="url")
    result = run(provider, make_request(tmp_path, Kind.IMAGE))
    assert result.calls[0].retries == 0
    assert result.outputs[0].path.read_bytes().startswith(PNG_MAGIC)


def test_retries_run_out_as_transient_error(fake: FakeXai, tmp_path: Path) -> None:
    fake.inject(Route.IMAGES, *[Fault.rate_limited("0")] * 4)
    with pytest.raises(TransientError, match="429") as caught:
        run(make_provider(fake, tmp_path), make_request(tmp_path, Kind.IMAGE))
    assert caught.value.info.retries == 3
    assert len(fake.requests(Route.IMAGES)) == 4
    assert fake.billed_ticks() == 0


# -- refusals are not retried -------------------------------------------------------------------


def test_401_is_an_auth_error(fake: FakeXai, tmp_path: Path) -> None:
    fake.inject(Route.IMAGES, Fault.unauthorized())
    with pytest.raises(AuthError, match="missing or wrong") as caught:
        run(make_provider(fake, tmp_path), make_request(tmp_path, Kind.IMAGE))
    assert caught.value.info.status_code == 401
    assert len(fake.log) == 1


def test_400_for_a_bad_key_is_an_auth_error(tmp_path: Path) -> None:
    with FakeXai(api_key="the-right-key") as server:
        with pytest.raises(AuthError):
            run(make_provider(server, tmp_path), make_request(tmp_path, Kind.IMAGE))
        assert len(server.log) == 1


@pytest.mark.parametrize("status", [400, 403, 404, 405, 415, 422])
def test_client_errors_are_rejections(fake: FakeXai, tmp_path: Path, status: int) -> None:
    fake.inject(Route.IMAGES, Fault.http(status, message="the server says no"))
    with pytest.raises(RequestRejected, match="the server says no") as caught:
        run(make_provider(fake, tmp_path), make_request(tmp_path, Kind.IMAGE))
    assert caught.value.info.status_code == status
    assert len(fake.log) == 1


def test_malformed_json_answer_to_a_post_is_not_resent(fake: FakeXai, tmp_path: Path) -> None:
    fake.inject(Route.IMAGES, Fault.malformed_json())
    with pytest.raises(ProviderError, match="not a JSON object"):
        run(make_provider(fake, tmp_path), make_request(tmp_path, Kind.IMAGE))
    assert len(fake.log) == 1


@pytest.mark.parametrize("fault", [Fault.moderation(), Fault.blocked()])
def test_image_moderation_is_refused(fake: FakeXai, tmp_path: Path, fault: Fault) -> None:
    fake.inject(Route.IMAGES, fault)
    with pytest.raises(ModerationRefused):
        run(make_provider(fake, tmp_path), make_request(tmp_path, Kind.IMAGE))
    assert len(fake.log) == 1
    assert list((tmp_path / "work" / "image").iterdir()) == []


def test_video_moderation_is_refused_and_forgotten(fake: FakeXai, tmp_path: Path) -> None:
    fake.inject(Route.VIDEOS, Fault.moderation())
    provider = make_provider(fake, tmp_path)
    with pytest.raises(ModerationRefused):
        run(provider, make_request(tmp_path, Kind.VIDEO, {"duration": 1}))
    assert provider.journal.records() == []


def test_failed_job_reports_its_error(fake: FakeXai, tmp_path: Path) -> None:
    fake.inject(Route.VIDEOS, Fault.job_failed("invalid_argument", "the prompt is too vague"))
    provider = make_provider(fake, tmp_path)
    with pytest.raises(JobFailed, match="invalid_argument: the prompt is too vague"):
        run(provider, make_request(tmp_path, Kind.VIDEO, {"duration": 1}))
    assert provider.journal.records() == []


@pytest.mark.parametrize("download", [Fault.corrupt(), Fault.wrong_type()])
def test_invalid_downloads_are_never_outputs(
    fake: FakeXai, tmp_path: Path, download: Fault
) -> None:
    fake.inject(Route.DOWNLOAD, download)
    request = make_request(tmp_path, Kind.VIDEO, {"duration": 1})
    with pytest.raises(InvalidMedia):
        run(make_provider(fake, tmp_path), request)
    assert list(request.workdir.iterdir()) == []


def test_truncated_downloads_that_persist_are_invalid(fake: FakeXai, tmp_path: Path) -> None:
    fake.inject(Route.DOWNLOAD, *[Fault.truncated()] * 4)
    request = make_request(tmp_path, Kind.VIDEO, {"duration": 1})
    with pytest.raises(InvalidMedia):
        run(make_provider(fake, tmp_path), request)
    assert list(request.workdir.iterdir()) == []


def test_size_cap_is_enforced(fake: FakeXai, tmp_path: Path) -> None:
    request = make_request(tmp_path, Kind.VIDEO, {"duration": 1})
    with pytest.raises(InvalidMedia, match="cap"):
        run(make_provider(fake, tmp_path, video_cap=100), request)
    assert list(request.workdir.iterdir()) == []


# -- never pay twice: the journal --------------------------------------------------------------


def test_request_id_is_journaled_before_the_first_poll(fake: FakeXai, tmp_path: Path) -> None:
    provider = make_provider(fake, tmp_path)
    seen: list[JobRecord | None] = []
    request = make_request(tmp_path, Kind.VIDEO, {"duration": 1})

    def progress(phase: Phase, detail: str) -> None:
        if phase is Phase.POLLING:
            seen.append(provider.journal.get(request.key))

    async def go() -> GenerationResult:
        try:
            return await provider.generate(request, progress)
        finally:
            await provider.aclose()

    result = asyncio.run(go())
    assert seen and seen[0] is not None
    assert seen[0].request_id == result.calls[0].request_id
    assert fake.requests(Route.POLL)[0].number > fake.submissions()[0].number
    # the provider leaves the record, now with the job's result (its URL and bill): the
    # engine drops it once the outputs are stored
    kept = provider.journal.get(request.key)
    assert kept is not None and kept.result is not None
    assert replace(kept, result=None) == seen[0]
    assert kept.result.urls[0].startswith(f"{fake.origin}/files/")
    assert kept.result.cost_ticks == result.calls[0].cost_ticks == fake.bills[0].ticks


def test_a_video_job_says_when_it_moves_from_polling_to_downloading(
    fake: FakeXai, tmp_path: Path
) -> None:
    events: list[str] = []
    result = run(
        make_provider(fake, tmp_path), make_request(tmp_path, Kind.VIDEO, {"duration": 1}), events
    )
    phases = [e.split(":", 1)[0] for e in events]
    assert phases[-1] == "downloading" and "polling" in phases, events
    assert events[-1] == f"downloading: job {result.calls[0].request_id} done; fetching its result"


def test_a_journaled_job_is_resumed_not_resubmitted(fake: FakeXai, tmp_path: Path) -> None:
    first = make_provider(fake, tmp_path)
    request = make_request(tmp_path, Kind.VIDEO, {"duration": 1})
    run(first, request)
    events: list[str] = []
    result = run(make_provider(fake, tmp_path), request, events)
    assert len(fake.submissions()) == 1
    assert f"polling: resuming job {result.calls[0].request_id}" in events


def test_expired_job_needs_retry_expired(fake: FakeXai, tmp_path: Path) -> None:
    fake.inject(Route.VIDEOS, Fault.job_expired())
    request = make_request(tmp_path, Kind.VIDEO, {"duration": 1})
    with pytest.raises(JobExpired) as caught:
        run(make_provider(fake, tmp_path), request)
    assert caught.value.hint is not None and "--retry-expired" in caught.value.hint
    assert Journal(tmp_path / ".imaginebuild" / "journal").get(request.key) is not None
    with pytest.raises(JobExpired):  # a plain rerun does not pay again
        run(make_provider(fake, tmp_path), request)
    assert len(fake.submissions()) == 1
    result = run(make_provider(fake, tmp_path, retry_expired=True), request)
    assert len(fake.submissions()) == 2
    assert result.calls[0].request_id == fake.bills[-1].request_id


def test_unknown_job_is_reported_as_expired(fake: FakeXai, tmp_path: Path) -> None:
    request = make_request(tmp_path, Kind.VIDEO, {"duration": 1})
    journal = Journal(tmp_path / ".imaginebuild" / "journal")
    journal.put(JobRecord(request.key, request.asset, "no-such-id", "/videos/generations",
                          "grok-imagine-video", time.time()))  # fmt: skip
    with pytest.raises(JobExpired, match="no longer knows"):
        run(make_provider(fake, tmp_path), request)
    assert fake.submissions() == []


def test_expired_result_url_is_reported_and_resubmitted_on_request(
    fake: FakeXai, tmp_path: Path
) -> None:
    fake.inject(Route.DOWNLOAD, Fault.expired_url())
    request = make_request(tmp_path, Kind.VIDEO, {"duration": 1})
    with pytest.raises(JobExpired, match="expired"):
        run(make_provider(fake, tmp_path), request)
    fake.expire_urls()
    run(make_provider(fake, tmp_path, retry_expired=True), request)
    assert len(fake.submissions()) == 2


def test_job_deadline_is_a_timeout_that_keeps_the_job(tmp_path: Path) -> None:
    with FakeXai(pending_polls=10_000) as server:
        settings = ProviderSettings(base_url=server.base_url, poll_interval=0.005, timeout=0.2)
        request = make_request(tmp_path, Kind.VIDEO, {"duration": 1})
        with pytest.raises(JobTimeout):
            run(make_provider(server, tmp_path, settings=settings), request)
        assert Journal(tmp_path / ".imaginebuild" / "journal").get(request.key) is not None
        server.pending_polls = 0
        run(make_provider(server, tmp_path), request)
        assert len(server.submissions()) == 1


_CHILD = textwrap.dedent(
    """
    import asyncio, os, sys
    from pathlib import Path
    from imaginebuild.model import Kind, ProviderSettings
    from imaginebuild.providers.base import GenerationRequest, ProviderContext
    from imaginebuild.providers.xai.provider import XaiProvider

    base_url, root = sys.argv[1], Path(sys.argv[2])
    context = ProviderContext(
        settings=ProviderSettings(base_url=base_url, poll_interval=0.01),
        state_dir=root / ".imaginebuild",
        env=dict(os.environ),
    )
    request = GenerationRequest("clip", Kind.VIDEO, "killkey", "a prompt", "grok-imagine-video",
                                {"duration": 1}, (), root / "work")
    (root / "work").mkdir(exist_ok=True)
    asyncio.run(XaiProvider(context).generate(request))
    """
)


def test_sigkill_while_polling_then_rerun_submits_once(tmp_path: Path) -> None:
    with FakeXai(pending_polls=100_000) as server:
        root = str(Path(__file__).resolve().parents[1])
        env = {**os.environ, "PYTHONPATH": root, "XAI_API_KEY": KEY}
        child = subprocess.Popen(
            [sys.executable, "-c", _CHILD, server.base_url, str(tmp_path)], env=env
        )
        try:
            wait_for_state(
                lambda: len(server.requests(Route.POLL)) >= 3, "three polls", child=child
            )
            assert_still_running(child, "the kill", lambda: "")
            child.send_signal(signal.SIGKILL)
        finally:
            child.wait(timeout=10)
        assert child.returncode == -signal.SIGKILL
        server.pending_polls = 0
        request = GenerationRequest(
            "clip", Kind.VIDEO, "killkey", "a prompt", "grok-imagine-video",
            {"duration": 1}, (), tmp_path / "work",
        )  # fmt: skip
        events: list[str] = []
        result = run(make_provider(server, tmp_path), request, events)
        assert len(server.submissions()) == 1
        assert any("resuming job" in e for e in events)
        assert probe(result.outputs[0].path).media_type == "video/mp4"


# -- the key never leaks ---------------------------------------------------------------------------


def test_the_key_appears_in_no_file_and_no_message(tmp_path: Path) -> None:
    messages: list[str] = []
    with FakeXai() as server:
        server.inject(Route.IMAGES, Fault.http(400, message=f"Incorrect API key provided: {KEY}"))
        server.inject(Route.EDITS, Fault.http(503, message=f"echo {KEY}"), *[Fault.reset()] * 4)
        server.inject(Route.VIDEOS, Fault.job_failed("invalid_argument", f"key {KEY}"))
        server.inject(Route.DOWNLOAD, Fault.corrupt())
        requests = [
            make_request(tmp_path, Kind.IMAGE),
            make_request(tmp_path, Kind.EDIT, {}, (png_input(tmp_path),)),
            make_request(tmp_path, Kind.VIDEO, {"duration": 1}, key="v1" * 8),
            make_request(tmp_path, Kind.ANIMATE, {"duration": 1}, (png_input(tmp_path),), "v2" * 8),
        ]
        for request in requests:
            events: list[str] = []
            with pytest.raises(ProviderError) as caught:
                run(make_provider(server, tmp_path), request, events)
            error = caught.value
            messages += [str(error), repr(error), error.hint or "", repr(error.info), *events]
        logged = repr(server.log)
    assert any("Incorrect API key" in m for m in messages)
    assert KEY not in "\n".join(messages)
    assert KEY not in logged
    for path in tmp_path.rglob("*"):
        if path.is_file():
            assert KEY.encode() not in path.read_bytes(), path


# -- the translation boundary: every foreign failure becomes one of ours ---------------------


def _httpx_errors() -> list[type[httpx.HTTPError]]:
    found: list[type[httpx.HTTPError]] = []
    pending: list[type[httpx.HTTPError]] = [httpx.HTTPError]
    while pending:
        cls = pending.pop()
        pending.extend(cls.__subclasses__())
        if cls is not httpx.HTTPStatusError:  # never raised: statuses are read, not raised
            found.append(cls)
    return found


# The one exception to "the provider is tested against the fake server over real HTTP":
# httpx.MockTransport raises each of httpx's ~20 exception classes from inside the client,
# which no server can do (a real socket yields only the few a network produces: connect,
# read, protocol errors). The test holds the translation table complete, including for
# exception classes a future httpx adds; every other test here goes through the fake.
@pytest.mark.parametrize("method", ["GET", "POST"])
@pytest.mark.parametrize("error", _httpx_errors(), ids=lambda c: c.__name__)
def test_every_httpx_error_is_translated(error: type[httpx.HTTPError], method: str) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise error(f"boom for {request.headers['authorization']}")

    async def go() -> None:
        client = httpx.AsyncClient(transport=httpx.MockTransport(handler))
        retrier = Retrier(RetryPolicy(max_retries=1, base_delay=0), Sleeps(), random.Random(1))
        http = XaiHttp(client, "https://api.x.ai/v1", KEY, retrier)
        body = {"prompt": "x"} if method == "POST" else None
        try:
            await http.call(method, "/images/generations", body, CallInfo())
        finally:
            await client.aclose()

    with pytest.raises(ProviderError) as caught:
        asyncio.run(go())
    assert KEY not in str(caught.value)
    if not issubclass(error, httpx.TransportError):
        return
    not_sent = issubclass(error, (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout))
    if method == "GET" or not_sent:
        assert isinstance(caught.value, TransientError)
        assert caught.value.info.retries == 1
    else:  # the request may have reached the API: never re-sent
        assert isinstance(caught.value, MaybeBilled)


@pytest.mark.parametrize(
    ("payload", "message", "code"),
    [
        (b'{"code": "Client specified an invalid argument", "error": "bad n"}', "bad n",
         "Client specified an invalid argument"),
        (b'{"error": {"message": "bad size", "type": "invalid_request_error", "code": "x"}}',
         "bad size", "x"),
        (b'{"error": "plain words"}', "plain words", None),
        (b"<html>oops</html>", "<html>oops</html>", None),
        (b"", "(empty body)", None),
    ],
)  # fmt: skip
def test_the_three_error_shapes_are_read(payload: bytes, message: str, code: str | None) -> None:
    assert error_message(payload) == (message, code)


@pytest.mark.parametrize(
    ("status", "text", "kind"),
    [
        (401, "whatever", AuthError),
        (400, "Incorrect API key provided", AuthError),
        (400, "Content policy violation", ModerationRefused),
        (400, "n must be at most 10", RequestRejected),
        (403, "no credits", RequestRejected),
        (404, "model not found", RequestRejected),
        (422, "missing prompt", RequestRejected),
        (503, "busy", TransientError),
    ],
)
def test_statuses_map_to_errors(status: int, text: str, kind: type[ProviderError]) -> None:
    error = error_for_status(status, json.dumps({"error": text}).encode(), CallInfo(asset="a"))
    assert type(error) is kind
    assert text in error.message
    assert error.info.status_code == status
    assert error.info.asset == "a"
