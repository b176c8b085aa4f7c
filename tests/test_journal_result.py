"""A finished job's result URL is journaled before its download, so a cut-off download
resumes from that URL without polling; a lapsed URL is polled for a fresh one (a GET,
never a new POST); a URL the journal holds is untrusted and refused unless it is http(s)
as the provider allows. The ledger keeps one line per request id throughout.

End to end through the in-process CLI against the fake xAI server over real HTTP on
127.0.0.1 (it bills $0.02 per 1k image and $0.05 per 480p video second).
"""

from __future__ import annotations

import json
import os
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from conftest import CliResult, run_cli, set_environment, xai_env

from imaginebuild.money import usd_to_ticks
from imaginebuild.providers.xai.provider import BACKOFF_ENV
from imaginebuild.store.journal import JobRecord, Journal, encode_record
from imaginebuild.testing.fake_faults import Fault, Route
from imaginebuild.testing.fake_xai import FakeXai

KEY = "xai-JOURNALURL-KEY-0123456789abcdef"
CLIP = usd_to_ticks("0.05")  # one 480p second
IMAGE = usd_to_ticks("0.02")
MEDIAFILE = """
version: 1
provider: xai
providers:
  xai: {poll_interval: 0.01, max_retries: 2}
assets:
  clip: {kind: video, prompt: waves, duration: 1, resolution: 480p}
  still: {kind: image, prompt: one}
"""
CUT_OFF = [Fault.truncated()] * 3  # outlasts max_retries: 2

pytestmark = pytest.mark.fake(pending_polls=0)


@pytest.fixture
def project(tmp_path: Path, fake: FakeXai, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A project with one video and one image; the in-process CLI points at the fake."""
    set_environment(
        monkeypatch, xai_env(fake, key=KEY, IMAGINEBUILD_CACHE_DIR=str(tmp_path / "cache"))
    )
    monkeypatch.setenv(BACKOFF_ENV, "0.001,0.002")
    folder = tmp_path / "p"
    folder.mkdir()
    (folder / "mediafile.yaml").write_text(MEDIAFILE.lstrip(), encoding="utf-8")
    monkeypatch.chdir(folder)
    return folder


def cli(*args: str) -> CliResult:
    """`imaginebuild ARGS…` in-process, in the project."""
    done = run_cli(*args, cwd=Path.cwd(), env=os.environ)
    assert "Traceback" not in done.stderr, done.stderr
    return done


def journal(folder: Path) -> Journal:
    return Journal(folder / ".imaginebuild" / "journal")


def only_record(folder: Path) -> JobRecord:
    (record,) = journal(folder).records()
    return record


def ledger_lines(folder: Path) -> list[dict[str, Any]]:
    text = (folder / ".imaginebuild" / "ledger.jsonl").read_text()
    return [json.loads(raw) for raw in text.splitlines() if raw.strip()]


def cut_off_run(fake: FakeXai, name: str) -> JobRecord:
    """Build `name` with its download cut off: the run fails, the job and its URL stay."""
    fake.inject(Route.DOWNLOAD, *CUT_OFF)
    assert cli("run", name).code == 1
    record = only_record(Path.cwd())
    assert record.result is not None, "the result URL was not journaled"
    return record


POLLS = {"clip": Route.POLL, "still": Route.IMAGE_POLL}
POSTS = {"clip": Route.VIDEOS, "still": Route.IMAGES}
BILLS = {"clip": CLIP, "still": IMAGE}


@pytest.mark.parametrize("name", ["clip", "still"])
def test_a_cut_off_download_resumes_from_the_journaled_url_without_polling(
    project: Path, fake: FakeXai, name: str
) -> None:
    record = cut_off_run(fake, name)
    assert record.result is not None and record.result.cost_ticks == BILLS[name]
    polls, downloads = len(fake.requests(POLLS[name])), len(fake.requests(Route.DOWNLOAD))
    done = cli("--json", "run", name)
    assert done.code == 0, done.stderr
    assert done.json["assets"][0]["state"] == "built"
    assert len(fake.requests(POLLS[name])) == polls, "the rerun polled the job"
    fetched = fake.requests(Route.DOWNLOAD)[downloads:]
    journaled = [url.removeprefix(fake.origin) for url in record.result.urls]
    assert [r.path for r in fetched] == journaled  # each journaled URL once, nothing else
    assert not any(r.has_auth for r in fake.requests(Route.DOWNLOAD)), "the key went to the host"
    assert len(fake.requests(POSTS[name])) == 1
    (line,) = ledger_lines(project)
    assert line["request_id"] == record.request_id and line["ticks"] == BILLS[name]
    assert fake.billed_ticks() == BILLS[name]
    assert journal(project).records() == []  # stored: the record is gone


@pytest.mark.parametrize("name", ["clip", "still"])
def test_a_lapsed_journaled_url_is_polled_once_for_a_fresh_one(
    project: Path, fake: FakeXai, name: str
) -> None:
    cut_off_run(fake, name)
    fake.lapse_urls()
    polls = len(fake.requests(POLLS[name]))
    done = cli("-v", "run", name)
    assert done.code == 0, done.stderr
    assert "journaled result URL has lapsed" in done.stdout + done.stderr
    assert len(fake.requests(POLLS[name])) == polls + 1
    assert len(fake.requests(POSTS[name])) == 1, "the rerun paid again"
    (line,) = ledger_lines(project)
    assert fake.billed_ticks() == line["ticks"] == BILLS[name]


def test_a_lapsed_url_is_replaced_in_the_journal_by_the_polled_one(
    project: Path, fake: FakeXai
) -> None:
    first = cut_off_run(fake, "clip")
    fake.lapse_urls()
    # the journaled URL answers 404 (taking one fault), then the fresh URL is cut off again
    fake.inject(Route.DOWNLOAD, Fault.truncated(), *CUT_OFF)
    assert cli("run", "clip").code == 1
    second = only_record(project)
    assert first.result is not None and second.result is not None
    assert second.result.urls != first.result.urls
    assert replace(second, result=None) == replace(first, result=None)
    polls = len(fake.requests(Route.POLL))
    assert cli("run", "clip").code == 0
    assert len(fake.requests(Route.POLL)) == polls  # the new URL, fetched without a poll
    assert len(fake.requests(Route.VIDEOS)) == 1 and len(ledger_lines(project)) == 1


@pytest.mark.parametrize(
    "url",
    [
        "file:///etc/passwd",
        "http://example.com/x.mp4",  # plain http off this machine
        "ftp://127.0.0.1/x.mp4",
        "not a url at all",
    ],
)
def test_a_hostile_journaled_url_is_refused_and_the_job_polled(
    project: Path, fake: FakeXai, url: str
) -> None:
    record = cut_off_run(fake, "clip")
    assert record.result is not None
    hostile = replace(record, result=replace(record.result, urls=(url,)))
    journal(project).path_for(record.key).write_bytes(encode_record(hostile))
    polls, downloads = len(fake.requests(Route.POLL)), len(fake.requests(Route.DOWNLOAD))
    done = cli("-v", "run", "clip")
    assert done.code == 0, done.stderr
    assert "the journal's result URL is refused" in done.stdout + done.stderr
    assert len(fake.requests(Route.POLL)) == polls + 1
    assert len(fake.requests(Route.DOWNLOAD)) == downloads + 1  # the polled URL only
    assert len(fake.requests(Route.VIDEOS)) == 1 and len(ledger_lines(project)) == 1


def test_a_video_record_with_several_urls_is_refused(project: Path, fake: FakeXai) -> None:
    record = cut_off_run(fake, "clip")
    assert record.result is not None
    doubled = replace(record, result=replace(record.result, urls=record.result.urls * 2))
    journal(project).path_for(record.key).write_bytes(encode_record(doubled))
    done = cli("-v", "run", "clip")
    assert done.code == 0 and "one result URL, not 2" in done.stdout + done.stderr


@pytest.mark.parametrize(
    "result",
    [
        "garbage",
        {"urls": "http://127.0.0.1/x.mp4", "model": "m", "cost_ticks": 1, "done_at": 1.0},
        {"urls": [7], "model": "m", "cost_ticks": 1, "done_at": 1.0},
        {"urls": [], "model": "m", "cost_ticks": 1, "done_at": 1.0},
        {"urls": ["http://127.0.0.1/x.mp4"], "model": "m", "cost_ticks": "1", "done_at": 1.0},
        {"urls": ["http://127.0.0.1/x.mp4"], "model": "m", "cost_ticks": 1},
    ],
)
def test_a_garbled_result_is_reported_as_a_corrupt_record(
    project: Path, fake: FakeXai, result: object
) -> None:
    record = cut_off_run(fake, "clip")
    path = journal(project).path_for(record.key)
    data = json.loads(path.read_text())
    data["result"] = result
    path.write_text(json.dumps(data))
    done = cli("run", "clip")
    assert done.code != 0
    assert f"{path}: unreadable journal record" in done.stderr
    assert len(fake.requests(Route.VIDEOS)) == 1 and len(ledger_lines(project)) == 1


def test_a_version_1_record_without_a_url_still_resumes_by_polling(
    project: Path, fake: FakeXai
) -> None:
    record = cut_off_run(fake, "clip")
    path = journal(project).path_for(record.key)
    old = {k: v for k, v in json.loads(path.read_text()).items() if k != "result"}
    path.write_text(json.dumps({**old, "version": 1}))
    assert only_record(project) == replace(record, result=None)
    polls = len(fake.requests(Route.POLL))
    assert cli("run", "clip").code == 0
    assert len(fake.requests(Route.POLL)) == polls + 1
    assert len(fake.requests(Route.VIDEOS)) == 1 and len(ledger_lines(project)) == 1
