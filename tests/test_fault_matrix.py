"""The fault matrix: every fault class of the fake xAI server × every kind, through the CLI.

Each cell builds a three-asset project whose `target` is made by the xai provider
against the fake server, with one fault scripted on the route the kind uses:

    target (xai, the kind under test) ──▶ after (local)        other (local)

A transient fault must end in success after retries, the retries visible in
`show --json`'s record (`record.calls[].retries`) and in the ledger, and every
billed tick accounted for. Any other fault must fail `target` with exit 1 and a
clear message, skip `after`, and — with `--keep-going` — still build `other`.
A server that never answers is bounded by the request timeout.

CI runs each fault on one kind (kinds rotate so every kind is hit);
IMAGINEBUILD_SLOW=1 runs the full matrix. Time is compressed, not faked: the
provider's request timeout and backoff delays are shortened for the test.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from conftest import run_cli, set_environment, xai_env

from imaginebuild.model import Kind
from imaginebuild.providers.xai.provider import BACKOFF_ENV
from imaginebuild.testing.fake_faults import FaultKind
from imaginebuild.testing.fake_xai import FakeXai, Fault, Route, render_image, render_mp4

KEY = "xai-LEAKCHECK-5b1d0c9e8f7a6b5c4d3e2f10"
SLOW = os.environ.get("IMAGINEBUILD_SLOW") == "1"
# A request timeout decides an outcome only where a hang makes it: the cells with a hang
# use a short one (a hang outlasts it by far), every other cell one no healthy loopback
# answer under load comes near.
HANG_TIMEOUT_S = 2.0
REQUEST_TIMEOUT_S = 30.0
MAX_RETRIES = 2

KINDS = [k.value for k in Kind]
VIDEO_KINDS = frozenset({"video", "animate", "reference_video", "video_edit", "extend"})
IMAGE_KINDS = frozenset({"image", "edit"})
SUBMIT = {
    "image": Route.IMAGES,
    "edit": Route.EDITS,
    "video": Route.VIDEOS,
    "animate": Route.VIDEOS,
    "reference_video": Route.VIDEOS,
    "video_edit": Route.VIDEO_EDITS,
    "extend": Route.EXTENSIONS,
}
TARGET = {
    "image": 'kind: image, prompt: "the target", resolution: 1k, aspect_ratio: "1:1"',
    "edit": 'kind: edit, prompt: "the target", inputs: [art/in.png]',
    "video": 'kind: video, prompt: "the target", duration: 1, resolution: 480p',
    "animate": 'kind: animate, prompt: "the target", inputs: [art/in.png], duration: 1',
    "reference_video": 'kind: reference_video, prompt: "the target", inputs: [art/in.png], '
    "duration: 1",
    "video_edit": 'kind: video_edit, prompt: "the target", inputs: [art/in.mp4]',
    "extend": 'kind: extend, prompt: "the target", inputs: [art/in.mp4], duration: 2',
}
MEDIAFILE = """\
version: 1
provider: xai
providers:
  xai:
    {{poll_interval: 0.01, max_retries: {retries}, timeout: 20, request_timeout: {request_timeout}}}
assets:
  target: {{{target}}}
  after: {{kind: {after}, provider: local, prompt: "after the target", inputs: [target]}}
  other: {{kind: image, provider: local, prompt: "an independent leaf"}}
"""


@dataclass(frozen=True)
class Cell:
    """One fault class: where it strikes, which kinds it applies to, what must follow."""

    name: str
    route: str  # "submit", "poll" or "download"
    faults: tuple[Fault, ...]
    kinds: frozenset[str]
    retries: int | None = None  # built after this many retries; None: the step fails
    error: str = ""  # a phrase the failure message must contain
    hint: str = ""  # a phrase the hint must contain
    resumes: bool = False  # after the failure, a plain rerun finishes the same (paid) job

    @property
    def transient(self) -> bool:
        return self.retries is not None


ALL = frozenset(KINDS)
EXHAUST = tuple(Fault.http(503) for _ in range(MAX_RETRIES + 1))
EXHAUST_429 = tuple(Fault.rate_limited("0") for _ in range(MAX_RETRIES + 1))
BILLED_HINT = "may have been billed"
CELLS = [
    # transient: success after retries (a POST only when the API refused it before any work)
    Cell("submit-429", "submit", (Fault.rate_limited("0"),), ALL, retries=1),
    Cell("submit-429-no-retry-after", "submit", (Fault.rate_limited(None),), ALL, retries=1),
    Cell(
        "submit-two-in-a-row", "submit", (Fault.rate_limited("0"), Fault.rate_limited("0")), ALL, 2
    ),
    Cell("submit-slow", "submit", (Fault.slow(0.02),), ALL, retries=0),
    # a POST whose answer was lost may have been billed: never re-sent, recorded as such
    *(
        Cell(
            f"submit-{s}",
            "submit",
            (Fault.http(s),),
            ALL,
            error="after the request was sent",
            hint=BILLED_HINT,
        )
        for s in (500, 502, 503, 504)
    ),
    Cell(
        "submit-reset", "submit", (Fault.reset(),), ALL, error="answer was lost", hint=BILLED_HINT
    ),
    Cell("submit-hang", "submit", (Fault.hang(),), ALL, error="answer was lost", hint=BILLED_HINT),
    Cell(
        "submit-truncated", "submit", (Fault.truncated(),), ALL, error="cut off", hint=BILLED_HINT
    ),
    Cell("poll-503", "poll", (Fault.http(503),), VIDEO_KINDS, retries=1),
    Cell("poll-429", "poll", (Fault.rate_limited("0"),), VIDEO_KINDS, retries=1),
    Cell("poll-reset", "poll", (Fault.reset(),), VIDEO_KINDS, retries=1),
    Cell("poll-hang", "poll", (Fault.hang(),), VIDEO_KINDS, retries=1),
    Cell("poll-truncated", "poll", (Fault.truncated(),), VIDEO_KINDS, retries=1),
    Cell("poll-malformed-json", "poll", (Fault.malformed_json(),), VIDEO_KINDS, retries=1),
    Cell("poll-slow", "poll", (Fault.slow(0.02),), VIDEO_KINDS, retries=0),
    Cell("download-503", "download", (Fault.http(503),), VIDEO_KINDS, retries=1),
    Cell("download-reset", "download", (Fault.reset(),), VIDEO_KINDS, retries=1),
    Cell("download-hang", "download", (Fault.hang(),), VIDEO_KINDS, retries=1),
    Cell("download-truncated", "download", (Fault.truncated(),), VIDEO_KINDS, retries=1),
    Cell("download-slow", "download", (Fault.slow(0.01),), VIDEO_KINDS, retries=0),
    # terminal: the step fails with a clear error
    Cell("submit-400", "submit", (Fault.http(400, "bad field"),), ALL, error="HTTP 400"),
    Cell("submit-403", "submit", (Fault.http(403),), ALL, error="not permitted", hint="credits"),
    Cell("submit-404", "submit", (Fault.http(404, "no such model"),), ALL, error="no such model"),
    Cell("submit-422", "submit", (Fault.http(422, "missing field"),), ALL, error="HTTP 422"),
    Cell("submit-401", "submit", (Fault.unauthorized(),), ALL, error="API key", hint="XAI_API_KEY"),
    Cell("submit-429-exhausted", "submit", EXHAUST_429, ALL, error="after 2 retries", hint="later"),
    Cell(
        "submit-malformed-json",
        "submit",
        (Fault.malformed_json(),),
        ALL,
        error="not a JSON object",
        hint=BILLED_HINT,
    ),
    Cell("moderation", "submit", (Fault.moderation(),), ALL, error="content-policy"),
    Cell("blocked", "submit", (Fault.blocked(),), IMAGE_KINDS, error="content-policy"),
    Cell("job-failed", "submit", (Fault.job_failed(),), VIDEO_KINDS, error="failed"),
    Cell(
        "job-expired",
        "submit",
        (Fault.job_expired(),),
        VIDEO_KINDS,
        error="expired",
        hint="--retry-expired",
    ),
    Cell(
        "poll-unknown-job",
        "poll",
        (Fault.unknown_job(),),
        VIDEO_KINDS,
        error="no longer knows",
        hint="--retry-expired",
    ),
    Cell("poll-503-exhausted", "poll", EXHAUST, VIDEO_KINDS, error="after 2 retries", resumes=True),
    Cell(
        "download-expired-url",
        "download",
        (Fault.expired_url(),),
        VIDEO_KINDS,
        error="expired",
        hint="--retry-expired",
        resumes=True,
    ),
    Cell(
        "download-corrupt",
        "download",
        (Fault.corrupt(),),
        VIDEO_KINDS,
        error="decode",
        resumes=True,
    ),
    Cell(
        "download-wrong-type",
        "download",
        (Fault.wrong_type(),),
        VIDEO_KINDS,
        error="text/html",
        resumes=True,
    ),
]


def _matrix() -> list[Any]:
    """(cell, kind) pairs: every applicable kind under IMAGINEBUILD_SLOW, else one, rotating."""
    params = []
    for index, cell in enumerate(CELLS):
        kinds = [k for k in KINDS if k in cell.kinds]
        chosen = kinds if SLOW else [kinds[index % len(kinds)]]
        params += [pytest.param(cell, kind, id=f"{cell.name}-{kind}") for kind in chosen]
    return params


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Input files for the kinds that take them: a PNG and a 3-second MP4."""
    folder = tmp_path_factory.mktemp("media")
    (folder / "in.png").write_bytes(render_image((64, 64), (200, 30, 30), "png"))
    (folder / "in.mp4").write_bytes(render_mp4((64, 36), 3, (0, 90, 0)))
    return folder


@dataclass
class Session:
    """A project wired to the fake through the environment, run with the in-process CLI."""

    folder: Path
    cache: Path
    fake: FakeXai
    outputs: list[str]

    def cli(self, *argv: str) -> tuple[int, str, str]:
        done = run_cli(*argv, cwd=self.folder, env=os.environ)
        self.outputs += [done.stdout, done.stderr]
        return done.code, done.stdout, done.stderr

    def json(self, *argv: str) -> tuple[int, dict[str, Any]]:
        code, out, _ = self.cli("--json", *argv)
        data = json.loads(out)
        assert isinstance(data, dict)
        return code, data

    def ledger(self) -> list[dict[str, Any]]:
        path = self.folder / ".imaginebuild" / "ledger.jsonl"
        if not path.is_file():
            return []
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


@pytest.fixture
def session_for(
    tmp_path: Path,
    media: Path,
    fake: FakeXai,
    monkeypatch: pytest.MonkeyPatch,
) -> Callable[..., Session]:
    def make(kind: str, request_timeout: float = REQUEST_TIMEOUT_S) -> Session:
        folder = tmp_path / "project"
        (folder / "art").mkdir(parents=True)
        shutil.copy(media / "in.png", folder / "art" / "in.png")
        shutil.copy(media / "in.mp4", folder / "art" / "in.mp4")
        after = "video_edit" if kind in VIDEO_KINDS else "edit"
        text = MEDIAFILE.format(
            retries=MAX_RETRIES, request_timeout=request_timeout, target=TARGET[kind], after=after
        )
        (folder / "mediafile.yaml").write_text(text, encoding="utf-8")
        # Compress time through real configuration: millisecond backoff (retries unchanged);
        # the mediafile sets a short request timeout through `providers.xai.request_timeout`.
        env = xai_env(fake, key=KEY, IMAGINEBUILD_CACHE_DIR=str(tmp_path / "cache"))
        set_environment(monkeypatch, {**env, BACKOFF_ENV: "0.005,0.02"})
        monkeypatch.chdir(folder)
        return Session(folder, tmp_path / "cache", fake, [])

    return make


def _route(cell: Cell, kind: str) -> Route:
    return {"submit": SUBMIT[kind], "poll": Route.POLL, "download": Route.DOWNLOAD}[cell.route]


def _states(data: dict[str, Any]) -> dict[str, str]:
    return {a["name"]: a["state"] for a in data["assets"]}


def _assert_no_key_anywhere(session: Session) -> None:
    for root in (session.folder, session.cache):
        for path in root.rglob("*"):
            if path.is_file():
                assert KEY.encode() not in path.read_bytes(), path
    for text in session.outputs:
        assert KEY not in text


@pytest.mark.parametrize(("cell", "kind"), _matrix())
def test_fault(cell: Cell, kind: str, session_for: Callable[..., Session]) -> None:
    hangs = any(f.kind is FaultKind.HANG for f in cell.faults)
    session = session_for(kind, HANG_TIMEOUT_S if hangs else REQUEST_TIMEOUT_S)
    fake = session.fake
    if cell.route == "poll":
        fake.pending_polls = 0  # the first poll carries the full answer, for the fault to break
    fake.inject(_route(cell, kind), *cell.faults)
    code, report = session.json("run", "--keep-going")
    states = _states(report)
    assert fake.pending_faults() == 0, "the fault was never met"
    if cell.transient:
        _assert_recovered(session, cell, code, states)
    else:
        _assert_failed_cleanly(session, cell, kind, code, report)
    _assert_no_key_anywhere(session)


def _assert_recovered(session: Session, cell: Cell, code: int, states: dict[str, str]) -> None:
    assert code == 0, session.outputs[-1]
    assert states == {"target": "built", "after": "built", "other": "built"}
    _, shown = session.json("show", "target")
    calls = shown["record"]["calls"]
    assert sum(c["retries"] for c in calls) == cell.retries
    ledger = [e for e in session.ledger() if e["asset"] == "target"]
    # The ledger line is written the moment the bill is known, before the download: it
    # counts the retries made until then; the record has them all.
    before_bill = 0 if cell.route == "download" else cell.retries
    assert sum(e["retries"] for e in ledger) == before_bill
    assert sum(e["ticks"] for e in ledger) == session.fake.billed_ticks()  # every tick accounted
    assert not list((session.folder / ".imaginebuild" / "journal").glob("*.json"))


def _assert_failed_cleanly(
    session: Session, cell: Cell, kind: str, code: int, report: dict[str, Any]
) -> None:
    err = session.outputs[-1]
    assert code == 1, err
    assert "Traceback" not in err
    target = next(a for a in report["assets"] if a["name"] == "target")
    assert _states(report) == {"target": "failed", "after": "skipped", "other": "built"}
    assert cell.error.lower() in (target.get("error") or target["reason"]).lower(), target
    if cell.hint:
        assert cell.hint in err, err
    assert not list((session.folder / "out").glob("target*"))
    lock = json.loads((session.folder / "mediafile.lock").read_text())
    assert sorted(lock["assets"]) == ["other"]
    _, status = session.json("status")
    assert _states(status)["target"] == "failed"
    if cell.resumes:
        submitted = len(session.fake.submissions())
        code, again = session.json("run")
        assert code == 0 and _states(again)["target"] == "built"
        assert len(session.fake.submissions()) == submitted  # not paid twice


def test_the_matrix_covers_every_fault_class_and_every_kind() -> None:
    used = {f.kind for cell in CELLS for f in cell.faults}
    # A trickle costs the transfer's 10 s grace before it is cut off: it has its own test
    # (test_untrusted.py::test_10_a_result_download_that_trickles_is_cut_off_and_retried).
    assert used | {FaultKind.TRICKLE} == set(FaultKind)
    chosen = {p.values[1] for p in _matrix()}
    assert chosen == set(KINDS)


def test_without_keep_going_a_failure_stops_the_run(session_for: Callable[..., Session]) -> None:
    session = session_for("image")
    session.fake.inject(Route.IMAGES, Fault.http(400))
    code, report = session.json("run", "-j", "1")
    assert code == 1
    states = _states(report)
    assert states["target"] == "failed" and states["after"] == "skipped"
    assert states["other"] == "skipped"  # -j 1: the target (on the critical path) ran first


def test_a_server_that_never_answers_is_bounded_by_the_timeouts(
    session_for: Callable[..., Session],
) -> None:
    session = session_for("video", HANG_TIMEOUT_S)
    # Each hang outlasts any test: only the client's request timeout can end an attempt
    # (on polls, which are retried; a POST that hangs is never re-sent).
    session.fake.pending_polls = 0
    session.fake.inject(Route.POLL, *(Fault.hang() for _ in range(MAX_RETRIES + 1)))
    code, report = session.json("run", "--keep-going")
    assert code == 1
    assert _states(report)["target"] == "failed"
    target = next(a for a in report["assets"] if a["name"] == "target")
    assert "after 2 retries" in target["error"]
    assert "timed out (ReadTimeout)" in target["error"]
    assert session.fake.pending_faults() == 0  # each of the three attempts met a hang


@pytest.mark.parametrize(
    "fault",
    [
        pytest.param(Fault.moderation(), id="moderation"),
        # A failed job reports no usage: the engine records its estimate, marked estimated.
        pytest.param(Fault.job_failed(), id="job-failed"),
    ],
)
def test_a_billed_call_that_fails_is_still_in_the_ledger(
    fault: Fault, session_for: Callable[..., Session]
) -> None:
    session = session_for("video")
    session.fake.inject(Route.VIDEOS, fault)
    code, _ = session.json("run", "--keep-going")
    assert code == 1
    billed = session.fake.billed_ticks()
    assert billed > 0  # the fake bills a job when it is submitted, as the API does
    assert sum(e["ticks"] for e in session.ledger() if e["asset"] == "target") == billed
