"""A property-based fuzzer of mediafiles through the CLI (`validate`, then `plan`).

Two generators: mediafile-like structures (the real keys, kinds, parameters and
references, mixed with wrong types and near-misses) dumped as YAML, and valid
mediafile texts mutated character- and line-wise. For every example the
contract is the same: `validate` exits 0, or exits 2 with at least one located
`mediafile.yaml:LINE:COL:` line; never a traceback or the bug exit (70), never a
file written. A mediafile that validates must also `plan` cleanly, calling nothing.

CI size: a few hundred examples each; IMAGINEBUILD_SLOW=1 runs thousands.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from conftest import run_cli
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from imaginebuild.testing.fake_xai import render_image, render_mp4

SLOW = os.environ.get("IMAGINEBUILD_SLOW") == "1"
EXAMPLES = 4000 if SLOW else 250
LOCATED = re.compile(r"^mediafile\.yaml:\d+:\d+: ", re.MULTILINE)
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=not SLOW,  # CI explores the same examples every run; the slow run roams
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

NAMES = ["a", "b", "c", "still", "clip", "Bad.Name", "1x", "a-b_c"]
KINDS = ["image", "edit", "video", "animate", "reference_video", "video_edit", "extend"]
REFS = [
    "a", "b", "c", "still", "clip", "a[0]", "a[1]", "b[3]", "still[-1]", "art/logo.png",
    "art/clip.mp4", "art/missing.png", "art/logo.gif", "../escape.png", "/abs.png",
    "https://example.com/x.png", "https://example.com/x.mp4", "http://example.com/x.png",
    "file:///etc/passwd", "", "${v}", "art/../art/logo.png",
]  # fmt: skip
ASPECTS = ["1:1", "16:9", "9:16", "4:3", "19.5:9", "auto", "5:3", "", "16x9"]
RESOLUTIONS = ["1k", "2k", "480p", "720p", "1080p", "4k", "1K"]
MODELS = ["grok-imagine-image", "grok-imagine-video", "grok-imagine-video-1.5", "", "x"]

_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-5, 20),
    st.integers(),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=12),
    st.sampled_from(KINDS + REFS + ASPECTS + RESOLUTIONS + MODELS + ["${v}", "$${v}", "${"]),
)
_junk = st.recursive(
    _scalars,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=8,
)


def _maybe(strategy: st.SearchStrategy[object]) -> st.SearchStrategy[object]:
    """Mostly the well-typed value, sometimes anything at all."""
    return st.one_of(strategy, strategy, strategy, strategy, strategy, _junk)


IMAGE_KINDS = {"image": 0, "edit": 1}  # kind → images it needs at least
VIDEO_SOURCES = {"video_edit", "extend"}


@st.composite
def _plausible(draw: st.DrawFn) -> dict[str, object]:
    """A mediafile that is right by construction, but for a near-miss now and then."""
    assets: dict[str, dict[str, object]] = {}
    images: list[str] = ["art/logo.png"]
    videos: list[str] = ["art/clip.mp4"]
    for index in range(draw(st.integers(1, 6))):
        name = f"a{index}"
        kind = draw(st.sampled_from(KINDS))
        asset: dict[str, object] = {"kind": kind, "prompt": draw(st.text(min_size=1, max_size=30))}
        if kind == "edit":
            asset["inputs"] = draw(st.lists(st.sampled_from(images), min_size=1, max_size=3))
        elif kind in ("animate",):
            asset["inputs"] = [draw(st.sampled_from(images))]
        elif kind == "reference_video":
            asset["inputs"] = draw(st.lists(st.sampled_from(images), min_size=1, max_size=7))
        elif kind in VIDEO_SOURCES:
            asset["inputs"] = [draw(st.sampled_from(videos))]
        if kind in ("image", "edit"):
            count = draw(st.integers(1, 3))
            asset["count"] = count
            asset["resolution"] = draw(st.sampled_from(["1k", "2k"]))
            asset["aspect_ratio"] = draw(st.sampled_from(["1:1", "16:9", "9:16", "auto"]))
            images += [name] if count == 1 else [f"{name}[{i}]" for i in range(count)]
        else:
            if kind == "extend":
                asset["duration"] = draw(st.integers(2, 10))
            elif kind != "video_edit":
                asset["duration"] = draw(st.integers(1, 8))
            if kind not in VIDEO_SOURCES:
                asset["resolution"] = draw(st.sampled_from(["480p", "720p"]))
            if kind != "video_edit" or draw(st.booleans()):
                videos.append(name) if kind in ("video", "animate") else None
        if draw(st.integers(0, 9)) == 0:  # a near-miss
            key = draw(st.sampled_from(["count", "duration", "resolution", "variant", "promt"]))
            asset[key] = draw(_scalars)
        asset["variant"] = draw(st.integers(0, 2))
        assets[name] = asset
    document: dict[str, object] = {
        "version": 1,
        "provider": draw(st.sampled_from(["xai", "local"])),
        "assets": assets,
    }
    if draw(st.booleans()):
        document["budget"] = {"max_usd": draw(st.integers(0, 50))}
    return document


_asset = st.fixed_dictionaries(
    {"kind": _maybe(st.sampled_from(KINDS))},
    optional={
        "prompt": _maybe(st.text(max_size=40) | st.just("a ${v} prompt") | st.just("${nope}")),
        "inputs": _maybe(st.lists(_maybe(st.sampled_from(REFS)), max_size=4)),
        "count": _maybe(st.integers(0, 11)),
        "duration": _maybe(st.integers(0, 16)),
        "resolution": _maybe(st.sampled_from(RESOLUTIONS)),
        "aspect_ratio": _maybe(st.sampled_from(ASPECTS)),
        "model": _maybe(st.sampled_from(MODELS)),
        "variant": _maybe(st.integers(-1, 3)),
        "provider": _maybe(st.sampled_from(["xai", "local", "openai"])),
        "output": _maybe(st.sampled_from(["out/x.png", "x.mp4", "../x.png", "out/a.png", "o.gif"])),
        "promt": st.text(max_size=5),
    },
)
_defaults = st.fixed_dictionaries(
    {},
    optional={
        "image": _maybe(
            st.fixed_dictionaries(
                {},
                optional={
                    "model": st.sampled_from(MODELS),
                    "resolution": st.sampled_from(RESOLUTIONS),
                    "aspect_ratio": st.sampled_from(ASPECTS),
                    "count": st.integers(0, 11),
                },
            )
        ),
        "video": _maybe(
            st.fixed_dictionaries(
                {},
                optional={
                    "model": st.sampled_from(MODELS),
                    "resolution": st.sampled_from(RESOLUTIONS),
                    "duration": st.integers(0, 16),
                },
            )
        ),
        "audio": _junk,
    },
)
_document = st.fixed_dictionaries(
    {"assets": _maybe(st.dictionaries(st.sampled_from(NAMES), _maybe(_asset), max_size=5))},
    optional={
        "version": _maybe(st.just(1)),
        "provider": _maybe(st.sampled_from(["xai", "local", "dall-e"])),
        "output_dir": _maybe(st.sampled_from(["out", ".", "renders/v1", "..", "/tmp", ""])),
        "vars": _maybe(
            st.dictionaries(
                st.sampled_from(["v", "w", "style"]),
                _maybe(st.text(max_size=10) | st.just("${w}") | st.just("${v}")),
                max_size=3,
            )
        ),
        "defaults": _maybe(_defaults),
        "budget": _maybe(
            st.fixed_dictionaries(
                {},
                optional={
                    "max_usd": st.integers(-1, 100)
                    | st.floats(-1, 100, allow_nan=False, allow_infinity=False)
                },
            )
        ),
        "providers": _maybe(
            st.dictionaries(
                st.sampled_from(["xai", "local", "other"]),
                _maybe(
                    st.fixed_dictionaries(
                        {},
                        optional={
                            "max_concurrency": st.integers(-1, 64),
                            "poll_interval": st.floats(-1, 10, allow_nan=False),
                            "timeout": st.integers(-1, 3600),
                            "max_retries": st.integers(-1, 10),
                        },
                    )
                ),
                max_size=2,
            )
        ),
        "remote": _maybe(st.sampled_from(["file:///tmp/remote", "s3://bucket/p", ""])),
    },
)

SEEDS = [
    """\
version: 1
provider: local
vars:
  style: stenciled street-art style
defaults:
  image: {resolution: 1k, aspect_ratio: "16:9"}
  video: {resolution: 480p, duration: 2}
budget:
  max_usd: 5.00
providers:
  xai: {max_concurrency: 8, poll_interval: 2.0, timeout: 900}
assets:
  london:
    kind: image
    prompt: A collage of London landmarks in a ${style}
    count: 2
  sketch:
    kind: edit
    prompt: Render this as a pencil sketch
    inputs: ["london[0]", art/logo.png]
  clip:
    kind: animate
    prompt: Slowly pan across the skyline
    inputs: [sketch]
    duration: 3
  longer:
    kind: extend
    prompt: The camera keeps rising
    inputs: [clip]
    duration: 2
""",
    """\
version: 1
assets:
  base: {kind: image, prompt: "A red fox", output: renders/fox.png}
  moved: {kind: reference_video, prompt: guided, inputs: [base, art/logo.png], duration: 4}
  cut: {kind: video_edit, prompt: recolour, inputs: [art/clip.mp4]}
""",
]
TOKENS = [
    ":", "- ", "[", "]", "{", "}", ",", "&a ", "*a", "!!str ", "!tag ", "? ", "|", ">", "'", '"',
    "#", "\t", "\n", "  ", "${", "}", "${style}", "<<: ", "---\n", "...\n", "\\", "%YAML 1.2\n",
    "\x00", "\ufeff", "é", "null", "~", "1e3", "0x1F", ".nan", "-1", "assets", "kind", "inputs",
]  # fmt: skip


@st.composite
def _mutated(draw: st.DrawFn) -> str:
    """A seed mediafile with a few random edits: spans cut, tokens inserted, lines moved."""
    text = draw(st.sampled_from(SEEDS))
    for _ in range(draw(st.integers(1, 4))):
        lines = text.split("\n")
        edit = draw(
            st.sampled_from(["cut", "insert", "dup-line", "swap-lines", "indent", "dedent"])
        )
        if edit == "cut" and text:
            start = draw(st.integers(0, len(text) - 1))
            text = text[:start] + text[start + draw(st.integers(1, 12)) :]
        elif edit == "insert":
            at = draw(st.integers(0, len(text)))
            token = draw(st.sampled_from(TOKENS) | st.text(max_size=3))
            text = text[:at] + token + text[at:]
        elif edit == "dup-line":
            i = draw(st.integers(0, len(lines) - 1))
            lines.insert(i, lines[i])
            text = "\n".join(lines)
        elif edit == "swap-lines":
            i, j = draw(st.integers(0, len(lines) - 1)), draw(st.integers(0, len(lines) - 1))
            lines[i], lines[j] = lines[j], lines[i]
            text = "\n".join(lines)
        else:
            i = draw(st.integers(0, len(lines) - 1))
            lines[i] = "  " + lines[i] if edit == "indent" else lines[i][2:]
            text = "\n".join(lines)
    return text


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder holding the input files the generators reference."""
    folder = tmp_path_factory.mktemp("fuzz")
    (folder / "art").mkdir()
    (folder / "art" / "logo.png").write_bytes(render_image((16, 16), (1, 2, 3), "png"))
    (folder / "art" / "clip.mp4").write_bytes(render_mp4((32, 18), 3, (0, 80, 0)))
    return folder


@pytest.fixture
def no_api(monkeypatch: pytest.MonkeyPatch) -> None:
    """No key, and any stray call fails fast on a closed loopback port."""
    for name in list(os.environ):
        if name.startswith(("XAI_", "IMAGINEBUILD_")):
            monkeypatch.delenv(name)
    monkeypatch.setenv("XAI_BASE_URL", "http://127.0.0.1:9/v1")


@contextlib.contextmanager
def _project(workspace: Path, data: bytes) -> Iterator[Path]:
    folder = Path(tempfile.mkdtemp(dir=workspace))
    try:
        shutil.copytree(workspace / "art", folder / "art")
        (folder / "mediafile.yaml").write_bytes(data)
        yield folder
    finally:
        shutil.rmtree(folder)


def _cli(folder: Path, *argv: str) -> tuple[int, str, str]:
    done = run_cli("-f", str(folder / "mediafile.yaml"), *argv, cwd=Path.cwd(), env=os.environ)
    return done.code, done.stdout, done.stderr


def check_contract(workspace: Path, data: bytes, *, record: bool = True) -> int:
    """Run validate (and plan when valid) on `data`; assert the contract; return the exit code."""
    with _project(workspace, data) as folder:
        before = sorted(p.relative_to(folder) for p in folder.rglob("*"))
        code, _, err = _cli(folder, "validate")
        if record:
            event(f"validate exit {code}")
        assert code in (0, 2), (code, err[-3000:])
        assert "Traceback" not in err, err[-3000:]
        assert sorted(p.relative_to(folder) for p in folder.rglob("*")) == before
        if code == 2:
            assert LOCATED.search(err.replace(str(folder) + "/", "")), err[-3000:]
        else:
            plan_code, _, plan_err = _cli(folder, "--json", "plan")
            assert plan_code == 0, plan_err[-3000:]
            # plan makes and records nothing
            assert not (folder / "mediafile.lock").exists()
            assert not (folder / "out").exists()
            assert not (folder / ".imaginebuild" / "ledger.jsonl").exists()
        return code


@FUZZ
@given(document=_document | _plausible())
def test_structured_mediafiles_validate_or_fail_located(
    document: dict[str, object], workspace: Path, no_api: None
) -> None:
    check_contract(workspace, yaml.safe_dump(document, allow_unicode=True).encode())


@FUZZ
@given(text=_mutated())
def test_mutated_mediafiles_validate_or_fail_located(
    text: str, workspace: Path, no_api: None
) -> None:
    check_contract(workspace, text.encode("utf-8", "surrogatepass"))


@FUZZ
@given(raw=st.binary(max_size=300))
def test_arbitrary_bytes_fail_located(raw: bytes, workspace: Path, no_api: None) -> None:
    check_contract(workspace, raw)


def test_the_seeds_are_valid(workspace: Path, no_api: None) -> None:
    for seed in SEEDS:
        assert check_contract(workspace, seed.encode(), record=False) == 0


@pytest.mark.parametrize("value", [".nan", ".inf", ".NaN"])
def test_a_non_finite_budget_is_refused_by_validate(
    value: str, workspace: Path, no_api: None
) -> None:
    text = f"version: 1\nbudget: {{max_usd: {value}}}\nassets:\n  a: {{kind: image, prompt: p}}\n"
    assert check_contract(workspace, text.encode(), record=False) == 2


def test_plan_writes_nothing(workspace: Path, no_api: None) -> None:
    with _project(workspace, SEEDS[0].encode()) as folder:
        before = sorted(p.relative_to(folder) for p in folder.rglob("*"))
        assert _cli(folder, "plan")[0] == 0
        assert sorted(p.relative_to(folder) for p in folder.rglob("*")) == before
