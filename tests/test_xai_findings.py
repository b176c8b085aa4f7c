"""The findings of a fake that follows xAI's OpenAPI document, each over real HTTP on loopback.

Each test failed before the contract fixes and passes now (see CHANGELOG, "Unreleased").
"""

from __future__ import annotations

import json
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_xai_e2e import env_for, imaginebuild, states

from imaginebuild.errors import MediafileError
from imaginebuild.mediafile.load import load_mediafile
from imaginebuild.testing.fake_xai import FakeXai, Route, render_image

SQUARE_EDIT_AND_ANIMATE = """
version: 1
provider: xai
providers:
  xai: {poll_interval: 0.01, max_retries: 2}
defaults:
  image: {aspect_ratio: "16:9"}
  video: {aspect_ratio: "16:9"}
assets:
  touched: {kind: edit, prompt: add a hat, inputs: [square.png]}
  moving: {kind: animate, prompt: make it move, inputs: [square.png], duration: 2}
"""


@pytest.fixture
def fake() -> Iterator[FakeXai]:
    with FakeXai(pending_polls=1) as server:
        yield server


def _project(tmp_path: Path, text: str) -> Path:
    (tmp_path / "mediafile.yaml").write_text(textwrap.dedent(text))
    (tmp_path / "square.png").write_bytes(render_image((1024, 1024), (90, 30, 30), "png"))
    return tmp_path


def test_single_edit_and_animate_of_a_square_are_built_once_billed_once_kept(
    fake: FakeXai, tmp_path: Path
) -> None:
    """Finding 1: `aspect_ratio` (inherited from defaults) was sent, and the check demanded it."""
    folder = _project(tmp_path, SQUARE_EDIT_AND_ANIMATE)
    done = imaginebuild(folder, env_for(fake), "run")
    assert done.returncode == 0, done.stderr
    assert states(done) == {"touched": "built", "moving": "built"}
    [edit] = fake.requests(Route.EDITS)
    [animate] = fake.submissions(Route.VIDEOS)
    for sent in (edit, animate):
        assert isinstance(sent.body, dict) and "aspect_ratio" not in sent.body
    assert len(fake.bills) == 2
    again = imaginebuild(folder, env_for(fake), "run")
    assert set(states(again).values()) == {"up_to_date"}
    assert len(fake.bills) == 2  # kept: the rerun pays nothing


@pytest.mark.parametrize(
    ("asset", "words"),
    [
        (
            "{kind: edit, prompt: p, inputs: [square.png], aspect_ratio: '16:9'}",
            "single-image edit",
        ),
        ("{kind: animate, prompt: p, inputs: [square.png], aspect_ratio: '1:1'}", "an animate"),
    ],
)
def test_an_aspect_ratio_the_api_ignores_is_a_located_error(
    tmp_path: Path, asset: str, words: str
) -> None:
    folder = _project(tmp_path, f"version: 1\nassets:\n  a: {asset}\n")
    with pytest.raises(MediafileError) as caught:
        load_mediafile(folder / "mediafile.yaml")
    [problem] = caught.value.diagnostics
    assert problem.path == "assets.a.aspect_ratio" and problem.line == 3
    assert words in problem.message and problem.hint and "drop" in problem.hint


def test_reference_video_longer_than_ten_seconds_is_refused_before_any_call(
    tmp_path: Path,
) -> None:
    """Finding 3: 11-15 s passed validation and the first real call failed."""
    asset = "{kind: reference_video, prompt: p, inputs: [square.png], duration: 12}"
    text = f"version: 1\nassets:\n  a: {asset}\n"
    folder = _project(tmp_path, text)
    with pytest.raises(MediafileError) as caught:
        load_mediafile(folder / "mediafile.yaml")
    assert "duration" in caught.value.diagnostics[0].path


def test_the_fake_refuses_reference_video_over_ten_seconds(fake: FakeXai) -> None:
    import httpx

    answer = httpx.post(
        f"{fake.base_url}/videos/generations",
        headers={"Authorization": "Bearer k"},
        json={"prompt": "p", "duration": 12, "reference_images": [{"url": "https://e/a.png"}]},
    )
    assert answer.status_code == 400 and "10s" in answer.json()["error"]


@pytest.mark.parametrize(
    ("kind_line", "ok"),
    [
        ("{kind: image, prompt: p, aspect_ratio: '21:9'}", True),
        ("{kind: image, prompt: p, aspect_ratio: '5:2', resolution: 1.5k}", True),
        ("{kind: video, prompt: p, model: grok-imagine-video-1.5, resolution: 1080p}", True),
        ("{kind: video, prompt: p, resolution: 1080p}", False),  # 1080p is video-1.5 only
        (
            "{kind: reference_video, prompt: p, inputs: [square.png], "
            "model: grok-imagine-video-1.5, resolution: 1080p}",
            False,  # reference-to-video stays at most 720p
        ),
    ],
)
def test_the_spec_enums_are_accepted_per_model(tmp_path: Path, kind_line: str, ok: bool) -> None:
    """Finding 7: 21:9, 5:2, 1.5k and 1080p (video-1.5) were rejected."""
    folder = _project(tmp_path, f"version: 1\nassets:\n  a: {kind_line}\n")
    if ok:
        load_mediafile(folder / "mediafile.yaml")
    else:
        with pytest.raises(MediafileError, match="1080p"):
            load_mediafile(folder / "mediafile.yaml")


def test_a_real_2k_and_an_off_ratio_1k_image_are_kept(fake: FakeXai, tmp_path: Path) -> None:
    """Finding 4: a live 2k 9:20 image (1440×3200, 4.6 MP) and a reported 1k 16:9 size
    (1408×768, 3.1 % off) failed the output check after they were paid for."""
    text = """
    version: 1
    provider: xai
    assets:
      tall: {kind: image, prompt: p, resolution: 2k, aspect_ratio: "9:20"}
      wide: {kind: image, prompt: q, resolution: 1k, aspect_ratio: "16:9"}
    """
    folder = _project(tmp_path, text)
    done = imaginebuild(folder, env_for(fake), "run")
    assert done.returncode == 0, done.stderr
    assert states(done) == {"tall": "built", "wide": "built"}
    report = json.loads(done.stdout)
    assert len(report["assets"]) == 2
