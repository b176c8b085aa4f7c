"""A property-based fuzzer of the untrusted readers: lockfiles, cache entries, remote
entries, registries and leases, mutated and fed to every command.

For every example the contract is the one the trust model states (see
`imaginebuild/untrusted.py`): no exit 70, no file outside the project and its
cache touched, no byte of an outside file read into anything imaginebuild
writes, and bounded memory. The pure readers are fuzzed directly and must raise
only their own errors.

Seeds vary per run (CI explores new examples each time); a failure names its seed,
and `IMAGINEBUILD_FUZZ_SEED=N` replays it. IMAGINEBUILD_SLOW=1 runs many more.
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
import os
import random
import shutil
import tempfile
import tracemalloc
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st

from imaginebuild.cli.app import main
from imaginebuild.errors import LockfileError, StoreError
from imaginebuild.remote import leases
from imaginebuild.remote.entries import decode_entry
from imaginebuild.store.cache import ActionEntry
from imaginebuild.store.lockfile import parse_lockfile

SLOW = os.environ.get("IMAGINEBUILD_SLOW") == "1"
SEED = int(os.environ.get("IMAGINEBUILD_FUZZ_SEED") or random.randrange(2**32))
REPLAY = f"(fuzz seed {SEED}: replay with IMAGINEBUILD_FUZZ_SEED={SEED})"
CANARY = b"CANARY-fuzz-7c1e-outside"
MEMORY_BOUND = 64 << 20  # bytes allocated at peak by one command on a tiny project

FUZZ = settings(
    max_examples=600 if SLOW else 30,
    deadline=None,
    database=None,  # the seed, not a local database, is what replays a failure
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
PURE = settings(FUZZ, max_examples=5000 if SLOW else 400)

MEDIAFILE = """\
version: 1
provider: local
output_dir: out
defaults:
  image: {resolution: 1k, aspect_ratio: "1:1"}
assets:
  a: {kind: image, prompt: a red square}
  b: {kind: edit, prompt: make it blue, inputs: [a]}
"""

HOSTILE: list[Any] = [
    "../victim/precious.txt", "../../victim/precious.txt", "/etc/passwd", "\0" * 64,
    "a" * 64, "A" * 64, "g" * 64, "", "out/../../victim/x.png", "out/\u202eevil.png",
    "\x1b[2J", "1e999999999", "NaN", "-1", 10**30, -(10**30), 1e308, float("inf"), None,
    True, [], {}, [[[[[]]]]], {"sha256": "../x"}, "x" * 5000, "/dev/zero", 0, -1,
]  # fmt: skip
COMMANDS: list[list[str]] = [
    ["status"], ["plan"], ["show", "a"], ["show", "b"], ["--json", "show", "b"],
    ["why", "b"], ["checkout"], ["report", "-o", "site"], ["gc", "--yes", "--min-age", "0"],
    ["run", "--offline"], ["cost"], ["--json", "status"],
]  # fmt: skip


# -------------------------------------------------------------------------- the world


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A built project, its cache and an outside victim, made once and copied per example."""
    root = tmp_path_factory.mktemp("fuzz-pristine")
    (root / "project").mkdir()
    (root / "project" / "mediafile.yaml").write_text(MEDIAFILE)
    (root / "victim").mkdir()
    (root / "victim" / "precious.txt").write_bytes(b"precious " + CANARY)
    with _environment(root), contextlib.redirect_stderr(io.StringIO()):
        assert main(["-C", str(root / "project"), "-q", "run"]) == 0
    yield root


@contextlib.contextmanager
def _environment(root: Path) -> Iterator[None]:
    saved = dict(os.environ)
    for name in list(os.environ):
        if name.startswith(("XAI_", "IMAGINEBUILD_")):
            del os.environ[name]
    os.environ["IMAGINEBUILD_CACHE_DIR"] = str(root / "cache")
    os.environ["HOME"] = str(root / "home")
    os.environ["XAI_BASE_URL"] = "http://127.0.0.1:9/v1"
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def _outside(root: Path) -> dict[str, bytes | None]:
    mine = (root / "project", root / "cache", root / "home")
    return {
        p.relative_to(root).as_posix(): (None if p.is_dir() else p.read_bytes())
        for p in sorted(root.rglob("*"))
        if not any(p == m or m in p.parents for m in mine)
    }


# -------------------------------------------------------------------------- mutations


def _paths(doc: Any, here: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every position in a JSON document (the root excluded)."""
    found: list[tuple[Any, ...]] = []
    items = (
        doc.items() if isinstance(doc, dict) else enumerate(doc) if isinstance(doc, list) else []
    )
    for key, value in items:
        found.append((*here, key))
        found += _paths(value, (*here, key))
    return found


def _mutate(doc: Any, data: st.DataObject) -> Any:
    """Replace, delete or retype a few positions of `doc` with hostile values."""
    for _ in range(data.draw(st.integers(1, 3))):
        places = _paths(doc)
        if not places:
            return copy.deepcopy(data.draw(st.sampled_from(HOSTILE)))
        place = data.draw(st.sampled_from(places))
        parent = doc
        for key in place[:-1]:
            parent = parent[key]
        action = data.draw(st.sampled_from(["replace", "replace", "delete", "text"]))
        if action == "delete":
            del parent[place[-1]]
        elif action == "text":
            parent[place[-1]] = data.draw(st.text(max_size=80))
        else:
            parent[place[-1]] = copy.deepcopy(data.draw(st.sampled_from(HOSTILE)))
    return doc


def _as_text(doc: Any, data: st.DataObject) -> bytes:
    """`doc` as JSON bytes, sometimes cut short and followed by junk or invalid UTF-8."""
    text = json.dumps(doc, allow_nan=True).encode("utf-8", "surrogatepass")
    if data.draw(st.booleans()):
        return text
    cut = data.draw(st.integers(0, len(text)))
    return text[:cut] + data.draw(st.sampled_from([b"", b"\0", b"[" * 5000, b"\xff\xfe", b"}"]))


# -------------------------------------------------------------------------- the CLI fuzz


@seed(SEED)
@FUZZ
@given(data=st.data())
def test_mutated_state_never_crashes_escapes_or_blows_up(
    pristine: Path, data: st.DataObject
) -> None:
    import diskcache

    root = Path(tempfile.mkdtemp(prefix="fuzz-"))
    try:
        shutil.copytree(pristine, root, dirs_exist_ok=True)
        project, cache = root / "project", root / "cache"
        target = data.draw(st.sampled_from(["lockfile", "action", "registry", "settled"]))
        if target == "lockfile":
            lock = json.loads((project / "mediafile.lock").read_text())
            (project / "mediafile.lock").write_bytes(_as_text(_mutate(lock, data), data))
        elif target == "action":
            with diskcache.Cache(str(cache / "actions")) as actions:
                key = data.draw(st.sampled_from(sorted(actions.iterkeys())))
                doc = json.loads(actions.get(key))
                actions.set(key, _as_text(_mutate(doc, data), data))
            shutil.rmtree(project / "out")
            (project / "mediafile.lock").unlink()
        elif target == "registry":
            entry = cache / "projects" / "hostile.json"
            entry.write_bytes(_as_text(_mutate({"lockfile": "x"}, data), data))
        else:
            snapshot = project / ".imaginebuild" / "settled-mediafile.yaml.json"
            doc = {
                "version": 2,
                "fingerprint": "f",
                "files": [["/dev/zero", "a" * 64]],
                "assets": [],
            }
            snapshot.write_bytes(_as_text(_mutate(doc, data), data))
        argv = data.draw(st.sampled_from(COMMANDS))
        before = _outside(root)
        out, err = io.StringIO(), io.StringIO()
        tracemalloc.start()
        try:
            with (
                _environment(root),
                contextlib.redirect_stdout(out),
                contextlib.redirect_stderr(err),
            ):
                code = main(["-C", str(project), *argv])
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        said = out.getvalue() + err.getvalue()
        assert code in (0, 1, 2, 3), f"{argv} exited {code} {REPLAY}\n{said}"
        assert peak < MEMORY_BOUND, f"{argv} peaked at {peak:,} bytes {REPLAY}"
        assert _outside(root) == before, f"{argv} touched a file outside {REPLAY}"
        assert CANARY.decode() not in said, f"{argv} printed outside bytes {REPLAY}"
        for folder in (project, cache):
            for path in folder.rglob("*"):
                if path.is_file() and not path.is_symlink():
                    assert CANARY not in path.read_bytes(), f"{path} {REPLAY}"
    finally:
        shutil.rmtree(root, ignore_errors=True)


# -------------------------------------------------------------------------- the pure readers

GOOD_ENTRY = {
    "v": 1,
    "key": "a" * 64,
    "outputs": [{"sha256": "b" * 64, "bytes": 3, "media_type": "image/png"}],
    "record": {"cost_usd": "0.02"},
    "takes": [],
}


@seed(SEED)
@PURE
@given(data=st.data())
def test_the_readers_raise_only_their_own_errors(data: st.DataObject) -> None:
    lock = {
        "version": 1,
        "assets": {
            "a": {
                "key": "a" * 64,
                "fields": {"inputs": [{"ref": "https://h/x.png", "sha256": "c" * 64}]},
                "outputs": [
                    {"path": "out/a.png", "sha256": "b" * 64, "bytes": 3, "media_type": "image/png"}
                ],
                "record": {},
            }
        },
    }
    text = _as_text(_mutate(lock, data), data).decode("utf-8", "replace")
    try:
        for entry in parse_lockfile(text, "mediafile.lock").values():
            for out in entry.outputs:  # what survives names nothing outside
                assert len(out.sha256) == 64 and not out.path.startswith(("/", "..")), REPLAY
    except LockfileError:
        pass
    remote = {"format": "imaginebuild-remote-action", "v": 1, "key_format": 1,
              "entry": json.loads(json.dumps(GOOD_ENTRY))}  # fmt: skip
    raw = _as_text(_mutate(remote, data), data)
    with contextlib.suppress(StoreError):
        decode_entry(raw, "a" * 64)
    local = _mutate(json.loads(json.dumps(GOOD_ENTRY)), data)
    if isinstance(local, dict):
        with contextlib.suppress(StoreError):
            ActionEntry.from_json(local)
    lease = _mutate({"v": 1, "owner": "o", "expires": 1.0, "host": "h", "pid": 1}, data)
    parsed = leases.parse(_as_text(lease, data))
    assert parsed is None or parsed.ends_at(0.0) <= leases.MAX_LEASE_S, REPLAY


def test_the_seed_is_named_for_replay() -> None:
    assert str(SEED) in REPLAY and "IMAGINEBUILD_FUZZ_SEED" in REPLAY
