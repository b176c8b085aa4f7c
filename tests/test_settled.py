"""The settled snapshot: an unchanged project is answered without loading it, and any
change to the mediafile, an input, an output, the lockfile, the cache or the settings
is still seen.

Each case builds a fixture project, lets a no-op run write the snapshot, checks that
the next no-op takes the short way (it never imports the project module), then makes
one change and checks that the command decides in full and reaches the right verdict.
"""

from __future__ import annotations

import http.server
import io
import json
import os
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import pytest
from conftest import CliResult, called, edit_yaml, states
from PIL import Image, PngImagePlugin

from imaginebuild.testing.fake_media import render_image

Cli = Callable[..., CliResult]
CHAIN = ("base", "inked", "framed", "other")

# Runs the CLI in-process and reports whether the full decision (the project module) ran.
_PROBE = """
import json, sys
from imaginebuild.cli.app import main
code = main(sys.argv[1:])
sys.stdout.flush()
print(json.dumps({"code": code, "full": "imaginebuild.project" in sys.modules}))
"""


def probe(cwd: Path, env: Mapping[str, str], *args: str) -> tuple[int, bool, str]:
    """(exit code, whether the full decision ran, stderr) of one CLI command."""
    proc = subprocess.run(
        [sys.executable, "-c", _PROBE, *args],
        cwd=cwd,
        env=dict(env),
        capture_output=True,
        text=True,
        timeout=120,
    )
    last = json.loads(proc.stdout.strip().splitlines()[-1])
    return int(last["code"]), bool(last["full"]), proc.stderr


@pytest.fixture
def settled_chain(cli: Cli, chain_dir: Path, clean_env: dict[str, str]) -> Path:
    """The chain fixture built, with a snapshot written by a no-op run."""
    assert cli("run", cwd=chain_dir).code == 0
    assert cli("run", cwd=chain_dir).code == 0  # the full no-op writes the snapshot
    code, full, _ = probe(chain_dir, clean_env, "run")
    assert (code, full) == (0, False)
    return chain_dir


def test_a_no_op_run_is_answered_from_the_snapshot(
    settled_chain: Path, cli: Cli, clean_env: dict[str, str]
) -> None:
    snapshots = list((settled_chain / ".imaginebuild").glob("settled-*.json"))
    assert [p.name for p in snapshots] == ["settled-mediafile.yaml.json"]
    fast = cli("--json", "run", cwd=settled_chain)
    assert fast.code == 0
    assert states(fast.json) == dict.fromkeys(CHAIN, "up_to_date")
    assert "built 0, restored 0, up to date 4" in fast.stderr
    code, full, _ = probe(settled_chain, clean_env, "status")
    assert (code, full) == (0, False)


def test_the_short_answer_equals_the_full_one(settled_chain: Path, cli: Cli) -> None:
    fast_status = cli("--json", "status", cwd=settled_chain).json
    fast_run = cli("--json", "run", cwd=settled_chain).json
    for path in (settled_chain / ".imaginebuild").glob("settled-*.json"):
        path.unlink()
    full_status = cli("--json", "status", cwd=settled_chain).json
    full_run = cli("--json", "run", cwd=settled_chain).json
    for data in (fast_status, fast_run, full_status, full_run):
        data.pop("seconds")
    assert fast_status == full_status
    assert fast_run == full_run


def test_a_prompt_change_is_seen(settled_chain: Path, cli: Cli, clean_env: dict[str, str]) -> None:
    edit_yaml(settled_chain / "mediafile.yaml", "A lighthouse at dawn", "A lighthouse at dusk")
    code, full, _ = probe(settled_chain, clean_env, "status")
    assert (code, full) == (0, True)
    result = cli("--json", "run", cwd=settled_chain)
    assert called(result.json) == {"other"}


def test_a_same_size_input_change_with_its_old_mtime_is_seen(settled_chain: Path, cli: Cli) -> None:
    logo = settled_chain / "art" / "logo.png"
    before = logo.stat()
    new = _same_size_variant(logo.read_bytes())
    logo.write_bytes(new)
    os.utime(logo, ns=(before.st_atime_ns, before.st_mtime_ns))  # mtime put back; ctime moves
    assert (logo.stat().st_size, logo.stat().st_mtime_ns) == (before.st_size, before.st_mtime_ns)
    result = cli("--json", "run", cwd=settled_chain)
    assert result.code == 0
    assert called(result.json) == {"inked", "framed"}


def _same_size_variant(png: bytes) -> bytes:
    """Another valid PNG of exactly the same length (flat red, padded with a text chunk)."""
    with Image.open(io.BytesIO(png)) as original:
        image = Image.new("RGBA", original.size, (250, 0, 0, 255))
    plain = io.BytesIO()
    image.save(plain, "PNG")
    padding = len(png) - len(plain.getvalue()) - 14  # a tEXt chunk: 12 bytes + "k\0" + text
    assert padding >= 0
    info = PngImagePlugin.PngInfo()
    info.add_text("k", "x" * padding)
    padded = io.BytesIO()
    image.save(padded, "PNG", pnginfo=info)
    assert len(padded.getvalue()) == len(png)
    return padded.getvalue()


def test_a_changed_output_is_seen_and_restored(settled_chain: Path, cli: Cli) -> None:
    out = settled_chain / "out" / "framed.png"
    good = out.read_bytes()
    out.chmod(0o644)
    out.write_bytes(good[:-1] + bytes([good[-1] ^ 1]))
    held = cli("--json", "run", cwd=settled_chain)  # seen: a hand edit is kept, not restored
    assert held.code == 1
    assert states(held.json)["framed"] == "failed"
    assert "retouched by hand" in held.stderr
    result = cli("--json", "run", "--force", "framed", cwd=settled_chain)
    assert result.code == 0
    assert states(result.json)["framed"] == "restored"
    assert out.read_bytes() == good


def test_a_deleted_output_is_seen(settled_chain: Path, cli: Cli) -> None:
    (settled_chain / "out" / "base.png").unlink()
    result = cli("--json", "run", cwd=settled_chain)
    assert states(result.json)["base"] == "restored"
    assert (settled_chain / "out" / "base.png").is_file()


def test_a_lockfile_change_is_seen(settled_chain: Path, cli: Cli) -> None:
    lock_path = settled_chain / "mediafile.lock"
    lock = json.loads(lock_path.read_text())
    del lock["assets"]["other"]
    lock_path.write_text(json.dumps(lock, indent=2, sort_keys=True) + "\n")
    result = cli("--json", "run", cwd=settled_chain)
    assert result.code == 0
    assert states(result.json)["other"] == "restored"  # from the cache, no call
    assert "other" in json.loads(lock_path.read_text())["assets"]


def test_a_setting_change_is_seen(settled_chain: Path, cli: Cli, clean_env: dict[str, str]) -> None:
    env = {**clean_env, "IMAGINEBUILD_PROVIDER": "local"}
    code, full, _ = probe(settled_chain, env, "run")
    assert (code, full) == (0, True)
    code, full, _ = probe(settled_chain, clean_env, "run", "other")
    assert (code, full) == (0, True)  # other targets: another verdict
    code, full, _ = probe(settled_chain, clean_env, "run", "other")
    assert (code, full) == (0, False)


def test_option_errors_are_reported_as_in_full(settled_chain: Path, cli: Cli) -> None:
    assert cli("run", "-j", "0", cwd=settled_chain).code == 2
    assert cli("run", "--max-cost", "lots", cwd=settled_chain).code == 2
    bad = cli("run", "nosuch", cwd=settled_chain)
    assert bad.code == 2
    assert "unknown target" in bad.stderr


def test_force_and_dry_run_take_the_full_way(
    settled_chain: Path, clean_env: dict[str, str]
) -> None:
    code, full, _ = probe(settled_chain, clean_env, "run", "--dry-run")
    assert (code, full) == (0, True)
    code, full, _ = probe(settled_chain, clean_env, "run", "--force", "other")
    assert (code, full) == (0, True)


def test_a_garbled_snapshot_only_costs_the_full_decision(settled_chain: Path, cli: Cli) -> None:
    snapshot = settled_chain / ".imaginebuild" / "settled-mediafile.yaml.json"
    for garbage in (b"", b"{", b'{"version": 1}', b"[1, 2]", b'{"version":1,"fingerprint":3}'):
        snapshot.write_bytes(garbage)
        result = cli("--json", "run", cwd=settled_chain)
        assert result.code == 0, result.stderr
        assert states(result.json) == dict.fromkeys(CHAIN, "up_to_date")


def test_a_work_run_forgets_the_verdict_before_it_starts(settled_chain: Path, cli: Cli) -> None:
    snapshot = settled_chain / ".imaginebuild" / "settled-mediafile.yaml.json"
    edit_yaml(settled_chain / "mediafile.yaml", "A red fox", "A grey fox")
    result = cli("run", cwd=settled_chain)
    assert result.code == 0
    assert not snapshot.exists()  # written again by the next no-op, not by a run that worked


# ------------------------------------------------------------------ a URL input's cached blob


@pytest.fixture
def served_png(tmp_path: Path) -> Iterator[str]:
    """A PNG served over plain http on 127.0.0.1."""
    folder = tmp_path / "served"
    folder.mkdir()
    (folder / "ref.png").write_bytes(render_image((32, 32), (10, 120, 200), "png"))

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args: object, **kwargs: object) -> None:
            super().__init__(*args, directory=str(folder), **kwargs)  # type: ignore[arg-type]

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/ref.png"
    finally:
        server.shutdown()
        server.server_close()


def test_a_url_input_missing_from_the_cache_is_seen(
    tmp_path: Path, served_png: str, cli: Cli, clean_env: dict[str, str], cache_dir: Path
) -> None:
    project = tmp_path / "urlproject"
    project.mkdir()
    (project / "mediafile.yaml").write_text(
        "version: 1\nprovider: local\nassets:\n"
        f'  a: {{kind: edit, prompt: "tint it", inputs: ["{served_png}"]}}\n'
    )
    env = {**clean_env, "IMAGINEBUILD_ALLOW_HTTP_LOOPBACK": "1"}
    assert cli("run", cwd=project, env=env).code == 0
    assert cli("run", cwd=project, env=env).code == 0
    code, full, _ = probe(project, env, "run")
    assert (code, full) == (0, False)
    lock = json.loads((project / "mediafile.lock").read_text())
    pinned = lock["assets"]["a"]["fields"]["inputs"][0]["sha256"]
    blobs = [p for p in cache_dir.rglob(pinned + "*") if p.is_file()]
    assert blobs, "the URL input's bytes are kept in the cache"
    for blob in blobs:
        blob.parent.chmod(0o755)
        blob.unlink()
    code, full, _ = probe(project, env, "status")
    assert (code, full) == (0, True)
    assert states(cli("--json", "status", cwd=project, env=env).json) == {"a": "stale"}
