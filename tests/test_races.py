"""Races: concurrent `run` processes on one project, and `run` while `gc` runs.

Whatever the interleaving, each action key is billed once, exactly one process
reports an asset `built`, and the store, lockfile, outputs and ledger stay
consistent. `IMAGINEBUILD_SLOW=1` repeats the races more times.
"""

from __future__ import annotations

import json
import random
import subprocess
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import wait_for_state
from reliability_support import (
    ASSETS_20,
    MEDIAFILE_20,
    SLOW,
    SUBPROCESS_TIMEOUT_S,
    Proj,
    all_problems,
    cli,
    command,
    image_calls,
    make_project,
    states,
    tree,
    video_submissions,
)

from imaginebuild.testing.fake_xai import FakeXai

REPEATS = 5 if SLOW else 1
HELD_S = 3600.0  # a video job latency no test outlasts: the job is pending until released
WAITING = "waiting for another imaginebuild process"
SMALL = """
version: 1
provider: xai
providers:
  xai: {poll_interval: 0.02}
assets:
  still: {kind: image, prompt: a still}
  clip: {kind: animate, prompt: it moves, inputs: [still], duration: 2, resolution: 480p}
"""


@pytest.fixture
def fake() -> Iterator[FakeXai]:
    with FakeXai(pending_polls=1, job_latency=0.2) as server:
        yield server


@dataclass
class Child:
    """A running `imaginebuild --json` process whose stdout and stderr go to files."""

    proc: subprocess.Popen[bytes]
    out: Path
    err: Path

    def stderr(self) -> str:
        """What the process has written to stderr so far."""
        return self.err.read_text(errors="replace")


def start(proj: Proj, *args: str) -> Child:
    """Start `imaginebuild --json ARGS`, its output going to files beside the project."""
    name = f"{proj.folder.name}-{args[0]}-{len(list(proj.folder.parent.glob('*.err')))}"
    out, err = proj.folder.parent / f"{name}.out", proj.folder.parent / f"{name}.err"
    with out.open("wb") as stdout, err.open("wb") as stderr:
        proc = subprocess.Popen(
            command("--json", *args), cwd=proj.folder, env=dict(proj.env),
            stdout=stdout, stderr=stderr,
        )  # fmt: skip
    return Child(proc, out, err)


def finish(children: list[Child]) -> list[tuple[int, str, str]]:
    """Wait for every child: (exit code, stdout, stderr) each."""
    codes = [c.proc.wait(timeout=SUBPROCESS_TIMEOUT_S) for c in children]
    return [(code, c.out.read_text(), c.stderr()) for code, c in zip(codes, children, strict=True)]


def all_but_one_waiting(children: list[Child], fake: FakeXai, since: int) -> Callable[[], bool]:
    """Whether every child but one says it waits for the project lock while the one has a
    video job in flight (more than `since` submissions)."""
    return lambda: (
        sum(WAITING in c.stderr() for c in children) == len(children) - 1
        and len(fake.submissions()) > since
    )


def holds_the_project_lock(proj: Proj, child: Child) -> Callable[[], bool]:
    """Whether `child` has taken the project lock (the lock file names its pid)."""
    lock = proj.state / "lock"
    return lambda: lock.is_file() and lock.read_text() == str(child.proc.pid)


def everyones_stderr(children: list[Child]) -> Callable[[], str]:
    """A log for harness errors: each child's stderr so far."""
    return lambda: "\n".join(f"--- {c.err.name}\n{c.stderr()}" for c in children)


def assert_billed_once(fake: FakeXai, first: int = 0) -> None:
    """Every video job and every image call since log entry `first` happened once."""
    log = fake.log[first:]
    assert all(n == 1 for n in video_submissions(log).values()), video_submissions(log)
    assert all(n == 1 for n in image_calls(log).values()), image_calls(log)


@pytest.mark.parametrize("processes", [2, 4])
def test_concurrent_runs_build_each_asset_once(
    fake: FakeXai, tmp_path: Path, processes: int
) -> None:
    for repeat in range(REPEATS):
        first = len(fake.log)
        proj = make_project(tmp_path / f"p{repeat}", fake)
        # The fake holds every video job until each other process is seen waiting for the
        # project lock: the runs overlap by construction, whatever the machine's load.
        fake.job_latency = HELD_S
        submitted = len(fake.submissions())
        children = [start(proj, "run") for _ in range(processes)]
        wait_for_state(
            all_but_one_waiting(children, fake, since=submitted),
            f"{processes - 1} runs waiting while one has a video job in flight",
            log=everyones_stderr(children),
        )
        assert all(c.proc.poll() is None for c in children), everyones_stderr(children)()
        fake.job_latency = 0.2
        results = finish(children)
        assert [code for code, _, _ in results] == [0] * processes, [e for _, _, e in results]
        built: Counter[str] = Counter()
        for _, out, _ in results:
            report = json.loads(out)
            built.update(a["name"] for a in report["assets"] if a["state"] == "built")
            assert all(a["state"] in ("built", "up_to_date", "restored") for a in report["assets"])
        assert len(built) == ASSETS_20
        assert set(built.values()) == {1}, f"assets built by several processes: {built}"
        assert_billed_once(fake, first)
        assert sum(video_submissions(fake.log[first:]).values()) == 13
        assert sum(WAITING in e for _, _, e in results) == processes - 1
        assert all_problems(proj) == []
        assert len(tree(proj)) == 23  # 20 assets, two of them with several images


def test_a_run_and_a_gc_at_once_keep_every_locked_output(fake: FakeXai, tmp_path: Path) -> None:
    proj = make_project(tmp_path / "p", fake)
    assert cli(proj, "run").returncode == 0
    rng = random.Random(7)
    for round_ in range(1, 2 * REPEATS + 1):
        # A new take of two roots: their old entries become garbage for gc, and
        # their dependants (edit_a, anim_b, ext_b, edit_c, anim_c, vedit_a, ext_c) rebuild.
        text = MEDIAFILE_20.replace(
            "prompt: a lighthouse,", f"variant: {round_}, prompt: a lighthouse,"
        )
        text = text.replace(
            "prompt: waves rolling in,", f"variant: {round_}, prompt: waves rolling in,"
        )
        (proj.folder / "mediafile.yaml").write_text(text)
        first = len(fake.log)
        gc_first = rng.random() < 0.5
        staggered = rng.random() < 0.5  # else both start at once and the kernel decides
        names = ["gc", "run"] if gc_first else ["run", "gc"]
        argv = {"gc": ("gc", "--yes"), "run": ("run",)}
        children = [start(proj, *argv[names[0]])]
        if staggered:  # the second starts once the first holds the project lock
            wait_for_state(
                holds_the_project_lock(proj, children[0]),
                f"the project lock held by {names[0]}",
                child=children[0].proc,
                log=everyones_stderr(children),
            )
        children.append(start(proj, *argv[names[1]]))
        results = finish(children)
        assert [code for code, _, _ in results] == [0, 0], [e for _, _, e in results]
        assert all_problems(proj) == [], f"round {round_}"
        assert_billed_once(fake, first)
        offline = cli(proj, "--json", "run", "--offline")
        assert offline.returncode == 0, offline.stderr
        assert set(states(offline).values()) == {"up_to_date"}
        checkout = cli(proj, "checkout")
        assert checkout.returncode == 0, checkout.stderr


def test_gc_in_one_project_keeps_what_another_project_on_the_same_cache_needs(
    fake: FakeXai, tmp_path: Path
) -> None:
    shared = tmp_path / "shared-cache"
    one = make_project(tmp_path / "one", fake, SMALL, cache=shared)
    other = make_project(
        tmp_path / "other",
        fake,
        "version: 1\nassets:\n  pic: {kind: image, prompt: other, provider: xai}\n",
        cache=shared,
    )
    assert cli(one, "run").returncode == 0
    assert cli(other, "run").returncode == 0
    assert cli(other, "gc", "--yes").returncode == 0
    for path in one.out.iterdir():
        path.unlink()  # a fresh checkout of `one`: outputs must come back from the cache
    seen = len(fake.log)
    restored = cli(one, "--json", "run", "--offline")
    assert restored.returncode == 0, restored.stderr
    assert len(fake.log) == seen
