"""A hostile or damaged remote cache, against the real S3 server fixture, through the CLI.

Machine A builds and pushes; the remote is then tampered with the way a broken
uploader, a full disk or another user could leave it; machine B (a fresh clone
with its own local cache) runs the commands a user would. B never restores the
wrong bytes, never crashes (exit 70), never downloads more than an entry says,
and a writable remote is repaired by B's rebuild.
"""

from __future__ import annotations

import hashlib
import json
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import run_cli
from s3server import ACCESS_KEY, BUCKET, REGION, SECRET_KEY, FaultProxy, S3Server, start_s3

from imaginebuild.untrusted import ENTRY_CAP

MEDIAFILE = """\
version: 1
provider: local
output_dir: out
defaults:
  image: {resolution: 1k, aspect_ratio: "1:1"}
  video: {resolution: 480p, duration: 1}
assets:
  a: {kind: image, prompt: a red square}
  teaser: {kind: video, prompt: a slow pan}
"""


@pytest.fixture(scope="module")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    server = start_s3(tmp_path_factory.mktemp("s3hostile"))
    yield server
    server.stop()


@pytest.fixture
def proxy(s3: S3Server) -> Iterator[FaultProxy]:
    """A TCP forwarder that counts the bytes the server sends (never cuts: not armed)."""
    fault = FaultProxy(int(s3.endpoint.rsplit(":", 1)[1]))
    yield fault
    fault.close()


@pytest.fixture
def raw(s3: S3Server) -> Any:
    import s3fs

    return s3fs.S3FileSystem(
        key=ACCESS_KEY,
        secret=SECRET_KEY,
        client_kwargs={"endpoint_url": s3.endpoint, "region_name": REGION},
        skip_instance_cache=True,
    )


class Remote:
    """The test's prefix of the bucket, and two machines' folders."""

    def __init__(self, tmp_path: Path, raw: Any, endpoint: str) -> None:
        self.tmp = tmp_path
        self.raw = raw
        self.endpoint = endpoint
        self.prefix = f"{BUCKET}/h-{uuid.uuid4().hex[:12]}"
        self.url = f"s3://{self.prefix}"

    def machine(self, name: str, monkeypatch: pytest.MonkeyPatch, endpoint: str = "") -> Path:
        """Switch the in-process CLI to machine `name` (its own clone and local cache)."""
        folder = self.tmp / name
        if not folder.exists():
            folder.mkdir()
            (folder / "mediafile.yaml").write_text(MEDIAFILE, encoding="utf-8")
        monkeypatch.setenv("IMAGINEBUILD_CACHE_DIR", str(self.tmp / f"cache-{name}"))
        monkeypatch.setenv("AWS_ENDPOINT_URL_S3", endpoint or self.endpoint)
        monkeypatch.chdir(folder)
        return folder

    def entry_path(self, key: str) -> str:
        return f"{self.prefix}/v1/actions/{key[:2]}/{key}.json"

    def blob_path(self, sha: str) -> str:
        return f"{self.prefix}/v1/blobs/{sha[:2]}/{sha}"

    def entry(self, key: str) -> dict[str, Any]:
        return dict(json.loads(self.raw.cat_file(self.entry_path(key))))

    def put_entry(self, key: str, doc: dict[str, Any]) -> None:
        self.raw.pipe_file(self.entry_path(key), json.dumps(doc).encode())


@pytest.fixture
def remote(tmp_path: Path, raw: Any, s3: S3Server, monkeypatch: pytest.MonkeyPatch) -> Remote:
    for name in list(os.environ):
        if name.startswith(("XAI_", "IMAGINEBUILD_", "AWS_")):
            monkeypatch.delenv(name)
    made = Remote(tmp_path, raw, s3.endpoint)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XAI_BASE_URL", "http://127.0.0.1:9/v1")
    monkeypatch.setenv("IMAGINEBUILD_REMOTE", made.url)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", ACCESS_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
    monkeypatch.setenv("AWS_REGION", REGION)
    return made


def cli(*argv: str) -> tuple[int, str]:
    """`imaginebuild ARGV…` in-process here with this environment: (exit code, all it printed)."""
    done = run_cli(*argv, cwd=Path.cwd(), env=os.environ)
    return done.code, done.stdout + done.stderr


def built_on_a(remote: Remote, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """Machine A builds and pushes; returns its lockfile."""
    folder = remote.machine("a", monkeypatch)
    code, text = cli("run")
    assert code == 0, text
    return dict(json.loads((folder / "mediafile.lock").read_text()))


def calls(text: str) -> str:
    return next(line for line in text.splitlines() if line.startswith("built "))


def test_4_a_remote_entry_naming_the_wrong_blob_is_never_restored(
    remote: Remote, monkeypatch: pytest.MonkeyPatch
) -> None:
    lock = built_on_a(remote, monkeypatch)
    image = lock["assets"]["a"]["outputs"][0]
    key = lock["assets"]["teaser"]["key"]
    doc = remote.entry(key)
    doc["entry"]["outputs"] = [
        {"sha256": image["sha256"], "bytes": image["bytes"], "media_type": "video/mp4"}
    ]
    remote.put_entry(key, doc)
    folder = remote.machine("b", monkeypatch)
    code, text = cli("run")
    assert code == 0, text
    assert "does not hold the media type" in text
    assert (folder / "out" / "teaser.mp4").read_bytes()[4:8] == b"ftyp"
    # B's push replaced the bad entry: C restores the real video without a call.
    assert remote.entry(key)["entry"]["outputs"][0]["sha256"] != image["sha256"]
    folder_c = remote.machine("c", monkeypatch)
    code, text = cli("run")
    assert code == 0 and calls(text).startswith("built 0"), text
    assert (folder_c / "out" / "teaser.mp4").read_bytes()[4:8] == b"ftyp"


@pytest.mark.parametrize("argv", [["pull"], ["checkout"], ["run"]], ids=lambda a: a[0])
def test_4_a_remote_entry_climbing_out_of_the_cache_is_neither_read_nor_written(
    argv: list[str], remote: Remote, monkeypatch: pytest.MonkeyPatch
) -> None:
    canary = b"CANARY-remote-entry-outside"
    victim = remote.tmp / "victim"
    victim.mkdir()
    (victim / "precious.txt").write_bytes(b"precious " + canary)
    lock = built_on_a(remote, monkeypatch)
    key = lock["assets"]["a"]["key"]
    doc = remote.entry(key)
    climb = "../../../victim/precious.txt"  # from <cache>/blobs/<2>/ to the victim
    doc["entry"]["outputs"] = [{"sha256": climb, "bytes": 15, "media_type": "image/png"}]
    remote.put_entry(key, doc)
    folder = remote.machine("b", monkeypatch)
    (folder / "mediafile.lock").write_text(json.dumps(lock))  # b is a clone of a's commit
    code, text = cli(*argv)
    assert code in (0, 1), text  # never 70
    if argv != ["checkout"]:  # checkout fetches the lockfile's blobs, not action entries
        assert "ignoring the entry for" in text and "not a valid blob hash" in text, text
        assert text.count("ignoring the entry for") == 1, text  # said once, however often read
    assert canary.decode() not in text
    assert (victim / "precious.txt").read_bytes() == b"precious " + canary
    assert sorted(p.name for p in victim.iterdir()) == ["precious.txt"]
    for mine in (folder, remote.tmp / "cache-b"):
        for path in mine.rglob("*"):
            assert not path.is_file() or canary not in path.read_bytes(), path
    if argv == ["run"]:  # a is built again (or restored from a's good blob), never the victim
        assert (folder / "out" / "a.png").read_bytes().startswith(b"\x89PNG")


def test_8_a_corrupt_blob_on_a_writable_remote_warns_rebuilds_and_repairs(
    remote: Remote, monkeypatch: pytest.MonkeyPatch
) -> None:
    lock = built_on_a(remote, monkeypatch)
    image = lock["assets"]["a"]["outputs"][0]
    remote.raw.pipe_file(remote.blob_path(image["sha256"]), b"\0" * image["bytes"])
    remote.machine("b", monkeypatch)
    code, text = cli("run")
    assert code == 0, text
    assert "corrupt" in text
    repaired = remote.raw.cat_file(remote.blob_path(image["sha256"]))
    assert hashlib.sha256(repaired).hexdigest() == image["sha256"]
    remote.machine("c", monkeypatch)
    code, text = cli("run")
    assert code == 0 and calls(text).startswith("built 0"), text


def test_8_a_corrupt_blob_on_a_readonly_remote_warns_and_rebuilds(
    remote: Remote, monkeypatch: pytest.MonkeyPatch
) -> None:
    lock = built_on_a(remote, monkeypatch)
    image = lock["assets"]["a"]["outputs"][0]
    bad = b"\0" * image["bytes"]
    remote.raw.pipe_file(remote.blob_path(image["sha256"]), bad)
    monkeypatch.setenv("IMAGINEBUILD_REMOTE_READONLY", "1")
    folder = remote.machine("b", monkeypatch)
    code, text = cli("run")
    assert code == 0, text
    assert "corrupt" in text
    assert (folder / "out" / "a.png").read_bytes().startswith(b"\x89PNG")
    assert remote.raw.cat_file(remote.blob_path(image["sha256"])) == bad  # not written


def test_11_an_oversized_remote_blob_is_never_downloaded(
    remote: Remote,
    proxy: FaultProxy,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    lock = built_on_a(remote, monkeypatch)
    image = lock["assets"]["a"]["outputs"][0]
    huge = 16 << 20
    remote.raw.pipe_file(remote.blob_path(image["sha256"]), b"\x89PNG" + b"\0" * huge)
    folder = remote.machine("b", monkeypatch, endpoint=proxy.endpoint)
    code, text = cli("run")
    assert code == 0, text
    assert "its entry says" in text
    assert proxy.served < huge // 4, proxy.served
    assert (folder / "out" / "a.png").read_bytes().startswith(b"\x89PNG")


def test_11_an_oversized_action_entry_is_not_read_whole(
    remote: Remote,
    proxy: FaultProxy,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    lock = built_on_a(remote, monkeypatch)
    key = lock["assets"]["a"]["key"]
    doc = remote.entry(key)
    doc["padding"] = "x" * (4 * ENTRY_CAP)
    remote.put_entry(key, doc)
    remote.machine("b", monkeypatch, endpoint=proxy.endpoint)
    for argv in (["plan"], ["run"]):
        code, text = cli(*argv)
        assert code == 0, (argv, text)
    assert "larger than" in text
    assert proxy.served < 2 * ENTRY_CAP + (1 << 20), proxy.served


def test_13_a_remote_record_with_an_absurd_cost_is_not_a_crash(
    remote: Remote, monkeypatch: pytest.MonkeyPatch
) -> None:
    lock = built_on_a(remote, monkeypatch)
    for name in ("a", "teaser"):
        key = lock["assets"][name]["key"]
        doc = remote.entry(key)
        doc["entry"]["record"].update(
            cost_usd="1e999999999", estimate_usd="NaN", request_ids=["\x1b[2J"]
        )
        remote.put_entry(key, doc)
    remote.machine("b", monkeypatch)
    for argv in (
        ["run"], ["status"], ["show", "a"], ["--json", "show", "a"], ["report"], ["cost"],
        ["--json", "status"], ["checkout"],
    ):  # fmt: skip
        code, text = cli(*argv)
        assert code == 0, (argv, text)
        assert "\x1b[2J" not in text, argv


# ------------------------------------------------------------------ 9. leases


def _key_of(name: str) -> str:
    code, text = cli("--json", "plan")
    assert code == 0, text
    found = {a["name"]: a["key"] for a in json.loads(text[: text.rindex("}") + 1])["assets"]}
    return str(found[name])


def _lease_path(remote: Remote, key: str) -> str:
    return f"{remote.prefix}/v1/leases/{key}.json"


def _dead_pid() -> int:
    import subprocess
    import sys

    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def _spawn_run(folder: Path, *argv: str) -> tuple[Any, list[str]]:
    """`imaginebuild run` as a child process of this machine, its stderr read by a thread."""
    import subprocess
    import sys
    import threading

    child = subprocess.Popen(
        [sys.executable, "-m", "imaginebuild", *argv],
        cwd=folder,
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])},
    )
    lines: list[str] = []

    def read() -> None:
        assert child.stderr is not None
        for line in child.stderr:
            lines.append(line)

    threading.Thread(target=read, daemon=True).start()
    return child, lines


def test_9_a_dead_holder_on_this_host_does_not_block_the_rerun(
    remote: Remote, monkeypatch: pytest.MonkeyPatch
) -> None:
    import socket
    import time

    from conftest import wait_for_state

    folder = remote.machine("b", monkeypatch)
    key = _key_of("a")
    ghost = {
        "v": 1, "owner": "ghost-run", "expires": time.time() + 3000,
        "host": socket.gethostname(), "pid": _dead_pid(), "started": 1,
    }  # fmt: skip
    remote.raw.pipe_file(_lease_path(remote, key), json.dumps(ghost).encode())
    child, lines = _spawn_run(folder, "run")
    wait_for_state(
        lambda: child.poll() is not None, "the rerun to finish", log=lambda: "".join(lines)
    )
    assert child.returncode == 0, "".join(lines)
    assert not any("waiting for its push" in line for line in lines), lines


@pytest.mark.parametrize("signame", ["SIGINT", "SIGTERM"])
def test_9_a_wait_on_a_live_lease_is_interruptible_and_says_what_it_waits_for(
    signame: str,
    remote: Remote,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import signal
    import time

    from conftest import assert_still_running, wait_for_state

    folder = remote.machine("b", monkeypatch)
    key = _key_of("a")
    other = {"v": 1, "owner": "builder-on-another-host", "expires": time.time() + 3000,
             "host": "another-host", "pid": 1}  # fmt: skip
    remote.raw.pipe_file(_lease_path(remote, key), json.dumps(other).encode())
    child, lines = _spawn_run(folder, "run", "a")
    log = lambda: "".join(lines)  # noqa: E731
    waiting = "builder-on-another-host is building"
    wait_for_state(
        lambda: any(waiting in line for line in lines), "the wait message", child=child, log=log
    )
    assert_still_running(child, f"sending {signame}", log, getattr(signal, signame))
    child.send_signal(getattr(signal, signame))
    wait_for_state(lambda: child.poll() is not None, f"exit after {signame}", log=log)
    assert child.returncode == 130, log()


def test_9_a_lease_claiming_to_last_forever_ends_within_the_cap(
    remote: Remote, s3: S3Server
) -> None:
    import time

    from imaginebuild.remote.cache import RemoteCache
    from imaginebuild.remote.leases import MAX_LEASE_S

    key = "9" * 64
    forever = {"v": 1, "owner": "squatter", "expires": 1e18, "host": "elsewhere", "pid": 1}
    remote.raw.pipe_file(_lease_path(remote, key), json.dumps(forever).encode())
    env = {
        "AWS_ACCESS_KEY_ID": ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
        "AWS_ENDPOINT_URL_S3": s3.endpoint, "AWS_REGION": REGION,
    }  # fmt: skip
    base = RemoteCache.from_config(remote.url, False, env)
    assert base is not None
    assert not base.acquire_lease(key, "me", 60)  # within its first hour it holds
    later = RemoteCache(
        base.transport.fs, base.root, url=remote.url, clock=lambda: time.time() + MAX_LEASE_S + 60
    )
    assert later.lease_holder(key) is None
    assert later.acquire_lease(key, "me", 60)
