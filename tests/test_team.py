"""The team coordinator: rates and caps shared by many processes, on SQLite and on a real Redis.

Contention is real: several processes (`python -c WORKER`) take slots and hold
money at once; the checks read the coordinator's own grant log and state. Runs
end to end go through the CLI against the fake xAI server enforcing the team's
rate limits (429 above them), with Redis stopped under a run.
"""

from __future__ import annotations

import itertools
import json
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from conftest import CliResult, assert_still_running, run_cli, xai_env
from redisserver import RedisServer

from imaginebuild.coordinator.base import (
    RateLimit,
    ReservationRequest,
    RunnerId,
    TeamCaps,
)
from imaginebuild.coordinator.config import open_coordinator
from imaginebuild.coordinator.session import settlement
from imaginebuild.errors import CallInfo, JobFailed, RequestRejected, TeamCapReached
from imaginebuild.testing.fake_xai import FakeXai, Route

DEADLINE_S = 60.0  # a harness deadline for a state to be reached, never a timing assertion
KEY = "xai-TEAM-KEY-0123456789abcdef"

WORKER = r"""
import os, random, sys, time
from imaginebuild.coordinator.base import ReservationRequest, RunnerId
from imaginebuild.coordinator.config import open_coordinator
from imaginebuild.errors import TeamCapReached
mode, model, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
c = open_coordinator(os.environ)
me = RunnerId.this_process()
c.heartbeat(me, float(os.environ.get("IMAGINEBUILD_COORDINATOR_TTL", "60")))
print("ready", flush=True)
if mode == "slots":
    taken = 0
    while taken < count:
        a = c.try_slot(model, me, None)
        if a.granted:
            taken += 1
        else:
            time.sleep(a.wait_s)
    print("done", taken, flush=True)
elif mode == "spend":
    rng, paid = random.Random(os.getpid()), 0
    while True:
        ticks = rng.randint(1, 1000)
        try:
            r = c.reserve(me, ReservationRequest("a", model, "k", ticks))
        except TeamCapReached:
            break
        bill = rng.randint(0, ticks)
        c.settle(r.id, bill)
        paid += bill
    print("paid", paid, flush=True)
elif mode == "hold":
    sent = c.reserve(me, ReservationRequest("sent", model, "k1", 700))
    c.try_slot(model, me, sent.id)
    c.reserve(me, ReservationRequest("queued", model, "k2", 300))
    print("held", flush=True)
    time.sleep(3600)
"""


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer.start_in(tmp_path / "redis")
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(params=["embedded", "redis"])
def spec(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The IMAGINEBUILD_COORDINATOR value of each backend (a fresh Redis for the second)."""
    if request.param == "embedded":
        yield f"sqlite:{tmp_path / 'team' / 'coordinator.sqlite3'}"
        return
    server = RedisServer.start_in(tmp_path / "redis")
    try:
        yield server.url
    finally:
        server.stop()


def env_with(spec: str, fake: FakeXai | None = None, **extra: str) -> dict[str, str]:
    """A clean environment naming the coordinator `spec` (plus `extra`); the xai provider
    at `fake` with the test key, or pointed nowhere."""
    if fake is None:
        return xai_env(IMAGINEBUILD_COORDINATOR=spec, **extra)
    return xai_env(fake, key=KEY, IMAGINEBUILD_COORDINATOR=spec, **extra)


def workers(env: dict[str, str], count: int, *argv: str) -> list[subprocess.Popen[str]]:
    return [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, *argv], env=env, stdout=subprocess.PIPE, text=True
        )
        for _ in range(count)
    ]


def outputs(procs: list[subprocess.Popen[str]]) -> list[str]:
    found = []
    for proc in procs:
        out, _ = proc.communicate(timeout=DEADLINE_S)
        assert proc.returncode == 0, out
        found.append(out.strip().splitlines()[-1])
    return found


def wait_for(what: str, check: Callable[[], bool]) -> None:
    deadline = time.monotonic() + DEADLINE_S
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"harness: {what} not reached within {DEADLINE_S:.0f} s")
        time.sleep(0.05)


# -- the coordinator across processes ------------------------------------------------------


def test_the_rate_is_never_exceeded_across_processes(spec: str) -> None:
    env = env_with(spec)
    coordinator = open_coordinator(env)
    coordinator.set_caps(TeamCaps(rates={"m": RateLimit(10, 1)}))
    outputs(workers(env, 4, "slots", "m", "8"))
    times = [g.time_ns for g in coordinator.grants("m")]
    assert len(times) == 32
    # No window of 1 s holds more than 10 grants: grant i and grant i+10 are >= 1 s apart
    # (each log entry is written with the time the bucket granted it, in one transaction).
    gaps = [b - a for a, b in zip(times, times[10:], strict=False)]
    assert min(gaps) >= 1_000_000_000, min(gaps)
    assert min(b - a for a, b in itertools.pairwise(times)) >= RateLimit(10, 1).interval_ns - 1000
    assert coordinator.status().models[0].rate == RateLimit(10, 1)


def test_caps_are_never_exceeded_by_runners_spending_at_once(spec: str) -> None:
    env = env_with(spec)
    coordinator = open_coordinator(env)
    cap = 200_000
    coordinator.set_caps(TeamCaps(max_per_day_ticks=cap))
    paid = [int(line.split()[1]) for line in outputs(workers(env, 4, "spend", "m", "0"))]
    status = coordinator.status()
    assert status.spent_today_ticks == sum(paid) <= cap
    assert status.spent_total_ticks == sum(paid)
    assert status.reserved_ticks == 0
    with pytest.raises(TeamCapReached, match="daily cap"):
        me = RunnerId.this_process()
        coordinator.heartbeat(me, 60)
        coordinator.reserve(me, ReservationRequest("x", "m", "k", cap - sum(paid) + 1))


def test_a_killed_runners_reservations_expire_after_its_ttl(spec: str) -> None:
    env = env_with(spec, IMAGINEBUILD_COORDINATOR_TTL="1")
    coordinator = open_coordinator(env)
    (proc,) = workers(env, 1, "hold", "m", "0")
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "ready"
    assert proc.stdout.readline().strip() == "held"
    assert coordinator.status().reserved_ticks == 1000
    assert_still_running(proc, "the kill", lambda: "")
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    wait_for("the dead runner's reservations expired", lambda: not coordinator.status().runners)
    status = coordinator.status()
    assert status.reserved_ticks == 0
    assert status.expired == 2
    assert status.spent_today_ticks == 700  # the submitted call may have been billed


def test_what_a_step_spends_from_the_team() -> None:
    rejected = RequestRejected("bad", info=CallInfo(status_code=400))
    failed = JobFailed("failed", info=CallInfo(request_id="r1"))
    assert settlement(False, None, None, 50) is None  # no slot taken: never reached the API
    assert settlement(True, 42, None, 50) == 42  # billed: what was billed
    assert settlement(True, None, rejected, 50) is None  # 4xx answer: nothing billed
    assert settlement(True, None, failed, 50) == 50  # may have been billed: the estimate
    assert settlement(True, None, KeyboardInterrupt(), 50) == 50
    assert settlement(False, 7, failed, 50) == 7


# -- the CLI ----------------------------------------------------------------------------------


def cli(folder: Path, env: dict[str, str], *args: str) -> CliResult:
    """`imaginebuild --json ARGS…` in-process in `folder` with exactly `env`."""
    return run_cli("--json", *args, cwd=folder, env=env)


def test_team_set_and_status(spec: str, tmp_path: Path) -> None:
    env = env_with(spec)
    done = cli(tmp_path, env, "team", "set", "--max-usd-per-day", "200", "--rate",
               "grok-imagine-image=4")  # fmt: skip
    assert done.code == 0, done.stderr
    caps = json.loads(done.stdout)["caps"]
    assert caps == {"max_per_day_ticks": 2_000_000_000_000, "max_total_ticks": None,
                    "rates": {"grok-imagine-image": "4/1"}}  # fmt: skip
    done = cli(tmp_path, env, "team", "set", "--max-usd-total", "1000")
    status = json.loads(done.stdout)
    assert status["caps"]["max_per_day_ticks"] == 2_000_000_000_000  # kept
    assert status["caps"]["max_total_ticks"] == 10_000_000_000_000
    plain = run_cli("team", "status", cwd=tmp_path, env=env)
    assert "of $200.00" in plain.stdout and "rate grok-imagine-image: 0 of 4" in plain.stdout


def test_team_set_with_a_bad_value_exits_2_and_creates_nothing(tmp_path: Path) -> None:
    file = tmp_path / "team" / "c.sqlite3"
    for bad in (["--max-usd-per-day", "lots"], ["--rate", "grok=fast"], ["--rate", "=5"]):
        done = cli(tmp_path, env_with(f"sqlite:{file}"), "team", "set", *bad)
        assert done.code == 2, done.stderr
        assert json.loads(done.stdout)["error"].startswith(bad[0])
    assert not file.parent.exists()


IMAGES = """
version: 1
provider: xai
providers:
  xai: {{poll_interval: 0.01, max_retries: 0}}
assets:
{assets}
"""


def image_project(folder: Path, count: int, kind: str = "image") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    lines = []
    for i in range(count):
        if kind == "image":
            lines.append(f"  a{i}: {{kind: image, prompt: picture {i}}}")
        else:
            lines.append(f"  a{i}: {{kind: video, prompt: clip {i}, duration: 1}}")
    (folder / "mediafile.yaml").write_text(IMAGES.format(assets="\n".join(lines)))
    return folder


def test_two_runs_on_one_machine_share_the_rate_and_get_no_429(tmp_path: Path) -> None:
    spec = f"sqlite:{tmp_path / 'team.sqlite3'}"
    with FakeXai(rate_limits={"grok-imagine-image": 5}) as fake:
        env = env_with(spec, fake)
        runs = [
            subprocess.Popen(
                [sys.executable, "-m", "imaginebuild", "--json", "run", "-j", "8"],
                cwd=image_project(tmp_path / f"p{i}", 12),
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for i in range(2)
        ]
        for run in runs:
            out, err = run.communicate(timeout=300)
            assert run.returncode == 0, err
            assert all(a["state"] == "built" for a in json.loads(out)["assets"])
        assert fake.rate_limits.refused == 0
        assert len(fake.submissions(Route.IMAGES)) == 24
    grants = open_coordinator(env_with(spec)).grants("grok-imagine-image")
    assert len(grants) == 24 and len({g.runner for g in grants}) == 2


def test_an_unreachable_coordinator_starts_no_paid_call(tmp_path: Path, fake: FakeXai) -> None:
    dead = RedisServer.start_in(tmp_path / "redis")
    dead.stop()
    project = image_project(tmp_path / "p", 2)
    env = env_with(dead.url, fake)
    done = cli(project, env, "run")
    assert done.code == 3, done.stderr
    assert "team coordinator" in done.stderr and "cannot be reached" in done.stderr
    assert "--no-coordinator" in done.stderr
    assert fake.requests(Route.IMAGES) == []
    assert {a["state"] for a in json.loads(done.stdout)["assets"]} == {"skipped"}
    done = cli(project, env, "run", "--no-coordinator")
    assert done.code == 0, done.stderr
    assert "local limits only" in done.stderr
    assert len(fake.submissions(Route.IMAGES)) == 2


def test_local_steps_need_no_coordinator_and_import_no_redis(tmp_path: Path) -> None:
    project = tmp_path / "p"
    project.mkdir()
    (project / "mediafile.yaml").write_text(
        textwrap.dedent("""
        version: 1
        provider: local
        assets:
          a: {kind: image, prompt: a picture, resolution: 1k}
    """)
    )
    env = env_with("redis://127.0.0.1:9/0")  # nothing listens there
    probe = (
        "import sys; from imaginebuild.cli.app import main; code = main(['run']); "
        "print(code, 'redis' in sys.modules, 'limits' in sys.modules)"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], cwd=project, env=env, capture_output=True, text=True,
        timeout=120,
    )  # fmt: skip
    assert done.stdout.split() == ["0", "False", "False"], done.stderr


@pytest.mark.fake(job_latency=1.0)
def test_redis_stopped_mid_run_stops_new_submissions_and_a_rerun_completes(
    tmp_path: Path, redis_server: RedisServer, fake: FakeXai
) -> None:
    project = image_project(tmp_path / "p", 6, kind="video")
    env = env_with(redis_server.url, fake)
    run = subprocess.Popen(
        [sys.executable, "-m", "imaginebuild", "--json", "run", "-j", "8"],
        cwd=project, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    wait_for("two submissions", lambda: len(fake.submissions()) >= 2)
    redis_server.stop()
    stopped_at = time.time()
    out, err = run.communicate(timeout=300)
    assert run.returncode == 3, err
    assert "cannot be reached" in err and "no new paid call is started" in err
    first = json.loads(out)
    built = {a["name"] for a in first["assets"] if a["state"] == "built"}
    submitted = fake.submissions()
    # nothing was sent after Redis stopped
    assert all(r.at <= stopped_at for r in fake.requests(Route.VIDEOS))
    assert len(built) == len(submitted) >= 2  # every job in flight finished and was recorded
    redis_server.start()
    done = cli(project, env, "run")
    assert done.code == 0, done.stderr
    assert {a["name"] for a in json.loads(done.stdout)["assets"] if a["state"] == "built"} == {
        f"a{i}" for i in range(6)
    } - built
    assert len(fake.submissions()) == 6  # each asset paid once
