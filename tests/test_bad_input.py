"""Bad input through the real CLI: malformed mediafiles, bad lockfiles, a corrupted cache.

Every malformed mediafile — the fixture corpus in `fixtures/mediafiles/` and the
cases generated below (huge, binary, UTF-16, NUL bytes, alias bombs, deep nesting…)
— must end every command with exit 2 and a located `mediafile.yaml:LINE:COL:`
line, no traceback, nothing written in or around the project, and not one request
to the (fake) API that the environment points at. Bad lockfiles are refused with a
hint or rebuilt; a corrupted cache is detected, reported and rebuilt, never served.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import re
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import run_cli, set_environment, xai_env
from mediafile_corpus import CASES, lay_out

from imaginebuild.cli.app import main
from imaginebuild.errors import MediafileError
from imaginebuild.mediafile.load import load_mediafile
from imaginebuild.testing.fake_xai import FakeXai

HERE = Path(__file__).parent
BAD_LOCKFILES = HERE / "fixtures" / "bad_lockfiles"
CHAIN = HERE / "fixtures" / "projects" / "chain"
ROOT = HERE.parent
KEY = "xai-BADINPUT-0f1e2d3c4b5a6978"
LOCATED = re.compile(r"^mediafile\.yaml:\d+:\d+: ", re.MULTILINE)
SLOW = os.environ.get("IMAGINEBUILD_SLOW") == "1"
# CI runs three commands per case; IMAGINEBUILD_SLOW=1 runs every command that reads a mediafile.
COMMANDS = (
    (["validate"], ["run"], ["plan"], ["status"], ["--json", "run"], ["--json", "validate"],
     ["dag"], ["checkout"], ["gc"], ["why", "a"], ["show", "a"], ["run", "--dry-run"])
    if SLOW
    else (["validate"], ["run"], ["--json", "plan"])
)  # fmt: skip

MIB = 1024 * 1024
VALID_HEAD = b"version: 1\nprovider: xai\nassets:\n  a: {kind: image, prompt: p}\n"


def _alias_bomb(width: int = 10, depth: int = 5) -> bytes:
    """Billion laughs: each level repeats the previous one `width` times (width**depth nodes)."""
    lines = [b"l0: &l0 [" + b", ".join([b"lol"] * width) + b"]"]
    for level in range(1, depth + 1):
        refs = b", ".join([b"*l%d" % (level - 1)] * width)
        lines.append(b"l%d: &l%d [%s]" % (level, level, refs))
    return b"\n".join(lines) + b"\nversion: 1\nassets: {a: *l%d}\n" % depth


def _nested_blocks(levels: int) -> bytes:
    body = b"".join(b"  " * i + b"- \n" for i in range(levels))
    return b"version: 1\nassets:\n  a:\n    kind: image\n    prompt: p\n    inputs:\n" + body


def _many_assets(count: int) -> bytes:
    lines = [f"  a{i}: {{kind: image, prompt: p{i}, count: {i % 12}}}" for i in range(count)]
    return ("version: 1\nassets:\n" + "\n".join(lines) + "\n").encode()


# Cases too big, too binary or too regular to keep as files.
GENERATED: dict[str, Callable[[], bytes]] = {
    "huge-3mib": lambda: VALID_HEAD + b"#" + b"x" * (3 * MIB) + b"\n",
    "huge-exactly-over-2mib": lambda: VALID_HEAD + b"#" * (2 * MIB - len(VALID_HEAD) + 1),
    "binary-junk-10mb": lambda: random.Random(7).randbytes(10 * 1000 * 1000),
    "utf16-with-bom": lambda: VALID_HEAD.decode().encode("utf-16"),
    "utf16-be-no-bom": lambda: VALID_HEAD.decode().encode("utf-16-be"),
    "utf32": lambda: VALID_HEAD.decode().encode("utf-32"),
    "nul-bytes-in-prompt": lambda: VALID_HEAD.replace(b"prompt: p", b'prompt: "p\x00q"'),
    "nul-byte-only": lambda: b"\x00",
    "latin1-prompt": lambda: VALID_HEAD.replace(b"prompt: p", b"prompt: caf\xe9"),
    "control-character": lambda: VALID_HEAD.replace(b"prompt: p", b"prompt: a\x07b"),
    "lone-surrogate-escape": lambda: VALID_HEAD.replace(b"prompt: p", b'prompt: "\\ud800"'),
    "deep-flow-nesting": lambda: b"version: 1\nassets: " + b"[" * 20_000 + b"]" * 20_000 + b"\n",
    "deep-map-nesting": lambda: b"version: 1\nassets: " + b"{a: " * 5_000 + b"1" + b"}" * 5_000,
    "deep-block-nesting": lambda: _nested_blocks(900),
    "alias-bomb-100k": lambda: _alias_bomb(10, 5),
    "alias-bomb-billion": lambda: _alias_bomb(10, 9),
    "non-string-keys": lambda: (
        b"version: 1\nassets:\n  1: {kind: image, prompt: p}\n  [a]: {kind: image}\n"
        b"  ? {x: 1}\n  : {kind: image}\n  yes: {kind: image, prompt: q}\n  null: {}\n"
    ),
    "prompt-1mb-and-bad-count": lambda: (
        b"version: 1\nassets:\n  a: {kind: image, prompt: " + b"x" * MIB + b", count: 11}\n"
    ),
    "line-of-1mb-key": lambda: b"version: 1\nassets:\n  " + b"k" * MIB + b": {kind: image}\n",
    "python-object-tag": lambda: (
        b"version: 1\nassets: !!python/object/apply:os.system ['touch pwned']\n"
    ),
    "python-name-tag": lambda: b"version: 1\nassets:\n  a: !!python/name:os.system {}\n",
    "crlf-with-bom-and-error": lambda: (
        b"\xef\xbb\xbf"
        + VALID_HEAD.replace(b"\n", b"\r\n").replace(b"prompt: p", b"prompt: p, count: 0")
    ),
    "1000-assets-some-bad": lambda: _many_assets(1000),
    "only-a-bom": lambda: b"\xef\xbb\xbf",
    "only-comments": lambda: b"# nothing here\n# at all\n",
    "document-end-marker": lambda: b"...\n",
    "scalar-document": lambda: b"just a string\n",
}


ALL_CASES = [f"mediafiles/{n}" for n in CASES] + [f"generated/{n}" for n in GENERATED]


def _param(name: str) -> object:
    return pytest.param(name, id=name)


def _make_case(name: str, tmp_path: Path) -> Path:
    """Lay out the case's project folder under tmp_path and return it."""
    project = tmp_path / "project"
    corpus, _, case = name.partition("/")
    if corpus == "generated":
        project.mkdir()
        (project / "mediafile.yaml").write_bytes(GENERATED[case]())
    else:
        lay_out(case, project)
    return project


def snapshot(folder: Path) -> dict[str, tuple[str, str]]:
    """Every entry under `folder`: its type and, for files, a hash of its bytes."""
    found: dict[str, tuple[str, str]] = {}
    for path in sorted(folder.rglob("*")):
        rel = path.relative_to(folder).as_posix()
        if path.is_symlink():
            found[rel] = ("link", str(path.readlink()))
        elif path.is_dir():
            found[rel] = ("dir", "")
        else:
            found[rel] = ("file", hashlib.sha256(path.read_bytes()).hexdigest())
    return found


@pytest.fixture
def api_env(monkeypatch: pytest.MonkeyPatch, fake: FakeXai, tmp_path: Path) -> FakeXai:
    """Point the in-process CLI at the fake with a key, and at no other setting."""
    set_environment(monkeypatch, xai_env(fake, key=KEY, HOME=str(tmp_path / "home")))
    return fake


def _assert_refused(code: int, out: str, err: str, as_json: bool) -> None:
    assert code == 2, err[-2000:]
    assert LOCATED.search(err), err[-2000:]
    assert "Traceback" not in err and "bug in imaginebuild" not in err
    assert KEY not in out + err
    if as_json:
        data = json.loads(out)
        assert data["exit_code"] == 2 and data["diagnostics"], out[-2000:]
        assert all(d["line"] >= 1 and d["column"] >= 1 for d in data["diagnostics"])
    else:
        assert out == ""


@pytest.mark.parametrize("name", [_param(n) for n in ALL_CASES])
def test_every_bad_mediafile_is_refused_by_every_command(
    name: str,
    tmp_path: Path,
    api_env: FakeXai,
) -> None:
    project = _make_case(name, tmp_path)
    before, requests = snapshot(tmp_path), len(api_env.log)
    for argv in COMMANDS:
        done = run_cli(*argv, cwd=project, env=os.environ)
        _assert_refused(done.code, done.stdout, done.stderr, "--json" in argv)
    assert snapshot(tmp_path) == before  # no .imaginebuild/, no out/, no lockfile, nothing
    assert len(api_env.log) == requests


def test_the_corpus_is_large_and_varied() -> None:
    assert len(ALL_CASES) >= 150
    assert len([n for n in ALL_CASES if n.startswith("mediafiles/")]) >= 128


def test_a_control_character_is_located_where_it_is(tmp_path: Path) -> None:
    (tmp_path / "mediafile.yaml").write_bytes(GENERATED["control-character"]())
    with pytest.raises(MediafileError) as info:
        load_mediafile(tmp_path / "mediafile.yaml")
    (diagnostic,) = info.value.diagnostics
    assert (diagnostic.line, diagnostic.column) == (4, 29)  # the BEL after 'prompt: a'
    assert "<unicode string>" not in diagnostic.message


SUBPROCESS_CASES = [
    "mediafiles/syntax-error",
    "mediafiles/cycle-of-3",
    "mediafiles/duplicate-top-level-key",
    "generated/binary-junk-10mb",
    "generated/alias-bomb-billion",
    "generated/utf16-with-bom",
]


@pytest.mark.parametrize("name", SUBPROCESS_CASES)
def test_the_installed_command_refuses_bad_mediafiles(
    name: str, tmp_path: Path, fake: FakeXai
) -> None:
    project = _make_case(name, tmp_path)
    env = xai_env(fake, key=KEY)
    before, requests = snapshot(tmp_path), len(fake.log)
    for argv in (["validate"], ["run"]):
        done = run_cli(*argv, cwd=project, env=env, real_process=True)
        _assert_refused(done.code, done.stdout, done.stderr, as_json=False)
    assert snapshot(tmp_path) == before
    assert len(fake.log) == requests


# ------------------------------------------------------------------ bad lockfiles


@pytest.fixture(scope="module")
def built_chain(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The chain fixture built once with the local provider; tests copy it."""
    root = tmp_path_factory.mktemp("built")
    shutil.copytree(CHAIN, root / "chain")
    env = xai_env(IMAGINEBUILD_CACHE_DIR=str(root / "cache"))
    done = run_cli("-q", "run", cwd=root / "chain", env=env)
    assert done.code == 0, done.stderr
    return root


@pytest.fixture
def chain(built_chain: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private copy of the built chain project and its cache; the CLI is pointed at it."""
    shutil.copytree(built_chain / "chain", tmp_path / "chain", symlinks=True)
    shutil.copytree(built_chain / "cache", tmp_path / "cache", symlinks=True)
    for name in list(os.environ):
        if name.startswith(("XAI_", "IMAGINEBUILD_")):
            monkeypatch.delenv(name)
    monkeypatch.setenv("IMAGINEBUILD_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("XAI_BASE_URL", "http://127.0.0.1:9/v1")  # no call may leave
    monkeypatch.chdir(tmp_path / "chain")
    return tmp_path / "chain"


def _blob(tmp_path: Path, sha: str) -> Path:
    return tmp_path / "cache" / "blobs" / sha[:2] / sha


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _lock(project: Path) -> dict[str, object]:
    data = json.loads((project / "mediafile.lock").read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


LOCKFILE_CASES = sorted(p.name for p in BAD_LOCKFILES.glob("*.lock"))


@pytest.mark.parametrize("case", LOCKFILE_CASES)
def test_an_unreadable_lockfile_is_refused_with_a_hint(
    case: str, chain: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    shutil.copyfile(BAD_LOCKFILES / case, chain / "mediafile.lock")
    shutil.rmtree(chain / "out")
    lock, cache = (chain / "mediafile.lock").read_bytes(), snapshot(chain.parent / "cache")
    for argv in (["run"], ["status"], ["plan"], ["checkout"], ["gc"], ["show", "base"]):
        code = main(argv)
        err = capsys.readouterr().err
        assert code == 2, (argv, err)
        assert "Traceback" not in err
        assert "mediafile.lock" in err and "\nhint: " in err, (argv, err)
    # refused before anything was served, rebuilt or rewritten
    assert not (chain / "out").exists()
    assert (chain / "mediafile.lock").read_bytes() == lock
    assert snapshot(chain.parent / "cache") == cache


def test_the_lockfile_corpus_covers_the_ways_a_lockfile_breaks() -> None:
    assert len(LOCKFILE_CASES) >= 8


def test_a_lock_entry_naming_a_missing_blob_is_restored_by_its_key_not_served(
    chain: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    project = chain
    lock = _lock(project)
    entry = lock["assets"]["other"]  # type: ignore[index]
    good = entry["outputs"][0]["sha256"]
    entry["outputs"][0]["sha256"] = "ab" * 32  # no such blob anywhere
    (project / "mediafile.lock").write_text(json.dumps(lock), encoding="utf-8")
    (project / "out" / "other.png").unlink()
    assert main(["checkout"]) == 1  # the named blob is missing: reported, nothing invented
    assert not (project / "out" / "other.png").exists()
    assert "abababababab is not in the cache" in capsys.readouterr().err
    assert main(["--json", "run"]) == 0
    states = {a["name"]: a["state"] for a in json.loads(capsys.readouterr().out)["assets"]}
    assert states["other"] == "restored"  # its action entry names the good blob: no call
    assert _sha(project / "out" / "other.png") == good
    assert _lock(project)["assets"]["other"]["outputs"][0]["sha256"] == good  # type: ignore[index]


def test_a_lock_entry_with_a_wrong_output_hash_is_restored_by_its_key_not_served(
    chain: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    project = chain
    lock = _lock(project)
    base = lock["assets"]["base"]["outputs"][0]["sha256"]  # type: ignore[index]
    other = lock["assets"]["other"]  # type: ignore[index]
    good = other["outputs"][0]["sha256"]
    other["outputs"][0]["sha256"] = base  # a real blob, but another asset's bytes
    (project / "mediafile.lock").write_text(json.dumps(lock), encoding="utf-8")
    capsys.readouterr()
    assert main(["--json", "status"]) == 0
    states = {a["name"]: a["state"] for a in json.loads(capsys.readouterr().out)["assets"]}
    assert states["other"] == "stale"
    assert main(["--json", "run"]) == 0
    states = {a["name"]: a["state"] for a in json.loads(capsys.readouterr().out)["assets"]}
    assert states["other"] == "restored"  # its action entry names the good blob: no call
    assert _sha(project / "out" / "other.png") == good != base


# ------------------------------------------------------------------ corrupted cache


def _corrupt(path: Path, how: str) -> None:
    path.chmod(0o644)
    data = bytearray(path.read_bytes())
    if how == "truncated":
        data = data[: len(data) // 2]
    elif how == "flipped-byte":
        data[len(data) // 2] ^= 0x01
    elif how == "emptied":
        data = bytearray()
    else:
        data = bytearray(b"\x89PNG\r\n\x1a\n" + b"garbage" * 100)
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("how", ["truncated", "flipped-byte", "emptied", "replaced"])
def test_a_corrupt_blob_is_detected_reported_and_rebuilt(
    how: str, chain: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    project = chain
    good = _lock(project)["assets"]["other"]["outputs"][0]["sha256"]  # type: ignore[index]
    _corrupt(_blob(chain.parent, good), how)
    (project / "out" / "other.png").unlink()
    capsys.readouterr()
    assert main(["checkout"]) == 1  # never materialized from a corrupt blob
    err = capsys.readouterr().err
    assert "other" in err and "corrupt" in err, err
    assert not (project / "out" / "other.png").exists()
    assert main(["--json", "run"]) == 0
    captured = capsys.readouterr()
    states = {a["name"]: a["state"] for a in json.loads(captured.out)["assets"]}
    assert states["other"] == "built"
    assert _sha(project / "out" / "other.png") == good  # the local renderer is deterministic
    assert _sha(_blob(chain.parent, good)) == good


def test_a_corrupt_blob_met_on_restore_is_reported_and_rebuilt(
    chain: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    project = chain
    good = _lock(project)["assets"]["other"]["outputs"][0]["sha256"]  # type: ignore[index]
    _corrupt(_blob(chain.parent, good), "flipped-byte")
    (project / "out" / "other.png").unlink()
    (project / "mediafile.lock").unlink()
    capsys.readouterr()
    assert main(["--json", "run"]) == 0
    captured = capsys.readouterr()
    states = {a["name"]: a["state"] for a in json.loads(captured.out)["assets"]}
    assert states["other"] == "built"
    assert "corrupt" in captured.err and "other" in captured.err
    assert _sha(project / "out" / "other.png") == good


@pytest.mark.parametrize(
    "garbage", ["{not json", "null", "[]", '{"v": 99}', '{"v": 1, "key": "k", "outputs": 7}']
)
def test_a_garbage_action_entry_is_a_miss_and_rebuilt(
    garbage: str, chain: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import diskcache

    project = chain
    key = _lock(project)["assets"]["other"]["key"]  # type: ignore[index]
    actions = chain.parent / "cache" / "actions"
    with diskcache.Cache(str(actions)) as cache:
        assert key in cache
        cache.set(key, garbage)
    (project / "out" / "other.png").unlink()
    (project / "mediafile.lock").unlink()
    capsys.readouterr()
    assert main(["--json", "run"]) == 0
    states = {a["name"]: a["state"] for a in json.loads(capsys.readouterr().out)["assets"]}
    assert states["other"] == "built"
    assert (project / "out" / "other.png").is_file()
