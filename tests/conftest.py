"""Shared fixtures: fixture projects copied into tmp_path, the CLI (in-process or as a real
process), the fake xAI server, run counts.

Every engine test renders with the local provider (no network, no key) and keeps
its cache inside tmp_path through IMAGINEBUILD_CACHE_DIR. Provider calls are
counted from what a run reports per asset: `built` means the provider was called,
`restored` and `up_to_date` mean it was not.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from imaginebuild.engine.results import CommandResult
from imaginebuild.events import RecordingReporter
from imaginebuild.project import Project, load
from imaginebuild.testing.fake_xai import FakeXai

PROJECTS = Path(__file__).parent / "fixtures" / "projects"
ROOT = Path(__file__).resolve().parents[1]
# Where the API points when a test means nothing to reach it: a closed port on loopback.
NOWHERE = "http://127.0.0.1:9/v1"
SUBPROCESS_TIMEOUT_S = 60
# How long a test waits for a state before it gives up as a harness error. Generous on
# purpose: it bounds a hung test, it never decides an outcome.
STATE_DEADLINE_S = 120.0


class HarnessError(AssertionError):
    """The test could not set up the situation it means to test (not a product failure)."""


def wait_for_state(
    holds: Callable[[], bool],
    what: str,
    *,
    child: subprocess.Popen[Any] | None = None,
    log: Callable[[], str] = lambda: "",
    deadline_s: float = STATE_DEADLINE_S,
) -> None:
    """Poll until `holds()` is true; fail as a harness error if `child` exits first or the
    deadline passes. Tests act on states (a line, a file, a request the fake saw), never on an
    amount of time having passed; the deadline only bounds a test that would otherwise hang."""
    deadline = time.monotonic() + deadline_s
    while not holds():
        if child is not None and child.poll() is not None and not holds():
            raise HarnessError(
                f"harness: the child exited ({child.returncode}) before {what}\n{log()}"
            )
        if time.monotonic() > deadline:
            raise HarnessError(f"harness: no {what} after {deadline_s:.0f} s\n{log()}")
        time.sleep(0.01)


def assert_still_running(
    child: subprocess.Popen[Any],
    why: str,
    log: Callable[[], str],
    signum: signal.Signals | None = None,
) -> None:
    """The precondition of sending a signal: the child has not finished and, if `signum` is
    given, does not ignore it (a harness error either way, never a product failure)."""
    if child.poll() is not None:
        raise HarnessError(
            f"harness: the child already exited ({child.returncode}) before {why}\n{log()}"
        )
    if signum is not None and signum in _ignored_signals(child.pid):
        raise HarnessError(f"harness: the child ignores {signum.name}: it inherited SIG_IGN")


def _ignored_signals(pid: int) -> set[int]:
    """The signals a process ignores, from /proc (empty where /proc is not available)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return set()
    mask = next((int(line.split()[1], 16) for line in status.splitlines()
                 if line.startswith("SigIgn:")), 0)  # fmt: skip
    return {n for n in range(1, 65) if mask >> (n - 1) & 1}


@pytest.fixture
def sigint_not_ignored() -> Iterator[None]:
    """Children must not inherit an ignored SIGINT (a shell's background job ignores it, and
    an exec keeps SIG_IGN): a handled SIGINT in this process resets to the default in them."""
    previous = signal.getsignal(signal.SIGINT)
    if previous is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


@dataclass(frozen=True)
class CliResult:
    """What one `imaginebuild …` command did (in-process or as a real process)."""

    code: int
    stdout: str
    stderr: str

    @property
    def json(self) -> dict[str, Any]:
        """stdout parsed as the one JSON object `--json` promises (fails the test otherwise)."""
        data = json.loads(self.stdout)
        assert isinstance(data, dict), self.stdout
        return data


def run_cli(
    *args: str,
    cwd: Path,
    env: Mapping[str, str],
    real_process: bool = False,
    timeout: float = SUBPROCESS_TIMEOUT_S,
) -> CliResult:
    """Run `imaginebuild ARGS…` in `cwd` with exactly the environment `env`.

    In-process (the default) calls `imaginebuild.cli.app.main([...])` with stdout and stderr
    captured, the working folder and `os.environ` set for the call and put back afterwards
    (main itself restores its SIGTERM handler). It is fast and enough whenever the test is
    about what a command prints, writes or returns.

    `real_process=True` runs `python -m imaginebuild` instead (stdin /dev/null, stdout and
    stderr pipes). Use it when the process itself is what is tested: signals, a terminal or pipes,
    the exit status the shell sees, start-up and what gets imported, several processes at
    once, inheritance of the environment, a crash or a kill.
    """
    if real_process:
        proc = subprocess.run(
            [sys.executable, "-m", "imaginebuild", *args],
            cwd=cwd, env=dict(env), stdin=subprocess.DEVNULL, capture_output=True, text=True,
            timeout=timeout, check=False,
        )  # fmt: skip
        return CliResult(proc.returncode, proc.stdout, proc.stderr)
    from imaginebuild.cli.app import main

    out, err = io.StringIO(), io.StringIO()
    wanted, saved_env, saved_cwd, saved_stdin = dict(env), dict(os.environ), Path.cwd(), sys.stdin
    os.environ.clear()
    os.environ.update(wanted)
    try:
        os.chdir(cwd)
        sys.stdin = io.StringIO()  # an empty stdin, never the terminal pytest was started from
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main(list(args))
    finally:
        sys.stdin = saved_stdin
        os.environ.clear()
        os.environ.update(saved_env)
        os.chdir(saved_cwd)
    return CliResult(code, out.getvalue(), err.getvalue())


def states(data: Mapping[str, Any] | CommandResult) -> dict[str, str]:
    """Each asset's state, from `--json` output or a library CommandResult."""
    if isinstance(data, CommandResult):
        return {a.name: a.state for a in data.assets}
    return {str(a["name"]): str(a["state"]) for a in data["assets"]}


def called(data: Mapping[str, Any] | CommandResult) -> set[str]:
    """The assets whose provider was called in a run (state `built`)."""
    return {name for name, state in states(data).items() if state == "built"}


def sha256_of(path: Path) -> str:
    """The hex sha256 of a file's bytes."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


def output_hashes(project: Path) -> dict[str, str]:
    """sha256 of every file under the project's out/, by project-relative path."""
    out = project / "out"
    if not out.is_dir():
        return {}
    return {
        p.relative_to(project).as_posix(): sha256_of(p)
        for p in sorted(out.rglob("*"))
        if p.is_file()
    }


def read_lock(project: Path, name: str = "mediafile.lock") -> dict[str, Any]:
    """The lockfile's JSON (the test fails if it is missing or malformed)."""
    data = json.loads((project / name).read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def edit_yaml(path: Path, old: str, new: str) -> None:
    """Replace exactly one occurrence of `old` in a mediafile."""
    text = path.read_text(encoding="utf-8")
    assert text.count(old) == 1, f"{old!r} occurs {text.count(old)} times in {path}"
    path.write_text(text.replace(old, new), encoding="utf-8")


@pytest.fixture(autouse=True)
def _private_user_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test gets its own user cache folder (where the embedded team coordinator lives)
    and user settings folder (the user's price file), also in the subprocesses it starts:
    no test reads or writes the real ones."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "user-cache"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "user-config"))
    monkeypatch.delenv("IMAGINEBUILD_COORDINATOR", raising=False)
    monkeypatch.delenv("IMAGINEBUILD_CONFIG_DIR", raising=False)


@pytest.fixture
def cache_dir(tmp_path: Path) -> Path:
    """A cache folder private to the test."""
    return tmp_path / "cache"


@pytest.fixture
def make_project(tmp_path: Path) -> Callable[[str], Path]:
    """Copy a named fixture project into tmp_path and return its folder."""

    def make(name: str, dest: str | None = None) -> Path:
        target = tmp_path / (dest or name)
        shutil.copytree(PROJECTS / name, target)
        return target

    return make


@pytest.fixture
def project_dir(make_project: Callable[[str], Path]) -> Path:
    """A fresh copy of the skyline fixture (every kind, local provider, test sizes)."""
    return make_project("skyline")


@pytest.fixture
def chain_dir(make_project: Callable[[str], Path]) -> Path:
    """A fresh copy of the chain fixture: base ─▶ inked ─▶ framed, and other (images only)."""
    return make_project("chain")


@pytest.fixture
def clean_env(tmp_path: Path, cache_dir: Path) -> dict[str, str]:
    """An environment with no API key, no imaginebuild settings and a private cache."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("IMAGINEBUILD_", "XAI_", "GITHUB_")) and k != "PYTHONWARNINGS"
    }
    env["IMAGINEBUILD_CACHE_DIR"] = str(cache_dir)
    env["HOME"] = str(tmp_path / "home")
    # Nothing may leave the machine: any stray call to the API fails fast on loopback.
    env["XAI_BASE_URL"] = NOWHERE
    return env


def xai_env(
    fake: FakeXai | str = NOWHERE,
    *,
    key: str | None = None,
    base: Mapping[str, str] | None = None,
    **extra: str,
) -> dict[str, str]:
    """An environment for a command against the fake: `base` (default: this process's
    environment without any imaginebuild, xAI or GitHub setting), the xai provider pointed at
    `fake` (a server or a base URL), the API key `key` if given, then `extra`."""
    if base is None:
        base = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("XAI_", "IMAGINEBUILD_", "GITHUB_"))
        }
    env = {**base, "PYTHONPATH": str(ROOT)}
    env["XAI_BASE_URL"] = fake if isinstance(fake, str) else fake.base_url
    if key is not None:
        env["XAI_API_KEY"] = key
    env.update(extra)
    return env


def set_environment(monkeypatch: pytest.MonkeyPatch, env: Mapping[str, str]) -> None:
    """Make this process's environment exactly `env` for the rest of the test (for commands
    run in-process from the test's own code; the monkeypatch undoes it)."""
    for name in [n for n in os.environ if n not in env]:
        monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)


@pytest.fixture
def fake(request: pytest.FixtureRequest) -> Iterator[FakeXai]:
    """A fake xAI server on 127.0.0.1 for the test. Its options come from the closest
    `@pytest.mark.fake(...)` (on the test, its class or the module's `pytestmark`), over the
    default of one pending poll per video job."""
    marker = request.node.get_closest_marker("fake")
    options: dict[str, Any] = {"pending_polls": 1, **(marker.kwargs if marker else {})}
    with FakeXai(**options) as server:
        yield server


@pytest.fixture
def cli(clean_env: dict[str, str]) -> Callable[..., CliResult]:
    """`run_cli` in `cwd` with the clean environment (plus `env`); in-process unless
    `real_process=True` (see run_cli for which to use when)."""

    def run(
        *args: str, cwd: Path, env: Mapping[str, str] | None = None, real_process: bool = False
    ) -> CliResult:
        return run_cli(*args, cwd=cwd, env={**clean_env, **(env or {})}, real_process=real_process)

    return run


@pytest.fixture
def open_project(clean_env: dict[str, str]) -> Callable[[Path], Project]:
    """Load a project folder's mediafile as a library Project with the clean environment."""

    def open_(folder: Path, mediafile: str = "mediafile.yaml") -> Project:
        return load(folder / mediafile, env=clean_env, reporter=RecordingReporter())

    return open_


# -- the xAI contract: every body the provider sends and every answer the fake gives --------

CONTRACT = Path(__file__).parent / "contract" / "xai_media.schema.json"
REQUEST_SCHEMAS = {
    "images": "GenerateImageRequest",
    "edits": "EditImageRequest",
    "videos": "GenerateVideoRequest",
    "video_edits": "EditVideoRequest",
    "extensions": "ExtendVideoRequest",
}
SUBMISSIONS = frozenset(REQUEST_SCHEMAS)


def contract_violations(fake: Any) -> list[str]:
    """What a stopped fake saw the provider send, or answered, that the spec does not allow
    (tests/contract/xai_media.schema.json, derived from xAI's OpenAPI document)."""
    import jsonschema

    schema = json.loads(CONTRACT.read_text())

    def check(name: str, value: object) -> list[str]:
        validator = jsonschema.Draft202012Validator({**schema, "$ref": f"#/$defs/{name}"})
        return [f"{name}: {e.message}" for e in validator.iter_errors(value)]

    found: list[str] = []
    for entry in fake.log:
        sent_by_us = entry.headers.get("user-agent", "").startswith("imaginebuild/")
        # A body cut short is one a killed client never finished sending, not one it sent.
        if sent_by_us and not entry.cut_short and entry.route.value in REQUEST_SCHEMAS:
            found += check(REQUEST_SCHEMAS[entry.route.value], entry.body)
    for route, status, payload in fake.answers:
        if status >= 300 or not payload.strip():
            continue
        try:
            body = json.loads(payload)
        except ValueError:
            continue  # a scripted malformed answer
        name = {
            "images": "GeneratedImageResponse",
            "edits": "GeneratedImageResponse",
            "poll": "VideoResponse",
            "image_poll": "GetDeferredImageResponse",
            "models": "ListModelsResponse",
        }.get(route.value, "StartDeferredResponse" if route.value in SUBMISSIONS else "")
        if route.value in ("images", "edits") and set(body) == {"request_id"}:
            name = "StartDeferredResponse"  # a deferred image request
        if name:
            found += check(name, body)
    return found


@pytest.fixture(autouse=True)
def _xai_contract(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Every fake xAI server a test stops is held to the spec's request and response schemas:
    a provider change that sends a field the spec lacks fails the test that sent it."""
    violations: list[str] = []
    original = FakeXai.stop

    def stop(self: FakeXai) -> None:
        original(self)
        violations.extend(contract_violations(self))

    monkeypatch.setattr(FakeXai, "stop", stop)
    yield violations
    assert not violations, "the xAI contract was broken:\n" + "\n".join(violations[:20])
