"""A runner SIGKILLed mid-run, end to end through the CLI on a real Redis coordinator.

The run is killed once the coordinator shows its reservations against the team
cap and the journal shows its jobs in flight (states, never an amount of time).
The dead runner's reservations must then expire after the documented TTL (the
team cap's held money is reclaimed; what was submitted counts as maybe billed),
and a rerun resumes the journaled jobs without submitting any of them again.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

from redisserver import RedisServer

from imaginebuild.coordinator.config import open_coordinator
from imaginebuild.store.journal import decode_record
from imaginebuild.testing.fake_xai import FakeXai, Route
from tests.conftest import SUBPROCESS_TIMEOUT_S, assert_still_running, wait_for_state

ROOT = Path(__file__).resolve().parents[1]
KEY = "xai-TEAM-KILL-0123456789abcdef"
VIDEOS = 4
MEDIAFILE = """\
version: 1
provider: xai
providers:
  xai: {{poll_interval: 0.01, max_retries: 0}}
assets:
{assets}
"""


def video_project(folder: Path) -> Path:
    folder.mkdir(parents=True)
    lines = [f"  v{i}: {{kind: video, prompt: clip {i}, duration: 1}}" for i in range(VIDEOS)]
    (folder / "mediafile.yaml").write_text(MEDIAFILE.format(assets="\n".join(lines)))
    return folder


def jobs_in(journal: Path) -> list[Path]:
    """The journal's job records (not the temp files of a write in progress)."""
    found = journal.glob("*.json") if journal.is_dir() else []
    return [f for f in found if not f.name.startswith(".")]


def test_a_sigkilled_runner_s_reservations_expire_and_a_rerun_pays_nothing_twice(
    tmp_path: Path,
) -> None:
    redis = RedisServer.start_in(tmp_path / "redis")
    project = video_project(tmp_path / "p")
    journal = project / ".imaginebuild" / "journal"
    try:
        with FakeXai(job_latency=2.0) as fake:
            env = {k: v for k, v in os.environ.items() if not k.startswith(("XAI_", "IMAGINE"))}
            env.update(
                PYTHONPATH=str(ROOT), XAI_BASE_URL=fake.base_url, XAI_API_KEY=KEY,
                IMAGINEBUILD_COORDINATOR=redis.url, IMAGINEBUILD_COORDINATOR_TTL="1",
            )  # fmt: skip
            team = open_coordinator(env)
            capped = subprocess.run(
                [sys.executable, "-m", "imaginebuild", "team", "set", "--max-usd-per-day", "50"],
                cwd=project, env=env, capture_output=True, text=True, timeout=SUBPROCESS_TIMEOUT_S,
            )  # fmt: skip
            assert capped.returncode == 0, capped.stderr
            err = tmp_path / "run.err"
            with err.open("wb") as sink:
                run = subprocess.Popen(
                    [sys.executable, "-m", "imaginebuild", "run", "-j", "8"],
                    cwd=project, env=env, stdout=subprocess.DEVNULL, stderr=sink,
                )  # fmt: skip
            log = err.read_text
            wait_for_state(
                lambda: team.status().reserved_ticks > 0 and len(jobs_in(journal)) >= 2,
                "reservations held in Redis and two jobs journaled",
                child=run,
                log=log,
            )
            (holder,) = team.status().runners
            assert f":{run.pid}:" in f"{holder.runner}:" and holder.reservations >= 2
            assert_still_running(run, "the kill", log, signal.SIGKILL)
            run.send_signal(signal.SIGKILL)
            run.wait()
            submitted = len(fake.submissions(Route.VIDEOS))
            journaled = {decode_record(f.read_bytes()).asset for f in jobs_in(journal)}
            assert len(journaled) >= 2  # nothing but the runner removes a record

            wait_for_state(
                lambda: not team.status().runners, "the dead runner's reservations expired"
            )
            after = team.status()
            assert after.reserved_ticks == 0  # the cap's held money is reclaimed
            assert after.expired >= len(journaled)
            assert after.spent_today_ticks > 0  # what it submitted may have been billed

            rerun = subprocess.run(
                [sys.executable, "-m", "imaginebuild", "--json", "run"],
                cwd=project, env=env, capture_output=True, text=True, timeout=300,
            )  # fmt: skip
            assert rerun.returncode == 0, rerun.stderr
            assert {a["state"] for a in json.loads(rerun.stdout)["assets"]} == {"built"}
            prompts = [r.body["prompt"] for r in fake.submissions(Route.VIDEOS)]  # type: ignore[index]
            # A journaled job is resumed, never submitted again. A submission whose answer
            # the kill cut off before it was journaled is the one case sent twice (counted
            # as maybe billed); at most the jobs in flight at the kill.
            for asset in journaled:
                assert prompts.count(f"clip {asset[1:]}") == 1, (asset, prompts)
            assert len(prompts) <= VIDEOS + (submitted - len(journaled))
            assert set(prompts) == {f"clip {i}" for i in range(VIDEOS)}
            assert fake.rate_limits.refused == 0
            assert team.status().reserved_ticks == 0
            team.close()
    finally:
        redis.stop()
