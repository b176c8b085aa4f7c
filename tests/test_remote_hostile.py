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
from s3server import ACCESS_KEY, BUCKET, REGION, SECRET_KEY, FaultProxy, S3Server, start_s3

from imaginebuild.cli.app import main
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


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out + out.err


def built_on_a(
    remote: Remote, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> dict[str, Any]:
    """Machine A builds and pushes; returns its lockfile."""
    folder = remote.machine("a", monkeypatch)
    code, text = cli(capsys, "run")
    assert code == 0, text
    return dict(json.loads((folder / "mediafile.lock").read_text()))


def calls(text: str) -> str:
    return next(line for line in text.splitlines() if line.startswith("built "))


def test_4_a_remote_entry_naming_the_wrong_blob_is_never_restored(
    remote: Remote, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    lock = built_on_a(remote, monkeypatch, capsys)
    image = lock["assets"]["a"]["outputs"][0]
    key = lock["assets"]["teaser"]["key"]
    doc = remote.entry(key)
    doc["entry"]["outputs"] = [
        {"sha256": image["sha256"], "bytes": image["bytes"], "media_type": "video/mp4"}
    ]
    remote.put_entry(key, doc)
    folder = remote.machine("b", monkeypatch)
    code, text = cli(capsys, "run")
    assert code == 0, text
    assert "does not hold the media type" in text
    assert (folder / "out" / "teaser.mp4").read_bytes()[4:8] == b"ftyp"
    # B's push replaced the bad entry: C restores the real video without a call.
    assert remote.entry(key)["entry"]["outputs"][0]["sha256"] != image["sha256"]
    folder_c = remote.machine("c", monkeypatch)
    code, text = cli(capsys, "run")
    assert code == 0 and calls(text).startswith("built 0"), text
    assert (folder_c / "out" / "teaser.mp4").read_bytes()[4:8] == b"ftyp"


def test_8_a_corrupt_blob_on_a_writable_remote_warns_rebuilds_and_repairs(
    remote: Remote, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    lock = built_on_a(remote, monkeypatch, capsys)
    image = lock["assets"]["a"]["outputs"][0]
    remote.raw.pipe_file(remote.blob_path(image["sha256"]), b"\0" * image["bytes"])
    remote.machine("b", monkeypatch)
    code, text = cli(capsys, "run")
    assert code == 0, text
    assert "corrupt" in text
    repaired = remote.raw.cat_file(remote.blob_path(image["sha256"]))
    assert hashlib.sha256(repaired).hexdigest() == image["sha256"]
    remote.machine("c", monkeypatch)
    code, text = cli(capsys, "run")
    assert code == 0 and calls(text).startswith("built 0"), text


def test_8_a_corrupt_blob_on_a_readonly_remote_warns_and_rebuilds(
    remote: Remote, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    lock = built_on_a(remote, monkeypatch, capsys)
    image = lock["assets"]["a"]["outputs"][0]
    bad = b"\0" * image["bytes"]
    remote.raw.pipe_file(remote.blob_path(image["sha256"]), bad)
    monkeypatch.setenv("IMAGINEBUILD_REMOTE_READONLY", "1")
    folder = remote.machine("b", monkeypatch)
    code, text = cli(capsys, "run")
    assert code == 0, text
    assert "corrupt" in text
    assert (folder / "out" / "a.png").read_bytes().startswith(b"\x89PNG")
    assert remote.raw.cat_file(remote.blob_path(image["sha256"])) == bad  # not written


def test_11_an_oversized_remote_blob_is_never_downloaded(
    remote: Remote,
    proxy: FaultProxy,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    lock = built_on_a(remote, monkeypatch, capsys)
    image = lock["assets"]["a"]["outputs"][0]
    huge = 16 << 20
    remote.raw.pipe_file(remote.blob_path(image["sha256"]), b"\x89PNG" + b"\0" * huge)
    folder = remote.machine("b", monkeypatch, endpoint=proxy.endpoint)
    code, text = cli(capsys, "run")
    assert code == 0, text
    assert "its entry says" in text
    assert proxy.served < huge // 4, proxy.served
    assert (folder / "out" / "a.png").read_bytes().startswith(b"\x89PNG")


def test_11_an_oversized_action_entry_is_not_read_whole(
    remote: Remote,
    proxy: FaultProxy,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    lock = built_on_a(remote, monkeypatch, capsys)
    key = lock["assets"]["a"]["key"]
    doc = remote.entry(key)
    doc["padding"] = "x" * (4 * ENTRY_CAP)
    remote.put_entry(key, doc)
    remote.machine("b", monkeypatch, endpoint=proxy.endpoint)
    for argv in (["plan"], ["run"]):
        code, text = cli(capsys, *argv)
        assert code == 0, (argv, text)
    assert "larger than" in text
    assert proxy.served < 2 * ENTRY_CAP + (1 << 20), proxy.served


def test_13_a_remote_record_with_an_absurd_cost_is_not_a_crash(
    remote: Remote, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    lock = built_on_a(remote, monkeypatch, capsys)
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
        code, text = cli(capsys, *argv)
        assert code == 0, (argv, text)
        assert "\x1b[2J" not in text, argv
