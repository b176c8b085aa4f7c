"""Shared helpers of the reliability suites: a 20-asset project, the CLI, invariants.

The suites (crash consistency, races, poisoning) run `python -m imaginebuild` as real
processes where a kill or a race is the point (`spawn`), reruns in-process (`cli`),
against the fake xAI server, and then inspect what is on disk.
Each invariant checker returns a list of problems (empty when it holds), so an
assertion shows every violation at once.

Full-size runs are gated on `IMAGINEBUILD_SLOW=1`; CI runs the small sizes.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import textwrap
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from conftest import CliResult, run_cli, xai_env

from imaginebuild.store.journal import decode_record
from imaginebuild.store.lockfile import read_lockfile
from imaginebuild.testing.fake_state import VIDEO_SUBMISSIONS
from imaginebuild.testing.fake_xai import FakeXai, LoggedRequest, Route

KEY = "xai-RELIABILITY-0123456789abcdef"
SUBPROCESS_TIMEOUT_S = 120

SLOW = os.environ.get("IMAGINEBUILD_SLOW", "").strip() in {"1", "true", "yes"}
slow_only = pytest.mark.skipif(not SLOW, reason="full-size run: set IMAGINEBUILD_SLOW=1")

# Twenty assets over every kind, with chains (image → edit → edit → animate → extend)
# so a killed run leaves work at every depth of the graph.
MEDIAFILE_20 = """
version: 1
provider: xai
providers:
  xai: {poll_interval: 0.05, max_retries: 2}
defaults:
  image: {resolution: 1k}
  video: {resolution: 480p}
assets:
  img_a: {kind: image, prompt: harbour at dawn, count: 2, aspect_ratio: "16:9"}
  img_b: {kind: image, prompt: a lighthouse, aspect_ratio: "16:9"}
  img_c: {kind: image, prompt: a gull, aspect_ratio: "1:1"}
  img_d: {kind: image, prompt: fishing boats, count: 3, aspect_ratio: "4:3"}
  edit_a: {kind: edit, prompt: as a woodcut, inputs: ["img_a[0]", img_b]}
  edit_b: {kind: edit, prompt: in watercolour, inputs: [img_c]}
  edit_c: {kind: edit, prompt: a triptych, inputs: ["img_d[1]", "img_d[2]", edit_a]}
  vid_a: {kind: video, prompt: waves rolling in, duration: 2, aspect_ratio: "16:9"}
  vid_b: {kind: video, prompt: clouds racing, duration: 3, aspect_ratio: "16:9"}
  vid_c: {kind: video, prompt: rain on a window, duration: 2, aspect_ratio: "9:16"}
  anim_a: {kind: animate, prompt: the beam turns, inputs: [img_b], duration: 2}
  anim_b: {kind: animate, prompt: the woodcut moves, inputs: [edit_a], duration: 2}
  anim_c: {kind: animate, prompt: the panels slide, inputs: [edit_c], duration: 3}
  ref_a: {kind: reference_video, prompt: a gull at sea, inputs: ["img_a[1]", img_c], duration: 2}
  ref_b: {kind: reference_video, prompt: a painted gull, inputs: [edit_b], duration: 2}
  vedit_a: {kind: video_edit, prompt: make it night, inputs: [vid_a]}
  vedit_b: {kind: video_edit, prompt: add fog, inputs: [anim_a]}
  ext_a: {kind: extend, prompt: the clouds part, inputs: [vid_b], duration: 2}
  ext_b: {kind: extend, prompt: the print fades, inputs: [anim_b], duration: 2}
  ext_c: {kind: extend, prompt: dawn breaks, inputs: [vedit_a], duration: 2}
"""
ASSETS_20 = 20


@dataclass(frozen=True)
class Proj:
    """A project folder, its own cache folder and the environment its runs get."""

    folder: Path
    cache: Path
    env: Mapping[str, str]

    @property
    def out(self) -> Path:
        """The materialized outputs."""
        return self.folder / "out"

    @property
    def state(self) -> Path:
        """`.imaginebuild/` (ledger, journal, lock)."""
        return self.folder / ".imaginebuild"


def make_project(
    where: Path,
    fake: FakeXai,
    text: str = MEDIAFILE_20,
    *,
    cache: Path | None = None,
    extra_env: Mapping[str, str] | None = None,
) -> Proj:
    """Write `text` as `<where>/mediafile.yaml`; the cache lives beside it unless given."""
    where.mkdir(parents=True, exist_ok=True)
    (where / "mediafile.yaml").write_text(textwrap.dedent(text))
    cache = cache or where.with_name(where.name + "-cache")
    env = xai_env(fake, key=KEY, IMAGINEBUILD_CACHE_DIR=str(cache), **(extra_env or {}))
    return Proj(where, cache, env)


def command(*args: str) -> list[str]:
    """The argv of one `python -m imaginebuild` call."""
    return [sys.executable, "-m", "imaginebuild", *args]


def cli(proj: Proj, *args: str) -> CliResult:
    """Run `imaginebuild ARGS` in the project (in-process) and wait for it."""
    return run_cli(*args, cwd=proj.folder, env=proj.env)


def spawn(proj: Proj, stderr: Path, *args: str) -> subprocess.Popen[bytes]:
    """Start `imaginebuild ARGS` in the project, its stderr going to a file."""
    with stderr.open("wb") as err:
        return subprocess.Popen(
            command(*args), cwd=proj.folder, env=dict(proj.env),
            stdout=subprocess.DEVNULL, stderr=err,
        )  # fmt: skip


def states(done: CliResult) -> dict[str, str]:
    """Asset name → state from a `--json` run's stdout."""
    report = json.loads(done.stdout)
    return {a["name"]: a["state"] for a in report["assets"]}


def sha256_of(path: Path) -> str:
    """Hex sha256 of a file's bytes."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


def is_temp(path: Path) -> bool:
    """Whether a file is a writer's temp file (`.NAME.xxxx.tmp`, `.tmp-xxxx.json`)."""
    return path.name.startswith(".")


# -- invariants ------------------------------------------------------------------------


def store_problems(cache: Path) -> list[str]:
    """Blobs whose bytes do not match their name; action entries that are malformed or
    name a blob that is missing or corrupt."""
    problems: list[str] = []
    blobs = cache / "blobs"
    good: set[str] = set()
    for path in sorted(blobs.glob("*/*")) if blobs.is_dir() else []:
        if is_temp(path) or not path.is_file():
            continue
        actual = sha256_of(path)
        if actual != path.name or path.parent.name != path.name[:2]:
            problems.append(f"blob {path.name[:12]} holds bytes hashing to {actual[:12]}")
        else:
            good.add(path.name)
    for key, raw in action_entries(cache).items():
        try:
            entry = json.loads(raw)
            names = [o["sha256"] for o in entry["outputs"]]
        except (ValueError, KeyError, TypeError) as exc:
            problems.append(f"action {key[:12]} is malformed: {exc}")
            continue
        problems += [
            f"action {key[:12]} names missing blob {n[:12]}" for n in names if n not in good
        ]
    return problems


def action_entries(cache: Path) -> dict[str, str]:
    """The raw action cache: key → stored JSON text (read without the engine's filtering)."""
    import diskcache

    folder = cache / "actions"
    if not folder.is_dir():
        return {}
    with diskcache.Cache(str(folder)) as actions:
        return {str(k): str(actions[k]) for k in actions.iterkeys()}


def lockfile_problems(proj: Proj) -> list[str]:
    """The lockfile parses and every output it names exists in place with its hash,
    and in the cache (so `checkout` could restore it)."""
    try:
        entries = read_lockfile(proj.folder / "mediafile.lock")
    except Exception as exc:  # any failure to parse is the violation being looked for
        return [f"the lockfile does not parse: {exc}"]
    problems: list[str] = []
    for name, entry in sorted(entries.items()):
        for out in entry.outputs:
            path = proj.folder / out.path
            if not path.is_file():
                problems.append(f"{name}: locked output {out.path} is missing")
            elif sha256_of(path) != out.sha256:
                problems.append(f"{name}: {out.path} does not hash to its locked sha256")
            if not (proj.cache / "blobs" / out.sha256[:2] / out.sha256).is_file():
                problems.append(f"{name}: blob of {out.path} is not in the cache")
    return problems


def out_problems(proj: Proj) -> list[str]:
    """Every visible file in out/ is a whole copy of a blob the cache holds (a file
    of an asset the lockfile names is checked against the lockfile instead)."""
    locked = {
        o.path for e in read_lockfile(proj.folder / "mediafile.lock").values() for o in e.outputs
    }
    blobs = {p.name for p in (proj.cache / "blobs").glob("*/*")} if proj.cache.is_dir() else set()
    problems = []
    for path in sorted(proj.out.rglob("*")) if proj.out.is_dir() else []:
        rel = path.relative_to(proj.folder).as_posix()
        visible = path.is_file() and not is_temp(path) and rel not in locked
        if visible and sha256_of(path) not in blobs:
            problems.append(f"{rel} is not a whole copy of any cached output")
    return problems


def ledger_problems(proj: Proj) -> list[str]:
    """Every line of the cost ledger is one complete JSON object."""
    path = proj.state / "ledger.jsonl"
    if not path.exists():
        return []
    problems = []
    for number, line in enumerate(path.read_bytes().split(b"\n"), 1):
        if not line.strip():
            continue
        try:
            if not isinstance(json.loads(line), dict):
                raise ValueError("not an object")
        except ValueError:
            problems.append(f"ledger line {number} is torn: {line[:60]!r}")
    return problems


def journal_problems(proj: Proj) -> list[str]:
    """Every journal record of an in-flight job parses."""
    problems = []
    for path in sorted((proj.state / "journal").glob("*.json")):
        if is_temp(path):
            continue
        try:
            decode_record(path.read_bytes())
        except ValueError as exc:
            problems.append(f"journal record {path.name} does not parse: {exc}")
    return problems


def all_problems(proj: Proj) -> list[str]:
    """Every on-disk invariant at once (store, lockfile, out/, ledger, journal)."""
    return (
        store_problems(proj.cache)
        + lockfile_problems(proj)
        + out_problems(proj)
        + ledger_problems(proj)
        + journal_problems(proj)
    )


def assert_consistent(proj: Proj, when: str) -> None:
    """Every on-disk invariant holds; the message names the moment (a kill, a rerun)."""
    problems = all_problems(proj)
    assert not problems, f"{when}: " + "; ".join(problems)


def leftovers(proj: Proj) -> dict[str, int]:
    """Temp files and work folders a killed process left behind (never served)."""
    tmp = proj.cache / "tmp"
    return {
        "out_temps": sum(1 for p in proj.out.rglob(".*") if p.is_file())
        if proj.out.is_dir()
        else 0,
        "blob_temps": sum(1 for p in (proj.cache / "blobs").glob("*/.*")),
        "work_dirs": sum(1 for p in tmp.glob("work-*")) if tmp.is_dir() else 0,
        "journal_temps": sum(1 for p in (proj.state / "journal").glob(".*")),
    }


# -- what the fake saw ---------------------------------------------------------------------


# TCP states (include/net/tcp_states.h) in which a server still owes a connection an
# answer: established, waiting to be accepted, or closed by the client but not yet by it.
_UNSERVED_TCP_STATES = frozenset({"01", "03", "08"})  # ESTABLISHED, SYN_RECV, CLOSE_WAIT


def unserved_connections(port: int) -> int:
    """How many connections to 127.0.0.1:`port` the server has not finished with, from
    /proc/net/tcp: a request a killed client left on the wire is still handled (and may
    be billed) after the client is gone, until this is 0."""
    count = 0
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local_port = int(fields[1].rsplit(":", 1)[1], 16)
        if local_port == port and fields[3] in _UNSERVED_TCP_STATES:
            count += 1
    return count


def prompt_of(request: LoggedRequest) -> str:
    """The prompt a submission carried ('' when it had none)."""
    body = request.body
    return str(body.get("prompt", "")) if isinstance(body, dict) else ""


def video_submissions(log: Sequence[LoggedRequest]) -> Counter[str]:
    """Accepted video job submissions per prompt (each asset has its own prompt)."""
    return Counter(prompt_of(r) for r in log if r.route in VIDEO_SUBMISSIONS and r.status == 200)


def image_calls(log: Sequence[LoggedRequest]) -> Counter[str]:
    """Billed image generations and edits per prompt."""
    return Counter(
        prompt_of(r) for r in log if r.route in (Route.IMAGES, Route.EDITS) and r.status == 200
    )


def paid_twice(log: Sequence[LoggedRequest]) -> dict[str, int]:
    """Prompts whose video job was submitted more than once (a job paid twice)."""
    return {p: n for p, n in video_submissions(log).items() if n > 1}


def prompts(text: str = MEDIAFILE_20) -> dict[str, str]:
    """Asset name → prompt of a mediafile's text (every prompt here is distinct)."""
    import yaml

    assets = yaml.safe_load(textwrap.dedent(text))["assets"]
    return {name: str(spec["prompt"]) for name, spec in assets.items()}


# -- comparing trees ---------------------------------------------------------------------------


def tree(proj: Proj) -> dict[str, str]:
    """out/ as relative path → sha256 (temp files left out)."""
    return {
        p.relative_to(proj.folder).as_posix(): sha256_of(p)
        for p in sorted(proj.out.rglob("*"))
        if p.is_file() and not is_temp(p)
    }


def lock_summary(proj: Proj) -> dict[str, Any]:
    """The lockfile without its per-run record: name → key, fields and outputs."""
    return {
        name: (e.key, json.dumps(dict(e.fields), sort_keys=True), e.outputs)
        for name, e in read_lockfile(proj.folder / "mediafile.lock").items()
    }


# -- where a kill landed -------------------------------------------------------------------------

_PHASES = {
    "check": "hashing",
    "call": "upload/submit",
    "calling": "upload/submit",
    "polling": "polling",
    "downloading": "download/store/lockfile write",
}
PHASE_ORDER = (
    "download/store/lockfile write",
    "polling",
    "upload/submit",
    "hashing",
    "between steps",
    "startup",
)


def in_flight(stderr: str) -> dict[str, str]:
    """Asset → phase of every step a run's `-v` lines show started and not finished."""
    steps: dict[str, str] = {}
    for line in stderr.splitlines():
        words = line.split()
        if len(words) >= 3 and words[0].startswith("[") and words[0].endswith("]"):
            steps.pop(words[2], None)  # "[3/20] built img_a ..."
        elif len(words) >= 2 and words[0].endswith(":") and words[1] in _PHASES:
            steps[words[0][:-1]] = _PHASES[words[1]]
    return steps


def kill_point(stderr: str) -> str:
    """Name the phase a killed run was in: the furthest phase of any step in flight,
    else 'between steps', or 'startup' when the run had printed nothing yet."""
    steps = in_flight(stderr)
    if steps:
        return min(steps.values(), key=PHASE_ORDER.index)
    return "between steps" if stderr.strip() else "startup"
