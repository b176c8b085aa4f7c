"""Cache poisoning: media that does not decode, is empty, or has the wrong size or length is
never recorded as a success, in the local cache, the lockfile, out/ or the remote cache.

Each case runs one asset against a fake that returns bad media, expects the step
to fail with nothing recorded, then lets the fake behave and checks that the
rerun records the good media (and, for a video, resumes the paid job).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from reliability_support import (
    Proj,
    action_entries,
    all_problems,
    cli,
    make_project,
    states,
    video_submissions,
)

from imaginebuild.mediaprobe import probe
from imaginebuild.store.lockfile import read_lockfile
from imaginebuild.testing.fake_media import render_mp4, video_size
from imaginebuild.testing.fake_xai import FakeXai, Fault, Route

ONE_CLIP = """
version: 1
provider: xai
providers:
  xai: {poll_interval: 0.01, max_retries: 0}
assets:
  clip: {kind: video, prompt: a clip, duration: 4, resolution: 480p, aspect_ratio: "16:9"}
"""

ONE_STILL = """
version: 1
provider: xai
providers:
  xai: {poll_interval: 0.01, max_retries: 1}
assets:
  still: {kind: image, prompt: a still, resolution: 1k, aspect_ratio: "16:9"}
"""

CLIP_AND_DERIVED = """
version: 1
provider: xai
providers:
  xai: {poll_interval: 0.01, max_retries: 1}
assets:
  clip: {kind: video, prompt: a clip, duration: 3, resolution: 480p, aspect_ratio: "16:9"}
  restyled: {kind: video_edit, prompt: restyle it, inputs: [clip]}
  longer: {kind: extend, prompt: go on, inputs: [clip], duration: 2}
"""


@pytest.fixture
def fake() -> Iterator[FakeXai]:
    with FakeXai(pending_polls=0) as server:
        yield server


def remote_project(tmp_path: Path, fake: FakeXai, text: str) -> tuple[Proj, Path]:
    """A project whose builds are pushed to a file:// remote cache; the remote's folder."""
    remote = tmp_path / "remote"
    remote.mkdir()
    proj = make_project(
        tmp_path / "p", fake, text, extra_env={"IMAGINEBUILD_REMOTE": remote.as_uri()}
    )
    return proj, remote


def remote_actions(remote: Path) -> list[Path]:
    """Action entries in the remote cache."""
    return sorted((remote / "v1" / "actions").rglob("*.json"))


def mp4_file(folder: Path, seconds: int, aspect: str = "16:9") -> Path:
    """A real 480p MP4 of `seconds` at `aspect`, to be served as every job's result."""
    path = folder / f"served-{seconds}s-{aspect.replace(':', 'x')}.mp4"
    path.write_bytes(render_mp4(video_size("480p", aspect), seconds, (200, 40, 40)))
    return path


def rejected_blobs(proj: Proj) -> set[str]:
    """Blobs of rejected takes: paid results kept, never recorded as a success."""
    found: set[str] = set()
    for index in proj.cache.glob("takes/*/*.json"):
        for take in json.loads(index.read_text())["takes"]:
            if take["origin"] == "rejected":
                found |= {o["sha256"] for o in take["outputs"]}
    return found


def assert_nothing_recorded(proj: Proj, remote: Path, asset: str) -> None:
    """The asset failed and no trace of a success is left anywhere (a paid result that
    failed the check is kept as a rejected take only)."""
    locked = read_lockfile(proj.folder / "mediafile.lock")
    assert asset not in locked
    assert not list(proj.out.glob(f"{asset}*"))
    known = {o.sha256 for e in locked.values() for o in e.outputs}
    blobs = {p.name for p in (proj.cache / "blobs").glob("*/[!.]*")}
    assert blobs <= known | rejected_blobs(proj), "a blob no build or rejected take claims"
    assert len(action_entries(proj.cache)) == len(locked)
    assert len(remote_actions(remote)) == len(locked)
    assert all_problems(proj) == []


def test_a_good_build_is_pushed_so_the_remote_checks_mean_something(
    fake: FakeXai, tmp_path: Path
) -> None:
    proj, remote = remote_project(tmp_path, fake, ONE_CLIP)
    done = cli(proj, "--json", "run")
    assert done.returncode == 0, done.stderr
    assert len(remote_actions(remote)) == 1
    assert len(action_entries(proj.cache)) == 1


@dataclass(frozen=True)
class Poison:
    """A bad answer for the clip: faults to queue or a file the fake serves instead."""

    name: str
    route: Route | None = None
    fault: Fault | None = None
    served_seconds: int | None = None  # serve a real MP4 of this length instead
    empty: bool = False  # serve a zero-byte file instead


IN_TRANSIT = [
    Poison("bytes that do not decode", Route.DOWNLOAD, Fault.corrupt()),
    Poison("served as text/html", Route.DOWNLOAD, Fault.wrong_type()),
    Poison("truncated body", Route.DOWNLOAD, Fault.truncated()),
]
BAD_RESULTS = [
    Poison("an empty file", empty=True),
    Poison("one second instead of four", served_seconds=1),
    Poison("eight seconds instead of four", served_seconds=8),
]


def poison_the_fake(fake: FakeXai, tmp_path: Path, poison: Poison) -> None:
    """Queue the fault, or make every finished job's result the bad file."""
    if poison.empty:
        (tmp_path / "empty.mp4").write_bytes(b"")
        fake.video_file = tmp_path / "empty.mp4"
    elif poison.served_seconds is not None:
        fake.video_file = mp4_file(tmp_path, poison.served_seconds)
    else:
        assert poison.route is not None and poison.fault is not None
        fake.inject(poison.route, poison.fault)


def fail_once(fake: FakeXai, tmp_path: Path, poison: Poison) -> tuple[Proj, Path]:
    """Run the clip against the poisoned fake: it fails and nothing is recorded."""
    proj, remote = remote_project(tmp_path, fake, ONE_CLIP)
    poison_the_fake(fake, tmp_path, poison)
    first = cli(proj, "--json", "run")
    assert first.returncode == 1, first.stderr
    assert states(first) == {"clip": "failed"}
    assert_nothing_recorded(proj, remote, "clip")
    assert fake.pending_faults() == 0
    fake.video_file = None  # jobs submitted from now on finish with good media
    return proj, remote


def assert_good_clip_recorded(proj: Proj, remote: Path) -> None:
    """The clip is built, lasts what was asked, and is in both caches."""
    info = probe(proj.out / "clip.mp4")
    assert info.duration_s is not None and abs(info.duration_s - 4) <= 1
    assert len(remote_actions(remote)) == 1
    assert all_problems(proj) == []


@pytest.mark.parametrize("poison", IN_TRANSIT, ids=lambda p: p.name)
def test_media_spoiled_in_transit_is_never_recorded_and_the_rerun_resumes_the_paid_job(
    fake: FakeXai, tmp_path: Path, poison: Poison
) -> None:
    proj, remote = fail_once(fake, tmp_path, poison)
    again = cli(proj, "--json", "run")
    assert again.returncode == 0, again.stderr
    assert states(again) == {"clip": "built"}
    assert_good_clip_recorded(proj, remote)
    assert video_submissions(fake.log)["a clip"] == 1, "the paid job was not resumed"


@pytest.mark.parametrize("poison", BAD_RESULTS, ids=lambda p: p.name)
def test_a_bad_job_result_is_never_recorded(fake: FakeXai, tmp_path: Path, poison: Poison) -> None:
    fail_once(fake, tmp_path, poison)


def test_after_a_bad_job_result_a_rerun_pays_nothing_and_force_submits_a_new_job(
    fake: FakeXai, tmp_path: Path
) -> None:
    proj, remote = fail_once(fake, tmp_path, BAD_RESULTS[1])
    assert rejected_blobs(proj), "the paid result was not kept as a rejected take"
    assert not list(proj.cache.glob("paid/*")), "the rejected result was kept twice"
    held = cli(proj, "--json", "run")
    assert held.returncode == 1 and "rejected take" in held.stderr
    assert states(held) == {"clip": "failed"}
    assert video_submissions(fake.log)["a clip"] == 1, "the rejected key was paid again"
    assert_nothing_recorded(proj, remote, "clip")
    again = cli(proj, "--json", "run", "--force", "clip")
    assert again.returncode == 0, again.stderr
    assert_good_clip_recorded(proj, remote)
    assert video_submissions(fake.log)["a clip"] == 2


def test_a_moderated_image_is_never_recorded(fake: FakeXai, tmp_path: Path) -> None:
    proj, remote = remote_project(tmp_path, fake, ONE_STILL)
    fake.inject(Route.IMAGES, Fault.moderation())
    first = cli(proj, "--json", "run")
    assert first.returncode == 1, first.stderr
    assert states(first) == {"still": "failed"}
    assert_nothing_recorded(proj, remote, "still")
    again = cli(proj, "--json", "run")
    assert again.returncode == 0, again.stderr
    assert probe(proj.out / "still.png").media_type.startswith("image/")


def test_an_image_of_the_wrong_size_is_never_recorded(tmp_path: Path) -> None:
    with FakeXai(pending_polls=1, full_size=False) as small:  # 128x72 for 1k 16:9
        proj, remote = remote_project(tmp_path, small, ONE_STILL)
        done = cli(proj, "--json", "run")
    assert done.returncode == 1, "a thumbnail was accepted as a 1k image"
    assert_nothing_recorded(proj, remote, "still")


def test_a_video_of_the_wrong_shape_is_never_recorded(fake: FakeXai, tmp_path: Path) -> None:
    proj, remote = remote_project(tmp_path, fake, ONE_CLIP)
    fake.video_file = mp4_file(tmp_path, 4, "9:16")
    done = cli(proj, "--json", "run")
    assert done.returncode == 1, "a portrait clip was accepted for a 16:9 request"
    assert_nothing_recorded(proj, remote, "clip")


def _build_clip_then_serve(fake: FakeXai, tmp_path: Path, seconds: int) -> tuple[Proj, Path]:
    proj, remote = remote_project(tmp_path, fake, CLIP_AND_DERIVED)
    done = cli(proj, "--json", "run", "clip")
    assert done.returncode == 0, done.stderr
    fake.video_file = mp4_file(tmp_path, seconds)
    return proj, remote


def test_a_video_edit_shorter_than_its_input_is_never_recorded(
    fake: FakeXai, tmp_path: Path
) -> None:
    proj, remote = _build_clip_then_serve(fake, tmp_path, 1)
    done = cli(proj, "--json", "run", "restyled")
    assert done.returncode == 1, json.loads(done.stdout)
    assert_nothing_recorded(proj, remote, "restyled")


def test_an_extension_without_the_original_clip_is_never_recorded(
    fake: FakeXai, tmp_path: Path
) -> None:
    proj, remote = _build_clip_then_serve(fake, tmp_path, 2)
    done = cli(proj, "--json", "run", "longer")
    assert done.returncode == 1, json.loads(done.stdout)
    assert_nothing_recorded(proj, remote, "longer")


def test_a_right_length_extension_is_accepted(fake: FakeXai, tmp_path: Path) -> None:
    proj, _ = _build_clip_then_serve(fake, tmp_path, 5)
    done = cli(proj, "--json", "run", "longer")
    assert done.returncode == 0, done.stderr
    assert states(done) == {"clip": "up_to_date", "longer": "built"}
