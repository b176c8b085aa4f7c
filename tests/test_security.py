"""Security: what a hostile mediafile, lockfile or server can and cannot make imaginebuild do.

The trust model (the checks live in `imaginebuild/untrusted.py`):

- Trusted: the mediafile (the user's own instruction, fully validated before
  anything runs), the command line, the environment, and files imaginebuild
  wrote itself in this process.
- Untrusted: `mediafile.lock` (it arrives in pull requests), the local cache
  (`IMAGINEBUILD_CACHE_DIR` may be shared) and its project registry, the remote
  cache (entries, blobs, leases), the state folder's files (ledger, journal,
  failure log, settled snapshot, stat cache), and every server (the xAI API,
  result downloads, URL inputs).
- An untrusted file can make a build slower, rebuild or re-download an asset,
  or be ignored with a warning. It can never make imaginebuild read or write a
  file outside the project and its cache (every hash is 64 lowercase hex before
  it names a file; every path goes through one confinement function), serve
  bytes of another media type than the output path announces, end in exit 70,
  hang (leases are capped and interruptible, transfers have deadlines and a
  minimum rate), take unbounded memory (reads are capped), or print control
  sequences to the terminal. tests/test_untrusted.py, tests/test_remote_hostile.py
  and tests/test_fuzz_untrusted.py attack each guard from the side it guards.

This file covers:

- read or upload files outside the project (`../`, absolute paths, escaping
  symlinks, `file://` URLs), or write outside it (outputs, lockfile paths);
- fetch remote inputs other than over https, past a size cap or a timeout,
  or by following a redirect somewhere a URL could not point directly;
- leak the API key into any file, log, lockfile, record, report or message;
- inject markup into the HTML report;
- construct Python objects from YAML.
"""

from __future__ import annotations

import asyncio
import html
import json
import re
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from html.parser import HTMLParser
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from conftest import set_environment, xai_env
from mediafile_corpus import CORPUS

from imaginebuild.cli.app import main
from imaginebuild.engine import fetch
from imaginebuild.errors import InputError
from imaginebuild.testing.fake_xai import FakeXai, Fault, Route, render_image, render_mp4

PACKAGE = Path(__file__).resolve().parents[1] / "imaginebuild"
KEY = "xai-LEAKCHECK-9d8c7b6a5f4e3d2c1b0a"
SECRET = b"\x89PNG\r\n\x1a\n top secret bytes outside the project"


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, fake: FakeXai, tmp_path: Path) -> FakeXai:
    """The in-process CLI sees the fake, a recognisable key and a private cache."""
    cache, home = str(tmp_path / "cache"), str(tmp_path / "home")
    set_environment(monkeypatch, xai_env(fake, key=KEY, IMAGINEBUILD_CACHE_DIR=cache, HOME=home))
    return fake


def _project(tmp_path: Path, body: str) -> Path:
    folder = tmp_path / "project"
    (folder / "art").mkdir(parents=True, exist_ok=True)
    (folder / "art" / "ok.png").write_bytes(render_image((32, 32), (10, 200, 10), "png"))
    (folder / "mediafile.yaml").write_text(f"version: 1\nprovider: xai\n{body}", encoding="utf-8")
    return folder


def _files_under(folder: Path) -> set[str]:
    return {p.relative_to(folder).as_posix() for p in folder.rglob("*")}


# ------------------------------------------------------------------ reading outside the project


def _outside_file(tmp_path: Path) -> Path:
    secret = tmp_path / "outside" / "secret.png"
    secret.parent.mkdir(exist_ok=True)
    secret.write_bytes(SECRET)
    return secret


ESCAPES: dict[str, Callable[[Path, Path], str]] = {
    "dotdot": lambda project, secret: "../outside/secret.png",
    "dotdot-in-the-middle": lambda project, secret: "art/../../outside/secret.png",
    "dot-slash-dotdot": lambda project, secret: "./../outside/secret.png",
    "absolute": lambda project, secret: str(secret),
    "backslashes": lambda project, secret: "art\\..\\..\\outside\\secret.png",
    "file-url": lambda project, secret: secret.as_uri(),
    "file-url-upper-case": lambda project, secret: "FILE://" + secret.as_posix(),
    "file-url-localhost": lambda project, secret: "file://localhost" + secret.as_posix(),
    "symlinked-file": lambda project, secret: _link(project / "art" / "link.png", secret),
    "symlinked-folder": lambda project, secret: (
        _link(project / "linked", secret.parent) + "/secret.png"
    ),
    "symlink-chain": lambda project, secret: _link(
        project / "art" / "a.png", _link_path(project / "art" / "b.png", secret)
    ),
    "home": lambda project, secret: "~/secret.png",
}


def _link(link: Path, target: Path) -> str:
    link.symlink_to(target)
    return link.relative_to(
        link.parents[1] if link.parent.name == "art" else link.parent
    ).as_posix()


def _link_path(link: Path, target: Path) -> Path:
    link.symlink_to(target)
    return link


@pytest.mark.parametrize("how", sorted(ESCAPES))
@pytest.mark.parametrize("kind", ["edit", "animate"])
def test_a_mediafile_cannot_read_or_upload_a_file_outside_the_project(
    how: str,
    kind: str,
    tmp_path: Path,
    env: FakeXai,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    secret = _outside_file(tmp_path)
    (tmp_path / "home").mkdir()
    shutil.copy(secret, tmp_path / "home" / "secret.png")
    project = _project(tmp_path, f"assets:\n  a: {{kind: {kind}, prompt: p, inputs: [X]}}\n")
    ref = ESCAPES[how](project, secret)
    text = (project / "mediafile.yaml").read_text().replace("[X]", json.dumps([ref]))
    (project / "mediafile.yaml").write_text(text)
    monkeypatch.chdir(project)
    before = _files_under(tmp_path)
    for argv in (["run"], ["plan"], ["--json", "run"]):
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert re.search(r"^mediafile\.yaml:\d+:\d+: assets\.a\.inputs\[0\]: ", err, re.M), err
    assert env.log == []  # nothing uploaded, nothing called
    assert _files_under(tmp_path) == before


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("output", "../escaped.png"),
        ("output", "/tmp/imaginebuild-escaped.png"),
        ("output", "linked/escaped.png"),
        ("output_dir", ".."),
        ("output_dir", "linked"),
    ],
)
def test_a_mediafile_cannot_write_outside_the_project(
    field: str,
    value: str,
    tmp_path: Path,
    env: FakeXai,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    line = f"  a: {{kind: image, prompt: p, provider: local, output: {value}}}\n"
    top = f"output_dir: {value}\n" if field == "output_dir" else ""
    body = top + "assets:\n" + (line if field == "output" else "  a: {kind: image, prompt: p}\n")
    project = _project(tmp_path, body)
    (project / "linked").symlink_to(outside)
    monkeypatch.chdir(project)
    assert main(["run"]) == 2
    assert "leaves the project" in capsys.readouterr().err
    assert list(outside.iterdir()) == []
    assert not Path("/tmp/imaginebuild-escaped.png").exists()
    assert env.log == []


@pytest.mark.parametrize(
    "path", ["../escaped.png", "out/../../escaped.png", "ABSOLUTE"], ids=["dotdot", "nested", "abs"]
)
def test_a_hostile_lockfile_cannot_make_run_write_outside_the_project(
    path: str, tmp_path: Path, env: FakeXai, monkeypatch: pytest.MonkeyPatch
) -> None:
    _hostile_lock(tmp_path, monkeypatch, path)
    assert main(["run"]) == 0
    assert not (tmp_path / "escaped.png").exists()
    assert not (tmp_path / "abs-escaped.png").exists()


@pytest.mark.parametrize(
    "path", ["../escaped.png", "out/../../escaped.png", "ABSOLUTE"], ids=["dotdot", "nested", "abs"]
)
def test_a_hostile_lockfile_cannot_make_checkout_write_outside_the_project(
    path: str, tmp_path: Path, env: FakeXai, monkeypatch: pytest.MonkeyPatch
) -> None:
    _hostile_lock(tmp_path, monkeypatch, path)
    main(["checkout"])
    assert not (tmp_path / "escaped.png").exists()
    assert not (tmp_path / "abs-escaped.png").exists()


def _hostile_lock(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, path: str) -> Path:
    """A built local project whose lockfile then names an output path outside it."""
    project = _project(tmp_path, "assets:\n  a: {kind: image, prompt: p, provider: local}\n")
    monkeypatch.chdir(project)
    assert main(["-q", "run"]) == 0
    lock = json.loads((project / "mediafile.lock").read_text())
    hostile = str(tmp_path / "abs-escaped.png") if path == "ABSOLUTE" else path
    lock["assets"]["a"]["outputs"][0]["path"] = hostile
    (project / "mediafile.lock").write_text(json.dumps(lock))
    (project / "out" / "a.png").unlink()
    return project


# ------------------------------------------------------------------ remote inputs


class _Files(BaseHTTPRequestHandler):
    """A loopback file server: /ok.png, /big, /hang, /redirect?to=URL."""

    hits: list[str]

    def do_GET(self) -> None:
        type(self).hits.append(self.path)
        if self.path == "/ok.png":
            return self._send(200, render_image((8, 8), (1, 2, 3), "png"))
        if self.path == "/big":
            return self._send(200, b"\x89PNG\r\n\x1a\n" + b"\0" * 4096)
        if self.path == "/hang":
            time.sleep(3)
            return None
        if self.path.startswith("/redirect?to="):
            self.send_response(302)
            self.send_header("Location", self.path.split("=", 1)[1])
            self.send_header("Content-Length", "0")
            self.end_headers()
            return None
        return self._send(404, b"no")

    def _send(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        """Quiet."""


@pytest.fixture
def files() -> Iterator[tuple[str, list[str]]]:
    hits: list[str] = []
    handler: type[_Files] = type("Handler", (_Files,), {"hits": hits})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02})
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", hits
    finally:
        server.shutdown()
        server.server_close()


ALLOW = {"IMAGINEBUILD_ALLOW_HTTP_LOOPBACK": "1"}


def _fetch(url: str, folder: Path, env: dict[str, str]) -> tuple[Path, str]:
    return asyncio.run(fetch.fetch_to_file(url, folder, env))


@pytest.mark.parametrize(
    "url",
    [
        "http://example.com/a.png",
        "http://10.0.0.1/a.png",
        "http://0.0.0.0/a.png",
        "ftp://example.com/a.png",
        "file:///etc/passwd",
        "https:///no-host.png",
        "gopher://127.0.0.1/",
    ],
)
def test_only_https_is_fetched(url: str, tmp_path: Path) -> None:
    with pytest.raises(InputError, match="only https"):
        _fetch(url, tmp_path, ALLOW)
    assert list(tmp_path.iterdir()) == []


def test_loopback_http_needs_the_explicit_setting(
    files: tuple[str, list[str]], tmp_path: Path
) -> None:
    base, hits = files
    with pytest.raises(InputError, match="only https"):
        _fetch(f"{base}/ok.png", tmp_path, {})
    assert hits == []
    path, media = _fetch(f"{base}/ok.png", tmp_path, ALLOW)
    assert media == "image/png" and path.parent == tmp_path


def test_a_remote_input_past_the_size_cap_is_refused_and_dropped(
    files: tuple[str, list[str]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(fetch, "MAX_INPUT_BYTES", 1024)
    with pytest.raises(InputError, match="larger than"):
        _fetch(f"{files[0]}/big", tmp_path, ALLOW)
    assert list(tmp_path.iterdir()) == []  # no partial file left behind


def test_a_remote_input_that_never_comes_is_bounded_by_the_timeout(
    files: tuple[str, list[str]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(fetch, "TIMEOUT_S", 0.3)
    # The server holds /hang without answering: only the client's timeout ends the fetch.
    with pytest.raises(InputError, match="Timeout"):
        _fetch(f"{files[0]}/hang", tmp_path, ALLOW)
    assert list(tmp_path.iterdir()) == []


def test_the_timeout_and_size_cap_are_finite() -> None:
    assert 0 < fetch.TIMEOUT_S <= 120
    assert 0 < fetch.MAX_INPUT_BYTES <= 256 * 1024 * 1024


def test_a_redirect_cannot_lead_where_a_url_could_not_point(
    files: tuple[str, list[str]], tmp_path: Path
) -> None:
    base, hits = files
    port = base.rsplit(":", 1)[1]
    forbidden = f"http://0.0.0.0:{port}/ok.png"  # refused when asked for directly
    with pytest.raises(InputError, match="only https"):
        _fetch(forbidden, tmp_path, ALLOW)
    with pytest.raises(InputError):
        _fetch(f"{base}/redirect?to={forbidden}", tmp_path, ALLOW)
    assert "/ok.png" not in hits


def test_a_plain_http_input_needs_the_loopback_setting(
    tmp_path: Path,
    env: FakeXai,
    files: tuple[str, list[str]],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """http:// is refused at validation, unless the user allows loopback (tests, rehearsals)."""
    base, hits = files
    body = f'assets:\n  a: {{kind: edit, prompt: p, provider: local, inputs: ["{base}/ok.png"]}}\n'
    project = _project(tmp_path, body)
    monkeypatch.chdir(project)
    assert main(["run"]) == 2
    assert "only https://" in capsys.readouterr().err
    assert hits == []
    monkeypatch.setenv("IMAGINEBUILD_ALLOW_HTTP_LOOPBACK", "1")
    assert main(["run"]) == 0
    assert hits == ["/ok.png"]
    assert main(["run"]) == 0  # pinned by hash in the lockfile: not fetched again
    assert hits == ["/ok.png"]


def test_a_file_outside_the_project_needs_an_explicit_allow_read(
    tmp_path: Path,
    env: FakeXai,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    (shared / "logo.png").write_bytes(render_image((32, 32), (200, 10, 10), "png"))
    secret = _outside_file(tmp_path)
    body = "assets:\n  a: {kind: edit, prompt: p, provider: local, inputs: [X]}\n"
    project = _project(tmp_path, body.replace("X", "../shared/logo.png"))
    monkeypatch.chdir(project)
    assert main(["run"]) == 2
    assert "--allow-read" in capsys.readouterr().err
    assert main(["--allow-read", str(shared), "run"]) == 0
    monkeypatch.setenv("IMAGINEBUILD_ALLOW_READ", str(shared))
    assert main(["-q", "run"]) == 0  # the environment allows it too; nothing changed
    # A folder allowed is not a licence for its neighbours, nor for a link out of it.
    (shared / "link.png").symlink_to(secret)
    text = (project / "mediafile.yaml").read_text().replace("logo.png", "link.png")
    (project / "mediafile.yaml").write_text(text)
    assert main(["run"]) == 2
    assert env.log == []


# ------------------------------------------------------------------ the API key


ALL_KINDS = """\
providers:
  xai: {poll_interval: 0.01, max_retries: 1}
assets:
  still: {kind: image, prompt: "a still <script>", count: 2}
  sketch: {kind: edit, prompt: sketch it, inputs: ["still[0]", art/ok.png]}
  clip: {kind: video, prompt: a clip, duration: 1}
  moving: {kind: animate, prompt: animate it, inputs: [sketch], duration: 1}
  guided: {kind: reference_video, prompt: guided, inputs: ["still[1]"], duration: 1}
  restyled: {kind: video_edit, prompt: restyle it, inputs: [art/in.mp4]}
  longer: {kind: extend, prompt: go on, inputs: [art/in.mp4], duration: 2}
  refused: {kind: image, prompt: refused}
  failing: {kind: video, prompt: failing, duration: 2}
"""


def test_the_api_key_lands_nowhere_after_a_faulty_session(
    tmp_path: Path,
    env: FakeXai,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    project = _project(tmp_path, ALL_KINDS)
    (project / "art" / "in.mp4").write_bytes(render_mp4((64, 36), 3, (0, 90, 0)))
    monkeypatch.chdir(project)
    echo = f"Incorrect API key provided: {KEY}"  # a server that echoes the key back
    env.inject(Route.IMAGES, Fault.rate_limited("0"), Fault.http(400, echo))
    env.inject(Route.EDITS, Fault.http(503, f"upstream said {KEY}"))
    env.inject(Route.VIDEOS, Fault.reset(), Fault.job_failed("internal_error", f"boom {KEY}"))
    env.inject(Route.POLL, Fault.http(500, KEY), Fault.malformed_json())
    env.inject(Route.DOWNLOAD, Fault.truncated())
    printed: list[str] = []
    for argv in (
        ["-v", "run", "-k"],
        ["--json", "run", "-k"],
        ["-v", "run", "-k"],
        ["--json", "status"],
        ["--json", "show", "still"],
        ["--json", "show", "longer"],
        ["cost"],
        ["--json", "cost", "--by", "model"],
        ["plan"],
        ["report"],
        ["why", "failing"],
    ):
        main(argv)
        captured = capsys.readouterr()
        printed += [captured.out, captured.err]
    assert len(env.log) > 10 and env.pending_faults() == 0  # the faults were all met
    assert all(r.has_auth for r in env.log if r.route is not Route.DOWNLOAD)
    leaks = [
        str(path)
        for root in (project, tmp_path / "cache")
        for path in root.rglob("*")
        if path.is_file() and KEY.encode() in path.read_bytes()
    ]
    assert leaks == []
    assert not [text for text in printed if KEY in text]
    assert (project / ".imaginebuild" / "report" / "index.html").is_file()
    assert (project / ".imaginebuild" / "ledger.jsonl").is_file()


def test_a_download_never_carries_the_key(
    tmp_path: Path, env: FakeXai, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = _project(tmp_path, "assets:\n  clip: {kind: video, prompt: a clip, duration: 1}\n")
    monkeypatch.chdir(project)
    assert main(["-q", "run"]) == 0
    downloads = env.requests(Route.DOWNLOAD)
    assert downloads and not any(r.has_auth for r in downloads)


# ------------------------------------------------------------------ the HTML report


HOSTILE = '<script>alert("x")</script><img src=x onerror=alert(1)>'


class _Markup(HTMLParser):
    """Collects every tag and attribute of a page."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.attrs: list[tuple[str, str]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.attrs += [(name, value or "") for name, value in attrs]


def test_every_user_string_in_the_report_is_inert(
    tmp_path: Path,
    env: FakeXai,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    hostile_file = 'art/"><svg onload=alert(2)>.png'
    body = f"""\
vars:
  evil: '{HOSTILE}'
assets:
  a: {{kind: image, prompt: '{HOSTILE} and ${{evil}}', provider: local,
      model: '<b onmouseover=alert(3)>m</b>'}}
  b: {{kind: edit, prompt: 'javascript:alert(4)', provider: local,
      inputs: [a, '{hostile_file}'], output: 'out/<i>b</i>.png'}}
  c: {{kind: edit, prompt: '</textarea><script>alert(5)</script>', inputs: [b]}}
"""
    project = _project(tmp_path, body)
    (project / hostile_file).write_bytes(render_image((16, 16), (9, 9, 9), "png"))
    monkeypatch.chdir(project)
    env.inject(Route.EDITS, Fault.http(400, f"rejected: {HOSTILE}"))  # hostile server words too
    assert main(["run", "-k"]) == 1
    assert main(["report", "-o", "report"]) == 0
    capsys.readouterr()
    page = (project / "report" / "index.html").read_text(encoding="utf-8")
    markup = _Markup()
    markup.feed(page)
    assert "script" not in markup.tags
    assert "svg" not in markup.tags or page.count("<svg") == 1  # only the page's own DAG drawing
    assert not [name for name, _ in markup.attrs if name.startswith("on")]
    assert not [v for _, v in markup.attrs if v.strip().lower().startswith("javascript:")]
    assert HOSTILE not in page
    assert html.escape(HOSTILE, quote=True) in page  # shown, as text
    csp = re.search(r'http-equiv="Content-Security-Policy" content="([^"]*)"', page)
    assert csp and "script-src 'none'" in csp.group(1).replace('"', "'")


# ------------------------------------------------------------------ YAML and validation


@pytest.mark.parametrize("case", ["count-string", "kind-null", "provider-settings-unknown-key"])
def test_a_committed_validation_stamp_cannot_switch_validation_off(
    case: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from imaginebuild.mediafile.load import _schema_digest

    project = tmp_path / "project"
    shutil.copytree(CORPUS / case, project)
    text = (project / "mediafile.yaml").read_text(encoding="utf-8")
    (project / ".imaginebuild").mkdir()
    # What a committer can compute: everything but this checkout's file identity.
    (project / ".imaginebuild" / "validated").write_text(_schema_digest(text, ""))
    monkeypatch.chdir(project)
    assert main(["validate"]) == 2
    assert "Traceback" not in capsys.readouterr().err


UNSAFE_YAML = re.compile(
    r"yaml\.(load|load_all|unsafe_load|unsafe_load_all|full_load|full_load_all)\(|"
    r"yaml\.(Loader|UnsafeLoader|FullLoader|CLoader|CUnsafeLoader|CFullLoader)\b|"
    r"yaml\.(add_constructor|add_multi_constructor)\("
)


def test_no_module_uses_an_unsafe_yaml_loader() -> None:
    found = [
        f"{path.relative_to(PACKAGE)}:{number}: {line.strip()}"
        for path in sorted(PACKAGE.rglob("*.py"))
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if UNSAFE_YAML.search(line)
    ]
    assert found == []
    users = [p for p in PACKAGE.rglob("*.py") if "import yaml" in p.read_text(encoding="utf-8")]
    assert [p.name for p in users] == ["yamlload.py"]  # one module reads YAML


@pytest.mark.parametrize(
    "tag",
    [
        "!!python/object/apply:os.system ['touch {marker}']",
        "!!python/object/new:subprocess.check_call [['touch', '{marker}']]",
        "!!python/name:os.system",
        "!!python/module:os",
        "!!binary aGVsbG8=",
        "!!set {{a, b}}",
        "!custom {{x: 1}}",
    ],
)
def test_yaml_tags_never_construct_objects(
    tag: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    marker = tmp_path / "pwned"
    value = tag.format(marker=marker)
    text = f"version: 1\nassets:\n  a: {{kind: image, prompt: p}}\nvars:\n  x: {value}\n"
    (tmp_path / "mediafile.yaml").write_text(text)
    monkeypatch.chdir(tmp_path)
    assert main(["validate"]) == 2
    assert "unsupported YAML tag" in capsys.readouterr().err
    assert not marker.exists()
