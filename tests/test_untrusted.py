"""Untrusted lockfiles, caches and registries, attacked from the side each guard guards.

A lockfile arrives in a pull request; `IMAGINEBUILD_CACHE_DIR` may be shared with
other people. Neither may make any command read or write a file outside the
project and its cache, serve bytes of the wrong media type, or end in exit 70.
Each test plants the hostile entry, runs the command a user would run, and then
checks both sides of the guard:

- no write: every file outside the project and the cache is byte for byte what it
  was (and no file or folder appeared or vanished);
- no read: the files the entry points at carry a canary, and the canary appears
  nowhere imaginebuild writes (project, cache, report) nor in its output.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest
from PIL import Image, PngImagePlugin

from imaginebuild.cli.app import main
from imaginebuild.store.lockfile import parse_lockfile
from imaginebuild.testing.fake_xai import FakeXai, render_image
from imaginebuild.untrusted import (
    Untrusted,
    check_api_key,
    confine,
    is_sha256,
    printable,
    read_capped,
)

CANARY = b"CANARY-5e1d-bytes-from-outside-the-project"
KEY = "xai-UNTRUSTED-0a1b2c3d4e5f"

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


def canary_png() -> bytes:
    """A real PNG whose bytes carry the canary (in a text chunk)."""
    info = PngImagePlugin.PngInfo()
    info.add_text("secret", CANARY.decode())
    buf = io.BytesIO()
    Image.new("RGB", (16, 16), (200, 10, 10)).save(buf, "PNG", pnginfo=info)
    return buf.getvalue()


class World:
    """A built project, its cache, and victims outside both."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp = tmp_path
        self.project = tmp_path / "project"
        self.cache = tmp_path / "cache"
        self.victim = tmp_path / "victim"
        self.victim.mkdir()
        self.precious = self.victim / "precious.txt"
        self.precious.write_bytes(b"precious " + CANARY)
        self.precious.chmod(0o444)
        self.private_png = self.victim / "private.png"
        self.private_png.write_bytes(canary_png())
        self.project.mkdir()
        (self.project / "mediafile.yaml").write_text(MEDIAFILE, encoding="utf-8")
        self.outside_before = self.outside()

    def outside(self) -> dict[str, bytes | None]:
        """Every path outside the project and the cache, with its bytes (None: a folder)."""
        mine = (self.project, self.cache, self.tmp / "home", self.tmp / "user-cache")
        found: dict[str, bytes | None] = {}
        for path in sorted(self.tmp.rglob("*")):
            if any(path == m or m in path.parents for m in mine):
                continue
            rel = path.relative_to(self.tmp).as_posix()
            found[rel] = None if path.is_dir() else path.read_bytes()
        return found

    @property
    def lock_path(self) -> Path:
        return self.project / "mediafile.lock"

    def lock(self) -> dict[str, Any]:
        return dict(json.loads(self.lock_path.read_text()))

    def write_lock(self, data: dict[str, Any]) -> None:
        self.lock_path.write_text(json.dumps(data, indent=2))

    def assert_untouched(self, *outputs: str) -> None:
        """Nothing outside changed, and no canary reached anything imaginebuild wrote."""
        assert self.outside() == self.outside_before
        for text in outputs:
            assert CANARY.decode() not in text
        for folder in (self.project, self.cache):
            for path in folder.rglob("*"):
                if path.is_file() and not path.is_symlink():
                    assert CANARY not in path.read_bytes(), path


@pytest.fixture
def world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> World:
    for name in list(os.environ):
        if name.startswith(("XAI_", "IMAGINEBUILD_")):
            monkeypatch.delenv(name)
    monkeypatch.setenv("IMAGINEBUILD_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XAI_BASE_URL", "http://127.0.0.1:9/v1")
    made = World(tmp_path)
    monkeypatch.chdir(made.project)
    return made


def built(world: World, capsys: pytest.CaptureFixture[str]) -> World:
    assert main(["-q", "run"]) == 0
    capsys.readouterr()
    return world


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out + out.err


# The blob path of a hash is <cache>/blobs/<hash[:2]>/<hash>: with "..", this one
# lands on <tmp>/victim/precious.txt.
CLIMB_TO_PRECIOUS = "../victim/precious.txt"


# ------------------------------------------------------------------ 1. a lockfile hash


def test_1_a_lockfile_hash_cannot_delete_or_read_a_file_outside(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    built(world, capsys)
    lock = world.lock()
    lock["assets"]["a"]["outputs"][0]["sha256"] = CLIMB_TO_PRECIOUS
    world.write_lock(lock)
    (world.project / "out" / "a.png").unlink()
    for argv in (["checkout"], ["status"], ["show", "a"], ["--json", "show", "a"], ["gc", "--yes"]):
        code, text = run_cli(capsys, *argv)
        assert code in (0, 1, 2), (argv, text)
        assert "is not a sha256" in text, (argv, text)
    assert world.precious.read_bytes() == b"precious " + CANARY
    world.assert_untouched(text)


def test_1_a_lockfile_output_or_input_hash_that_is_not_hex_drops_the_entry() -> None:
    out = {"path": "out/a.png", "sha256": "a" * 64, "bytes": 1, "media_type": "image/png"}
    good = {"key": "a" * 64, "fields": {}, "outputs": [out], "record": {}}
    bad_out = {**good, "outputs": [{**out, "sha256": "../../x"}]}
    upper = {**good, "outputs": [{**out, "sha256": "A" * 64}]}
    bad_input = {**good, "fields": {"inputs": [{"ref": "https://h/x.png", "sha256": "\0"}]}}
    warnings: list[str] = []
    text = json.dumps(
        {"version": 1, "assets": {"g": good, "o": bad_out, "i": bad_input, "u": upper}}
    )
    entries = parse_lockfile(text, "mediafile.lock", warnings.append)
    assert set(entries) == {"g"}
    assert len(warnings) == 3 and all("is not a sha256" in w for w in warnings)


@pytest.mark.parametrize(
    "path",
    ["../outside/secret.png", "out/../../outside/secret.png", "/abs/secret.png", "a\\..\\b.png"],
)
def test_the_lockfile_path_guard_drops_an_escaping_output(path: str) -> None:
    """Kills the escaped mutant that deletes the lockfile's `..` guard (issue 20)."""
    entry = {
        "key": "a" * 64,
        "fields": {},
        "outputs": [{"path": path, "sha256": "b" * 64, "bytes": 1, "media_type": "image/png"}],
    }
    warnings: list[str] = []
    text = json.dumps({"version": 1, "assets": {"a": entry}})
    entries = parse_lockfile(text, "x", warnings.append)
    assert entries == {}
    assert "leaves the project" in warnings[0]


def test_report_never_copies_a_file_outside_named_by_a_lockfile_path(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    """The `..` guard seen from `report`: the hash is the outside file's own, so only the
    path guard stands between the page and the secret bytes."""
    built(world, capsys)
    secret = world.private_png.read_bytes()
    lock = world.lock()
    out = lock["assets"]["a"]["outputs"][0]
    out.update(path="../victim/private.png", sha256=hashlib.sha256(secret).hexdigest())
    out["bytes"] = len(secret)
    world.write_lock(lock)
    code, text = run_cli(capsys, "report", "-o", "site")
    assert code == 0, text
    assert "leaves the project" in text
    world.assert_untouched(text)


# ------------------------------------------------------------------ 2. a local cache entry


def test_2_a_poisoned_action_cache_entry_cannot_delete_a_file_outside(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    import diskcache

    built(world, capsys)
    key = world.lock()["assets"]["a"]["key"]
    entry = {
        "v": 1,
        "key": key,
        "outputs": [{"sha256": CLIMB_TO_PRECIOUS, "bytes": 9, "media_type": "image/png"}],
        "record": {},
        "takes": [],
    }
    with diskcache.Cache(str(world.cache / "actions")) as actions:
        actions.set(key, json.dumps(entry))
    world.lock_path.unlink()
    shutil.rmtree(world.project / "out")
    code, text = run_cli(capsys, "run")
    assert code == 0, text
    assert world.precious.read_bytes() == b"precious " + CANARY
    assert (world.project / "out" / "a.png").read_bytes().startswith(b"\x89PNG")
    world.assert_untouched(text)


def test_a_hostile_hash_never_names_a_blob_path(tmp_path: Path) -> None:
    from imaginebuild.errors import StoreError
    from imaginebuild.store.cache import Store

    store = Store(tmp_path / "cache")
    for bad in (CLIMB_TO_PRECIOUS, "a" * 63, "A" * 64, "a" * 64 + "\n", "a" * 63 + "\0"):
        assert not store.has_blob(bad)
        with pytest.raises(StoreError):
            store.blob_path(bad)


# ------------------------------------------------------------------ 3. a URL pin


class _Images(BaseHTTPRequestHandler):
    body = render_image((16, 16), (1, 2, 3), "png")
    hits: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        type(self).hits.append(self.path)
        self.send_response(200)
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, format: str, *args: object) -> None:
        """Quiet."""


@pytest.fixture
def image_server() -> Iterator[str]:
    _Images.hits = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Images)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02})
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/ref.png"
    finally:
        server.shutdown()
        server.server_close()


def test_3_a_lockfile_url_pin_cannot_make_an_outside_file_the_input(
    world: World,
    image_server: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("IMAGINEBUILD_ALLOW_HTTP_LOOPBACK", "1")
    body = MEDIAFILE + f"  e: {{kind: edit, prompt: make it blue, inputs: ['{image_server}']}}\n"
    (world.project / "mediafile.yaml").write_text(body)
    built(world, capsys)
    served = hashlib.sha256(_Images.body).hexdigest()
    lock = world.lock()
    assert lock["assets"]["e"]["fields"]["inputs"][0]["sha256"] == served
    # The pin now climbs from the blob folder to the private PNG outside.
    lock["assets"]["e"]["fields"]["inputs"][0]["sha256"] = "../victim/private.png"
    world.write_lock(lock)
    shutil.rmtree(world.cache)
    _Images.hits.clear()
    for argv in (["plan"], ["status"]):
        code, text = run_cli(capsys, *argv)
        assert code in (0, 2), (argv, text)
    # The entry is ignored and the cache is gone: nothing vouches for out/e.png any more,
    # so run keeps it as it would a retouch; `--force` sets it aside and builds.
    code, text = run_cli(capsys, "run")
    assert code == 1 and "retouched by hand" in text, text
    code, text = run_cli(capsys, "run", "--force", "e")
    assert code == 0, text
    assert _Images.hits, "the URL was never fetched: the pin stood in for it"
    assert world.lock()["assets"]["e"]["fields"]["inputs"][0]["sha256"] == served
    world.assert_untouched(text)


# ------------------------------------------------------------------ 4. wrong media


def _point_teaser_at_the_image(world: World) -> None:
    lock = world.lock()
    image = lock["assets"]["a"]["outputs"][0]
    teaser = lock["assets"]["teaser"]["outputs"][0]
    teaser.update(sha256=image["sha256"], bytes=image["bytes"], media_type="video/mp4")
    world.write_lock(lock)


def test_4_checkout_never_writes_an_image_to_a_video_output(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    built(world, capsys)
    _point_teaser_at_the_image(world)
    (world.project / "out" / "teaser.mp4").unlink()
    code, text = run_cli(capsys, "checkout")
    assert code == 1, text
    assert "does not hold the media type" in text
    assert not (world.project / "out" / "teaser.mp4").exists()


def test_4_an_image_committed_as_a_video_output_is_not_up_to_date(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    built(world, capsys)
    _point_teaser_at_the_image(world)
    shutil.copy(world.project / "out" / "a.png", world.project / "out" / "teaser.mp4")
    code, text = run_cli(capsys, "--json", "status")
    assert code == 0
    states = {a["name"]: a["state"] for a in json.loads(text[: text.rindex("}") + 1])["assets"]}
    assert states["teaser"] != "up_to_date"
    code, text = run_cli(capsys, "run", "--locked")
    assert code in (0, 3), text  # restored from the cache, or refused: never "up to date"
    assert "up to date 2" not in text
    code, text = run_cli(capsys, "run")
    assert code == 0, text
    assert (world.project / "out" / "teaser.mp4").read_bytes()[4:8] == b"ftyp"


# ------------------------------------------------------------------ 5. report folders


@pytest.mark.parametrize(
    "sha", ["../../../made-by-report/x", "../" * 6 + "tmp/made", "a" * 63 + "\0"]
)
def test_5_report_makes_no_folder_outside_from_a_crafted_hash(
    sha: str, world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    built(world, capsys)
    lock = world.lock()
    lock["assets"]["a"]["outputs"][0]["sha256"] = sha
    world.write_lock(lock)
    code, text = run_cli(capsys, "report")
    assert code == 0, text  # the entry is ignored with a warning; the page shows the rest
    assert "is not a sha256" in text
    assert not (world.tmp / "made-by-report").exists()
    world.assert_untouched(text)


# ------------------------------------------------------------------ 6. the state folder


@pytest.mark.parametrize("argv", [["run"], ["report"], ["status"], ["checkout"], ["gc", "--yes"]])
def test_6_a_symlinked_state_folder_is_refused(
    argv: list[str],
    world: World,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("IMAGINEBUILD_CACHE_DIR")  # the cache lives in the state folder too
    elsewhere = world.tmp / "elsewhere"
    elsewhere.mkdir()
    (world.project / ".imaginebuild").symlink_to(elsewhere)
    world.outside_before = world.outside()
    code, text = run_cli(capsys, *argv)
    assert code == 2, text
    assert ".imaginebuild is a symlink" in text
    assert list(elsewhere.iterdir()) == []
    assert world.outside() == world.outside_before


# ------------------------------------------------------------------ 7. the API key


@pytest.mark.parametrize(
    "key",
    [KEY + "\r\nX-Injected: 1", KEY[:8] + "\n" + KEY[8:], "xai-" + "é" * 8 + KEY[4:], KEY + "\x7f"],
    ids=["crlf", "lf", "non-ascii", "delete"],
)
def test_7_a_malformed_api_key_is_refused_without_being_shown(
    key: str, world: World, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    xai = MEDIAFILE.replace("provider: local", "provider: xai")
    (world.project / "mediafile.yaml").write_text(xai)
    with FakeXai() as fake:
        monkeypatch.setenv("XAI_BASE_URL", fake.base_url)
        monkeypatch.setenv("XAI_API_KEY", key)
        for argv in (["run"], ["--json", "run"]):
            code, text = run_cli(capsys, *argv)
            assert code == 1, text
            assert "XAI_API_KEY contains" in text
            assert KEY[4:] not in text and "Bearer" not in text
        assert fake.log == []  # refused before any request


def test_check_api_key_accepts_a_plain_key() -> None:
    check_api_key(KEY)
    with pytest.raises(Untrusted) as caught:
        check_api_key(KEY + "\n")
    assert KEY not in str(caught.value)


# ------------------------------------------------------------------ 13. exit 70 on data


def test_13_report_with_a_nul_in_a_hash_is_not_a_crash(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    built(world, capsys)
    lock = world.lock()
    lock["assets"]["a"]["outputs"][0]["sha256"] = "\0" * 64
    world.write_lock(lock)
    code, text = run_cli(capsys, "report")
    assert code == 0, text
    assert "\0" not in text and "\\x00" in text


@pytest.mark.parametrize("cost", [0.5, ["1"], {"usd": 1}, True])
def test_13_a_cost_that_is_not_a_text_in_a_record_is_shown_as_none(
    world: World, capsys: pytest.CaptureFixture[str], cost: object
) -> None:
    built(world, capsys)
    lock = world.lock()
    lock["assets"]["a"]["record"]["cost_usd"] = cost
    lock["assets"]["a"]["record"]["estimate_usd"] = cost
    world.write_lock(lock)
    for argv in (["show", "a"], ["report"]):
        code, text = run_cli(capsys, *argv)
        assert code == 0, (argv, text)
    assert "cost: $0.00" in run_cli(capsys, "show", "a")[1]


def test_13_a_huge_max_cost_is_bad_usage(world: World, capsys: pytest.CaptureFixture[str]) -> None:
    for amount in ("1e999999", "1e13", "NaN", "-1"):
        code, text = run_cli(capsys, "run", "--max-cost", amount)
        assert code == 2, (amount, text)
        assert "--max-cost" in text


def test_13_a_registry_entry_pointing_at_dev_zero_does_not_break_gc(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    built(world, capsys)
    folder = world.cache / "projects"
    for i, target in enumerate(("/dev/zero", str(world.precious), "relative.lock")):
        (folder / f"hostile{i}.json").write_text(json.dumps({"lockfile": target}))
    (folder / "huge.json").write_bytes(b"[" * 100_000)
    code, text = run_cli(capsys, "gc", "--yes")
    assert code == 0, text
    world.assert_untouched(text)


def test_13_another_projects_broken_lockfile_is_named_in_full(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    built(world, capsys)
    other = world.tmp / "other"
    other.mkdir()
    (other / "mediafile.yaml").write_text(MEDIAFILE)
    (other / "mediafile.lock").write_text("<<<<<<< HEAD\n{}\n=======\n{}\n>>>>>>> theirs\n")
    from imaginebuild.store.cache import Store

    Store(world.cache).register_project(other / "mediafile.lock")
    code, text = run_cli(capsys, "gc", "--yes")
    assert code == 2, text
    assert str(other / "mediafile.lock") in text


def test_13_deeply_nested_lockfile_json_is_a_lockfile_error(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    world.lock_path.write_text("[" * 200_000)
    for argv in (["status"], ["report"], ["checkout"], ["run"]):
        code, text = run_cli(capsys, *argv)
        assert code in (0, 2), (argv, text)


# ------------------------------------------------------------------ the checks themselves


def test_confine_refuses_every_way_out(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "sub").mkdir(parents=True)
    (root / "link").symlink_to(tmp_path)
    for bad in (
        "../x", "sub/../../x", "/etc/passwd", "a\\b", "a\0b", "", ".", "link/x",
        "C:\\x", "out/\u202egnp.exe", "out/\x1b[2Jx.png", None, 3,
    ):  # fmt: skip
        with pytest.raises(Untrusted):
            confine(root, bad)
    assert confine(root, "sub/./x.png") == root / "sub" / "x.png"


def test_read_capped_refuses_devices_and_large_files(tmp_path: Path) -> None:
    big = tmp_path / "big"
    big.write_bytes(b"x" * 11)
    with pytest.raises(Untrusted):
        read_capped(big, 10)
    with pytest.raises(Untrusted):
        read_capped(Path("/dev/zero"), 10)
    assert read_capped(big, 11) == b"x" * 11


def test_is_sha256_is_exactly_64_lowercase_hex() -> None:
    assert is_sha256("0" * 64)
    for bad in ("0" * 63, "0" * 65, "G" * 64, "A" * 64, "0" * 63 + "\n", 0, None):
        assert not is_sha256(bad)


def test_printable_escapes_what_moves_the_terminal() -> None:
    assert printable("ok\tline\n") == "ok\tline\n"
    shown = printable("a\x1b[31mred\u202eevil\x07")
    assert "\x1b" not in shown and "\u202e" not in shown and "\x07" not in shown
    assert "\\x1b" in shown and "\\u202e" in shown


# ------------------------------------------------------------------ 15. escapes on the terminal

ESCAPES = ("\x1b", "\x07", "\u202e", "\x9b")


def test_15_escape_sequences_never_reach_the_terminal_raw(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    (world.project / "mediafile.yaml").write_text(
        MEDIAFILE.replace("a red square", '"a \\e]0;pwned\\a red \\e[2J square \\u202e"')
    )
    built(world, capsys)
    lock = world.lock()
    record = lock["assets"]["a"]["record"]
    record["request_ids"] = ["req-\x1b[31mred\x1b[0m"]
    record["built_at"] = "\x9b2J"
    lock["assets"]["a"]["fields"]["prompt"] = "older \x1b[2J prompt"
    world.write_lock(lock)
    for argv in (["status"], ["why", "a"], ["plan"], ["show", "a"], ["run", "--dry-run"]):
        code, text = run_cli(capsys, *argv)
        assert code == 0, (argv, text)
        assert not any(c in text for c in ESCAPES), (argv, text)
        if argv == ["show", "a"]:
            assert "older \\x1b[2J prompt" in text and "req-\\x1b[31mred" in text, text
    code, text = run_cli(capsys, "--json", "show", "a")
    assert code == 0 and "\x1b" not in text  # JSON escapes control characters itself


# ------------------------------------------------------------------ 17. spoofed output paths


@pytest.mark.parametrize(
    ("output", "why"),
    [
        ("out/\u202egnp.mp4", "U+202E"),
        ("out/in\u200bvoice.png", "U+200B"),
        ("out/p\u0430ypal.png", "CYRILLIC"),  # a Cyrillic а among Latin letters
        ("out/cafe\u0301.png", "NFC"),
    ],
)
def test_17_control_bidi_and_homoglyph_output_paths_are_refused(
    output: str, why: str, world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    body = MEDIAFILE + f'  b: {{kind: image, prompt: p, output: "{output}"}}\n'
    (world.project / "mediafile.yaml").write_text(body, encoding="utf-8")
    code, text = run_cli(capsys, "run")
    assert code == 2, text
    assert "assets.b.output" in text and why in text
    assert not any(c in text for c in ESCAPES)
    assert not (world.project / "out").exists()


def test_17_a_path_in_one_script_is_fine(world: World, capsys: pytest.CaptureFixture[str]) -> None:
    body = MEDIAFILE + '  b: {kind: image, prompt: p, output: "out/карта.png"}\n'
    (world.project / "mediafile.yaml").write_text(body, encoding="utf-8")
    code, text = run_cli(capsys, "-q", "run", "b")
    assert code == 0, text
    assert (world.project / "out" / "карта.png").is_file()


# ------------------------------------------------------------------ 14. gc against a live run


def _second_project(world: World, capsys: pytest.CaptureFixture[str]) -> Path:
    """Project B on the same cache builds, then loses its lockfile (as if not written yet)."""
    other = world.tmp / "b"
    other.mkdir()
    (other / "mediafile.yaml").write_text(MEDIAFILE.replace("a red square", "a blue circle"))
    code, text = run_cli(capsys, "-C", str(other), "-q", "run", "a")
    assert code == 0, text
    (other / "mediafile.lock").unlink()
    return other


def _blobs(world: World) -> set[str]:
    return {p.name for p in (world.cache / "blobs").glob("*/*")}


def test_14_gc_keeps_blobs_another_project_just_paid_for(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    built(world, capsys)
    _second_project(world, capsys)
    before = _blobs(world)
    code, text = run_cli(capsys, "--json", "gc", "--yes")
    assert code == 0 and json.loads(text)["blobs"] == 0, text
    assert _blobs(world) == before
    code, text = run_cli(
        capsys, "--json", "gc", "--yes", "--min-age", "0"
    )  # the grace is what kept them
    assert code == 0 and json.loads(text)["blobs"] == 1, text


def test_14_gc_collects_nothing_while_another_run_uses_the_cache(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    import subprocess
    import sys

    from conftest import wait_for_state

    built(world, capsys)
    _second_project(world, capsys)
    before = _blobs(world)
    holder = subprocess.Popen(
        [sys.executable, "-c", LIVE_RUN_HOLDER, str(world.cache)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])},
    )
    try:
        assert holder.stdout is not None
        line = holder.stdout.readline()
        wait_for_state(lambda: line == "live\n", "the holder's live-run marker", child=holder)
        code, text = run_cli(capsys, "gc", "--yes", "--min-age", "0")
        assert code == 0, text
        assert "another imaginebuild run is using this cache" in text
        assert _blobs(world) == before
    finally:
        assert holder.stdin is not None
        holder.stdin.close()  # the holder's block ends: its marker goes
        holder.wait()
    code, text = run_cli(capsys, "--json", "gc", "--yes", "--min-age", "0")
    assert code == 0 and json.loads(text)["blobs"] == 1, text


LIVE_RUN_HOLDER = """
import sys
from pathlib import Path
from imaginebuild.store.cache import Store

with Store(Path(sys.argv[1])).live_run():
    print("live", flush=True)
    sys.stdin.read()
"""


# ------------------------------------------------------------------ 16. the machine refuses


@pytest.mark.parametrize("argv", [["run"], ["gc", "--yes"], ["report", "-o", "BLOCKER/site"]])
def test_16_a_file_where_the_cache_folder_should_be_is_an_environment_failure(
    argv: list[str],
    world: World,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    blocker = world.tmp / "a-file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("IMAGINEBUILD_CACHE_DIR", str(blocker / "cache"))
    world.project.joinpath("out").mkdir()
    world.project.joinpath("mediafile.lock").write_text(
        json.dumps({"version": 1, "assets": {"a": LOCKED_A}})
    )
    code, text = run_cli(capsys, *(arg.replace("BLOCKER", str(blocker)) for arg in argv))
    assert code == 74, text
    assert str(blocker) in text
    assert "hint: " in text and "a file stands where a folder is needed" in text


LOCKED_A = {
    "key": "a" * 64,
    "fields": {},
    "outputs": [{"path": "out/a.png", "sha256": "b" * 64, "bytes": 1, "media_type": "image/png"}],
}


def test_16_a_stray_file_in_the_cache_does_not_break_gc(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    built(world, capsys)
    blobs = world.cache / "blobs"
    some = next(p for p in blobs.iterdir() if p.is_dir())
    for stray in (blobs / "README", some / "notes.txt", some / ("f" * 64), world.cache / "x"):
        stray.write_text("stray")
    (blobs / "zz").mkdir()
    (world.cache / "projects" / "stray.json").write_text("{")
    (world.cache / "live").mkdir(exist_ok=True)
    (world.cache / "live" / "run-notanumber").write_text("")
    code, text = run_cli(capsys, "gc", "--yes", "--min-age", "0")
    assert code == 0, text
    assert (some / "notes.txt").exists()  # not a blob: not gc's to delete


@pytest.fixture
def immutable(world: World) -> Iterator[list[Path]]:
    """Folders made immutable (chattr +i): nothing can be created, renamed or removed in
    them, even as root. Undone at the end; skipped where the file system cannot."""
    import subprocess

    made: list[Path] = []
    yield made
    for folder in made:
        subprocess.run(["chattr", "-i", str(folder)], check=False)


def _freeze(folders: list[Path], made: list[Path]) -> None:
    import subprocess

    for folder in folders:
        done = subprocess.run(["chattr", "+i", str(folder)], capture_output=True, check=False)
        if done.returncode != 0:
            pytest.skip(f"chattr +i is not available here: {done.stderr!r}")
        made.append(folder)


def test_16_status_plan_and_show_work_on_a_read_only_project(
    world: World, capsys: pytest.CaptureFixture[str], immutable: list[Path]
) -> None:
    built(world, capsys)
    state = world.project / ".imaginebuild"
    _freeze([world.project, world.project / "out", state, world.cache], immutable)
    for argv in (["status"], ["plan"], ["show", "a"], ["why", "a"], ["--json", "status"]):
        code, text = run_cli(capsys, *argv)
        assert code == 0, (argv, text)
    (world.project / "mediafile.yaml").write_text(MEDIAFILE.replace("red square", "blue one"))
    code, text = run_cli(capsys, "run")
    assert code in (1, 74), text
    assert "Operation not permitted" in text or "permission" in text.lower(), text


# ------------------------------------------------------------------ 10. slow-loris servers


class _Trickle(BaseHTTPRequestHandler):
    """Announces a PNG, then sends one byte at a time, never finishing."""

    stop = threading.Event()

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", str(1 << 20))
        self.end_headers()
        try:
            self.wfile.write(b"\x89PNG\r\n\x1a\n")
            while not self.stop.wait(0.02):
                self.wfile.write(b"\0")
                self.wfile.flush()
        except OSError:
            return  # the client gave up: what the test wants

    def log_message(self, format: str, *args: object) -> None:
        """Quiet."""


def test_10_an_input_server_that_trickles_is_cut_off(
    world: World, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    _Trickle.stop.clear()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Trickle)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02})
    thread.start()
    try:
        monkeypatch.setenv("IMAGINEBUILD_ALLOW_HTTP_LOOPBACK", "1")
        url = f"http://127.0.0.1:{server.server_address[1]}/slow.png"
        body = MEDIAFILE + f"  e: {{kind: edit, prompt: p, inputs: ['{url}']}}\n"
        (world.project / "mediafile.yaml").write_text(body)
        code, text = run_cli(capsys, "run", "e")
        assert code == 1, text
        assert "slower than" in text and "KiB/s" in text
    finally:
        _Trickle.stop.set()
        server.shutdown()
        server.server_close()


def test_10_a_result_download_that_trickles_is_cut_off_and_retried(
    world: World, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from imaginebuild.testing.fake_xai import Fault, Route

    xai = (
        "version: 1\nprovider: xai\nassets:\n  teaser: {kind: video, prompt: a pan, duration: 1}\n"
    )
    (world.project / "mediafile.yaml").write_text(xai)
    with FakeXai() as fake:
        monkeypatch.setenv("XAI_BASE_URL", fake.base_url)
        monkeypatch.setenv("XAI_API_KEY", KEY)
        fake.inject(Route.DOWNLOAD, Fault.trickle(0.02))
        code, text = run_cli(capsys, "-v", "run")
        assert code == 0, text
        downloads = fake.requests(Route.DOWNLOAD)
    assert len(downloads) == 2  # the trickle was cut off, the retry came whole
    assert (world.project / "out" / "teaser.mp4").read_bytes()[4:8] == b"ftyp"


# ------------------------------------------------------------------ the state folder's own files


def test_hostile_state_files_cannot_hang_crash_or_read_outside(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    built(world, capsys)
    state = world.project / ".imaginebuild"
    (state / "failures.json").unlink(missing_ok=True)
    (state / "failures.json").symlink_to("/dev/zero")
    (state / "ledger.jsonl").write_bytes(
        b"[" * 100_000 + b"\n" + b'{"cost_usd": Infinity}\n' + b"\xff\xfe\n"
    )
    journal = state / "journal"
    journal.mkdir(exist_ok=True)
    (journal / "deep.json").write_bytes(b"[" * 100_000)
    os.mkfifo(journal / "fifo.json")
    for name in ("settled-mediafile.yaml.json", "statcache.json"):
        (state / name).unlink(missing_ok=True)
        (state / name).symlink_to(world.precious)
    for argv in (["status"], ["report"], ["cost"], ["plan"], ["run"], ["--json", "status"]):
        code, text = run_cli(capsys, *argv)
        assert code in (0, 1), (argv, text)
    world.assert_untouched(text)


# ------------------------------------------------------------------ 12. bounded expansion


def test_12_vars_cannot_blow_up_validation_memory(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    import tracemalloc

    lines = ["version: 1", "provider: local", "vars:", "  v0: " + "x" * 1000]
    lines += [f"  v{i}: " + f"${{v{i - 1}}}" * 8 for i in range(1, 8)]  # 8^7 KB, capped at 64K
    lines += ["assets:"] + [f"  a{j}: {{kind: image, prompt: 'p${{v7}}'}}" for j in range(3000)]
    (world.project / "mediafile.yaml").write_text("\n".join(lines) + "\n")
    tracemalloc.start()
    try:
        code, text = run_cli(capsys, "validate")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert code == 2, text
    assert "characters in all" in text
    assert peak < 96 << 20, peak  # 3,000 prompts at the 64K cap each would be ~200 MB


@pytest.mark.parametrize("body", ["big", "not-an-image"])
def test_12_a_local_input_the_api_would_refuse_is_never_uploaded_or_paid(
    body: str, world: World, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    art = world.project / "art"
    art.mkdir()
    with (art / "in.png").open("wb") as f:
        if body == "big":
            f.write(canary_png())
            f.truncate(11 * 1024 * 1024)  # sparse: 11 MiB past the API's 10 MiB
        else:
            f.write(b"GIF89a" + b"\0" * 100)
    xai = "version: 1\nprovider: xai\nassets:\n  e: {kind: edit, prompt: p, inputs: [art/in.png]}\n"
    (world.project / "mediafile.yaml").write_text(xai)
    with FakeXai() as fake:
        monkeypatch.setenv("XAI_BASE_URL", fake.base_url)
        monkeypatch.setenv("XAI_API_KEY", KEY)
        code, text = run_cli(capsys, "run")
        assert fake.log == []  # nothing uploaded, nothing billed
    assert code == 1, text
    assert "the API takes inputs of at most" in text or "does not hold image/png" in text


def test_12_a_decompression_bomb_is_refused_before_it_is_decoded(tmp_path: Path) -> None:
    from imaginebuild.errors import InvalidMedia
    from imaginebuild.mediaprobe import MAX_PIXELS, probe

    bomb = tmp_path / "bomb.png"
    side = int(MAX_PIXELS**0.5) + 16
    Image.new("1", (side, side)).save(bomb, "PNG")  # a few KB on disk, 70 MP decoded
    assert bomb.stat().st_size < 1 << 20
    with pytest.raises(InvalidMedia, match="decompression bomb"):
        probe(bomb)


# ------------------------------------------------------------------ every command, every guard

COMMANDS = (
    ["report"],
    ["status"],
    ["show", "a"],
    ["checkout"],
    ["run"],
    ["gc", "--yes", "--min-age", "0"],
    ["takes", "a", "--export", "exported"],
    ["pick", "a", "1"],
    ["accept", "a"],
    ["adopt", "a"],
)


def _plant(how: str, world: World) -> None:
    """One hostile entry that would make a command read or write outside if obeyed."""
    import diskcache

    lock = world.lock()
    out = lock["assets"]["a"]["outputs"][0]
    secret = world.private_png.read_bytes()
    if how == "lock-path":  # the outside file's own hash: only the path guard stops it
        out.update(path="../victim/private.png", sha256=hashlib.sha256(secret).hexdigest())
        out["bytes"] = len(secret)
    elif how == "lock-hash":
        out["sha256"] = "../victim/private.png"
    elif how == "cache-entry":
        entry = {
            "v": 1, "key": lock["assets"]["a"]["key"], "record": {}, "takes": [],
            "outputs": [{"sha256": "../victim/private.png", "bytes": 9, "media_type": "image/png"}],
        }  # fmt: skip
        with diskcache.Cache(str(world.cache / "actions")) as actions:
            actions.set(entry["key"], json.dumps(entry))
        del lock["assets"]["a"]
        (world.project / "out" / "a.png").unlink()
    world.write_lock(lock)


@pytest.mark.parametrize("argv", COMMANDS, ids=lambda a: a[0])
@pytest.mark.parametrize("how", ["lock-path", "lock-hash", "cache-entry"])
def test_no_hostile_entry_makes_any_command_read_or_write_outside(
    how: str, argv: list[str], world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    built(world, capsys)
    _plant(how, world)
    code, text = run_cli(capsys, *argv)
    assert code in (0, 1, 2), text
    world.assert_untouched(text)
    assert world.private_png.read_bytes() == canary_png()
    site = world.project / ".imaginebuild" / "report"
    assert not any(CANARY in p.read_bytes() for p in site.rglob("*") if p.is_file())
