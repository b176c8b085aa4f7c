"""The fake xAI server speaks the documented contract: routes, validation, billing, faults."""

from __future__ import annotations

import base64
import io
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import av
import httpx
import pytest
from conftest import wait_for_state
from PIL import Image

from imaginebuild.testing.fake_xai import (
    FakeXai,
    Fault,
    PriceTable,
    Route,
    image_size,
    latency_for,
    parse_fault,
    render_image,
    render_mp4,
    video_size,
)

AUTH = {"Authorization": "Bearer test-key"}


@pytest.fixture
def api(fake: FakeXai) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=fake.base_url, headers=AUTH, timeout=10) as client:
        yield client


def error_of(response: httpx.Response) -> str:
    body = response.json()
    assert set(body) == {"code", "error"}  # the native xAI error shape
    return str(body["error"])


def test_base_url_is_loopback_v1(fake: FakeXai) -> None:
    assert fake.base_url.startswith("http://127.0.0.1:")
    assert fake.base_url.endswith("/v1")


def test_missing_bearer_is_401(fake: FakeXai) -> None:
    response = httpx.post(f"{fake.base_url}/images/generations", json={"prompt": "x"})
    assert response.status_code == 401
    assert "bearer" in error_of(response).lower()
    assert fake.log[0].has_auth is False


def test_wrong_key_is_400_when_a_key_is_configured() -> None:
    with FakeXai(api_key="right") as server:
        url = f"{server.base_url}/images/generations"
        wrong = httpx.post(url, json={"prompt": "x"}, headers={"Authorization": "Bearer nope"})
        right = httpx.post(url, json={"prompt": "x"}, headers={"Authorization": "Bearer right"})
    assert wrong.status_code == 400
    assert "API key" in error_of(wrong)
    assert right.status_code == 200


def test_non_json_body_is_415(api: httpx.Client) -> None:
    response = api.post("/images/generations", content=b"prompt=x")
    assert response.status_code == 415


@pytest.mark.parametrize(
    ("path", "body", "status", "words"),
    [
        ("/images/generations", {}, 422, "prompt"),
        ("/images/generations", {"prompt": "x", "size": "1024x1024"}, 422, "size"),
        ("/images/generations", {"prompt": "x", "n": 11}, 400, "n"),
        ("/images/generations", {"prompt": "x", "aspect_ratio": "5:4"}, 400, "aspect_ratio"),
        ("/images/generations", {"prompt": "x", "resolution": "4k"}, 400, "resolution"),
        ("/images/edits", {"prompt": "x"}, 400, "image"),
        (
            "/images/edits",
            {"prompt": "x", "images": [{"url": "https://e.com/a.png"}] * 4},
            400,
            "1 to 3",
        ),
        ("/images/edits", {"prompt": "x", "image": {"url": "http://e.com/a.png"}}, 400, "https"),
        ("/videos/generations", {"prompt": "x", "duration": 16}, 400, "duration"),
        ("/videos/generations", {"prompt": "x", "aspect_ratio": "21:9"}, 400, "aspect_ratio"),
        ("/videos/generations", {"prompt": "x", "resolution": "1080p"}, 400, "resolution"),
        (
            "/videos/generations",
            {"prompt": "x", "duration": 11, "reference_images": [{"url": "https://e/a.png"}]},
            400,
            "maximum allowed for reference-to-video, which is 10s",
        ),
        (
            "/images/edits",
            {"prompt": "x", "image": {"url": "https://e/a.png", "type": "image_url"}},
            422,
            "image.type",
        ),
        ("/images/generations", {"prompt": "x", "quality": "high"}, 422, "quality"),
        (
            "/videos/generations",
            {"prompt": "x", "image": {"url": "https://e/a.png"}, "reference_images": []},
            400,
            "exclusive",
        ),
        ("/videos/edits", {"prompt": "x"}, 422, "video"),
        ("/videos/edits", {"prompt": "x", "video": {"url": "x"}, "duration": 3}, 422, "duration"),
        (
            "/videos/extensions",
            {"prompt": "x", "video": {"url": "https://e/v.mp4"}, "duration": 11},
            400,
            "duration",
        ),
    ],
)
def test_invalid_fields_are_refused(
    api: httpx.Client, fake: FakeXai, path: str, body: dict[str, object], status: int, words: str
) -> None:
    response = api.post(path, json=body)
    assert response.status_code == status
    assert words in error_of(response)
    assert fake.billed_ticks() == 0


def test_image_generation_serves_real_images_at_expiring_urls(api: httpx.Client) -> None:
    response = api.post("/images/generations", json={"prompt": "x", "n": 2, "aspect_ratio": "2:1"})
    assert response.status_code == 200
    body = response.json()
    assert body["usage"] == {"cost_in_usd_ticks": 400_000_000}
    assert len(body["data"]) == 2
    assert response.headers["x-request-id"]
    for item in body["data"]:
        assert set(item) <= {"url", "b64_json", "mime_type", "file_output", "storage_error"}
        assert item["mime_type"] == "image/jpeg"
        download = httpx.get(item["url"])
        assert download.headers["content-type"] == "image/jpeg"
        with Image.open(io.BytesIO(download.content)) as image:
            assert image.format == "JPEG"
            assert abs(image.size[0] / image.size[1] / 2 - 1) < 0.02  # sides are multiples of 16


def test_full_size_images_match_the_resolution() -> None:
    assert image_size("1k", "1:1") == (1024, 1024)
    assert image_size("2k", "16:9")[0] > 2048
    assert image_size("2k", "9:20") == (1440, 3200)  # a live 2k answer, 4.6 MP
    assert image_size("1k", "16:9") == (1408, 768)  # reported, 3.1 % off the ratio
    assert 2_200_000 < image_size("1.5k", "1:1")[0] ** 2 < 2_500_000
    assert video_size("480p", "16:9") == (848, 480)
    assert video_size("720p", "9:16") == (720, 1280)


def test_result_urls_expire() -> None:
    with FakeXai() as server, httpx.Client(headers=AUTH) as client:
        body = client.post(f"{server.base_url}/images/generations", json={"prompt": "x"}).json()
        assert client.get(body["data"][0]["url"]).status_code == 200
        server.expire_urls()
        assert client.get(body["data"][0]["url"]).status_code == 404
    with FakeXai(url_ttl=-1.0) as server, httpx.Client(headers=AUTH) as client:  # born expired
        body = client.post(f"{server.base_url}/images/generations", json={"prompt": "x"}).json()
        assert client.get(body["data"][0]["url"]).status_code == 404


def test_a_lapsed_url_is_replaced_by_the_next_poll(api: httpx.Client, fake: FakeXai) -> None:
    request_id = api.post("/videos/generations", json={"prompt": "x"}).json()["request_id"]
    assert api.get(f"/videos/{request_id}").status_code == 202  # one pending poll
    old = api.get(f"/videos/{request_id}").json()["video"]["url"]
    fake.expire_urls()
    assert api.get(f"/videos/{request_id}").json()["video"]["url"] == old  # gone for good
    fake.lapse_urls()
    fresh = api.get(f"/videos/{request_id}").json()["video"]["url"]
    assert fresh != old
    assert api.get(old).status_code == 404 and api.get(fresh).status_code == 200


def test_video_job_goes_pending_then_done_with_real_mp4(api: httpx.Client, fake: FakeXai) -> None:
    submitted = api.post("/videos/generations", json={"prompt": "x", "duration": 2})
    request_id = submitted.json()["request_id"]
    first = api.get(f"/videos/{request_id}")
    assert first.status_code == 202
    assert first.content == b""  # the empty 202 body the real API sends
    done = api.get(f"/videos/{request_id}")
    assert done.status_code == 200
    body = done.json()
    assert body["status"] == "done"
    assert body["video"]["duration"] == 2
    assert body["usage"]["cost_in_usd_ticks"] == 2 * 500_000_000
    clip = httpx.get(body["video"]["url"])
    assert clip.headers["content-type"] == "video/mp4"
    with av.open(io.BytesIO(clip.content)) as container:
        assert round(container.duration / 1_000_000) == 2
    assert len(fake.submissions()) == 1
    assert fake.billed_ticks() == 1_000_000_000


def test_unknown_job_is_404(api: httpx.Client) -> None:
    response = api.get("/videos/does-not-exist")
    assert response.status_code == 404
    error_of(response)


def test_prices_are_injectable() -> None:
    prices = PriceTable(image_ticks=5, input_image_ticks=1, video_ticks_per_second={"480p": 3})
    with FakeXai(prices=prices) as server, httpx.Client(headers=AUTH) as client:
        client.post(f"{server.base_url}/images/generations", json={"prompt": "x", "n": 3})
        client.post(
            f"{server.base_url}/images/edits",
            json={"prompt": "x", "image": {"url": "https://e.com/a.png"}},
        )
        client.post(f"{server.base_url}/videos/generations", json={"prompt": "x", "duration": 4})
        assert server.billed_ticks() == 15 + 6 + 12


def test_faults_are_consumed_in_order_per_route(api: httpx.Client, fake: FakeXai) -> None:
    fake.inject(Route.IMAGES, Fault.rate_limited("3"), Fault.http(502))
    first = api.post("/images/generations", json={"prompt": "x"})
    assert (first.status_code, first.headers["retry-after"]) == (429, "3")
    assert api.post("/images/generations", json={"prompt": "x"}).status_code == 502
    assert api.post("/images/generations", json={"prompt": "x"}).status_code == 200
    assert fake.pending_faults() == 0


def test_faults_by_request_number(api: httpx.Client, fake: FakeXai) -> None:
    fake.inject_at(2, Fault.http(500))
    statuses = [api.post("/images/generations", json={"prompt": "x"}).status_code for _ in "abc"]
    assert statuses == [200, 500, 200]


def test_reset_and_malformed_json(api: httpx.Client, fake: FakeXai) -> None:
    fake.inject(Route.IMAGES, Fault.reset(), Fault.malformed_json())
    with pytest.raises(httpx.TransportError):
        api.post("/images/generations", json={"prompt": "x"})
    broken = api.post("/images/generations", json={"prompt": "x"})
    with pytest.raises(ValueError):
        broken.json()


def test_truncated_body_is_detected_by_clients(api: httpx.Client, fake: FakeXai) -> None:
    url = api.post("/images/generations", json={"prompt": "x"}).json()["data"][0]["url"]
    fake.inject(Route.DOWNLOAD, Fault.truncated())
    with pytest.raises(httpx.RemoteProtocolError):
        httpx.get(url)


def test_hang_never_answers(api: httpx.Client, fake: FakeXai) -> None:
    fake.inject(Route.IMAGES, Fault.hang())
    with pytest.raises(httpx.ReadTimeout):
        api.post("/images/generations", json={"prompt": "x"}, timeout=0.2)


def test_job_fates(api: httpx.Client, fake: FakeXai) -> None:
    fake.inject(Route.VIDEOS, Fault.job_failed("invalid_argument", "nope"), Fault.moderation())
    failed_id = api.post("/videos/generations", json={"prompt": "x"}).json()["request_id"]
    blocked_id = api.post("/videos/generations", json={"prompt": "x"}).json()["request_id"]
    api.get(f"/videos/{failed_id}")
    failed = api.get(f"/videos/{failed_id}").json()
    assert failed["status"] == "failed"
    assert failed["error"] == {"code": "invalid_argument", "message": "nope"}
    api.get(f"/videos/{blocked_id}")
    blocked = api.get(f"/videos/{blocked_id}").json()
    assert blocked["status"] == "done"
    assert blocked["video"]["respect_moderation"] is False
    assert blocked["video"]["url"] == ""
    fake.inject(Route.POLL, Fault.job_expired())
    assert api.get(f"/videos/{failed_id}").json()["status"] == "expired"


def test_log_keeps_no_authorization_value(api: httpx.Client, fake: FakeXai) -> None:
    api.post("/images/generations", json={"prompt": "x"})
    [entry] = fake.log
    assert entry.has_auth
    assert "authorization" not in entry.headers
    assert "test-key" not in repr(entry)
    assert entry.body == {"prompt": "x"}
    assert entry.route is Route.IMAGES
    assert entry.status == 200


def test_a_body_the_client_never_finished_is_logged_as_cut_short_and_not_billed(
    fake: FakeXai,
) -> None:
    head = (
        b"POST /v1/images/generations HTTP/1.1\r\nHost: fake\r\nAuthorization: Bearer k\r\n"
        b"Content-Type: application/json\r\nContent-Length: 100\r\n\r\n"
    )
    with socket.create_connection(("127.0.0.1", fake.port)) as dying:
        dying.sendall(head + b'{"prompt": "x", "n')  # the client dies mid-body
    wait_for_state(lambda: len(fake.log) == 1, "the cut-short request logged")
    [entry] = fake.log
    assert entry.cut_short and entry.body == '{"prompt": "x", "n'
    assert fake.billed_ticks() == 0
    httpx.post(f"{fake.base_url}/images/generations", json={"prompt": "x"}, headers=AUTH)
    assert [e.cut_short for e in fake.log] == [True, False]


def test_parse_fault_specs() -> None:
    assert parse_fault("images=http:503") == (Route.IMAGES, Fault.http(503))
    assert parse_fault("poll=rate_limited:2") == (Route.POLL, Fault.rate_limited("2"))
    assert parse_fault("download=slow:0.5") == (Route.DOWNLOAD, Fault.slow(0.5))
    assert parse_fault("videos=moderation")[1] == Fault.moderation()
    with pytest.raises(ValueError):
        parse_fault("images")


def test_command_line_serves_until_terminated(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    process = subprocess.Popen(
        [sys.executable, "-m", "imaginebuild.testing.fake_xai", "--port", "0",
         "--fault", "images=http:503"],
        stdout=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    try:
        assert process.stdout is not None
        base_url = process.stdout.readline().strip()
        assert base_url.startswith("http://127.0.0.1:")
        first = httpx.post(f"{base_url}/images/generations", json={"prompt": "x"}, headers=AUTH)
        second = httpx.post(f"{base_url}/images/generations", json={"prompt": "x"}, headers=AUTH)
        assert (first.status_code, second.status_code) == (503, 200)
    finally:
        process.terminate()
        assert process.wait(timeout=10) == 0


def test_latency_is_drawn_per_prompt_and_seed_and_repeatable() -> None:
    draws = [latency_for(f"p{i}", 1.0, 3.0, "seed") for i in range(200)]
    assert all(1.0 <= d <= 3.0 for d in draws)
    assert min(draws) < 1.3 and max(draws) > 2.7  # spread over the range
    assert draws == [latency_for(f"p{i}", 1.0, 3.0, "seed") for i in range(200)]
    assert draws != [latency_for(f"p{i}", 1.0, 3.0, "other") for i in range(200)]
    assert latency_for("p", 0.2) == latency_for("p", 0.2, 0.1) == 0.2  # no range: the low end


# Latencies a test can never outlast: a job or request held this long is pending by
# construction, whatever the machine's load; the test releases it by lowering the setting.
HELD_S = 3600.0


def test_a_video_job_stays_pending_for_its_prompt_latency_and_is_released_by_the_setting() -> None:
    with (
        FakeXai(pending_polls=0, job_latency=HELD_S, job_latency_max=2 * HELD_S, latency_seed="s")
        as fake,
        httpx.Client(base_url=fake.base_url, headers=AUTH, timeout=10) as client,
    ):  # fmt: skip
        assert fake.job_latency_for("clip") == latency_for("clip", HELD_S, 2 * HELD_S, "s")
        request_id = client.post("/videos/generations", json={"prompt": "clip"}).json()[
            "request_id"
        ]
        assert client.get(f"/videos/{request_id}").status_code == 202
        assert client.get(f"/videos/{request_id}").status_code == 202
        fake.job_latency, fake.job_latency_max = 0.0, None  # read at each poll: released now
        assert client.get(f"/videos/{request_id}").json()["status"] == "done"


def test_image_latency_from_the_command_line(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    process = subprocess.Popen(
        [sys.executable, "-m", "imaginebuild.testing.fake_xai", "--image-latency", str(HELD_S),
         "--image-latency-max", str(2 * HELD_S), "--latency-seed", "k"],
        stdout=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    try:
        assert process.stdout is not None
        base_url = process.stdout.readline().strip()
        with httpx.Client(base_url=base_url, headers=AUTH, timeout=10) as client:
            video = client.post("/videos/generations", json={"prompt": "a"})
            assert video.status_code == 200  # the server answers at once
            with pytest.raises(httpx.ReadTimeout):  # but holds an image request
                client.post("/images/generations", json={"prompt": "a"}, timeout=0.5)
    finally:
        process.terminate()
        assert process.wait(timeout=10) == 0


def _png(size: tuple[int, int]) -> str:
    data = base64.b64encode(render_image(size, (9, 9, 9), "png")).decode()
    return f"data:image/png;base64,{data}"


def test_single_edit_and_animate_keep_the_input_ratio(api: httpx.Client, fake: FakeXai) -> None:
    square = {"url": _png((64, 64))}
    edit = api.post(
        "/images/edits",
        json={"prompt": "x", "image": square, "aspect_ratio": "16:9", "response_format": "url"},
    ).json()
    with Image.open(io.BytesIO(httpx.get(edit["data"][0]["url"]).content)) as image:
        assert image.size[0] == image.size[1]  # the spec: auto-detected from the input
    job = api.post(
        "/videos/generations",
        json={"prompt": "x", "image": square, "aspect_ratio": "16:9", "duration": 1},
    ).json()["request_id"]
    while (answer := api.get(f"/videos/{job}")).status_code == 202:
        pass
    video = httpx.get(answer.json()["video"]["url"]).content
    info = mp4_shape(video)
    assert info[0] == info[1]  # image-to-video ignores aspect_ratio


def mp4_shape(data: bytes) -> tuple[int, int]:
    with av.open(io.BytesIO(data)) as container:
        stream = container.streams.video[0]
        return stream.codec_context.width, stream.codec_context.height


def test_an_extension_is_the_input_plus_the_added_seconds(api: httpx.Client) -> None:
    clip = render_mp4((64, 48), 3, (1, 2, 3))
    url = "data:video/mp4;base64," + base64.b64encode(clip).decode()
    job = api.post(
        "/videos/extensions", json={"prompt": "x", "video": {"url": url}, "duration": 2}
    ).json()["request_id"]
    while (answer := api.get(f"/videos/{job}")).status_code == 202:
        pass
    done = answer.json()
    assert done["video"]["duration"] == 5
    video = httpx.get(done["video"]["url"]).content
    assert mp4_shape(video) == (64, 48)


def test_deferred_images_are_polled_by_request_id(api: httpx.Client, fake: FakeXai) -> None:
    started = api.post(
        "/images/generations", json={"prompt": "x", "deferred": True, "response_format": "url"}
    )
    request_id = started.json()["request_id"]
    done = api.get(f"/images/{request_id}").json()
    assert done["status"] == "done" and done["data"][0]["url"]
    assert done["usage"] == {"cost_in_usd_ticks": 200_000_000}
    assert api.get("/images/no-such-id").status_code == 404
    refused = api.post(
        "/images/generations", json={"prompt": "x", "deferred": True, "response_format": "b64_json"}
    )
    assert refused.status_code == 400


def test_deferred_can_be_refused_per_model() -> None:
    with FakeXai(no_deferred_models=frozenset({"grok-imagine-image-pro"})) as server:
        answer = httpx.post(
            f"{server.base_url}/images/generations",
            headers={"Authorization": "Bearer k"},
            json={"prompt": "x", "model": "grok-imagine-image-pro", "deferred": True},
        )
        assert answer.status_code == 400
        assert "deferred" in answer.json()["error"]
