"""The mediafile front end: the fixture corpus of mistakes, the model of valid files, robustness."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mediafile_corpus import WITH_EXPECTED, diagnostic_lines, expected_lines, lay_out

from imaginebuild.errors import MediafileError, UsageError
from imaginebuild.mediafile.load import load_mediafile
from imaginebuild.model import Kind, ProviderSettings, RefKind


def test_the_corpus_covers_every_kind_of_mistake() -> None:
    assert len(WITH_EXPECTED) >= 35


@pytest.mark.parametrize("case", WITH_EXPECTED)
def test_fixture_diagnostics(case: str, tmp_path: Path) -> None:
    """The exact located diagnostics of each case of the corpus (all problems at once)."""
    project = lay_out(case, tmp_path / "project")
    assert diagnostic_lines(project / "mediafile.yaml") == expected_lines(case)


DESIGN_EXAMPLE = """\
version: 1
provider: xai
output_dir: out
vars:
  style: stenciled street-art style
defaults:
  image: {model: grok-imagine-image, resolution: 1k, aspect_ratio: "16:9"}
  video: {model: grok-imagine-video, resolution: 720p, duration: 6}
budget:
  max_usd: 5.00
providers:
  xai: {max_concurrency: 8, poll_interval: 2.0, timeout: 900}
assets:
  london:
    kind: image
    prompt: A collage of London landmarks in a ${style}
    count: 4
  sketch:
    kind: edit
    prompt: Render this as a pencil sketch with detailed shading
    inputs: ["london[0]", art/logo.png]
  clip:
    kind: animate
    prompt: Slowly pan across the skyline as the light fades
    inputs: [sketch]
    duration: 8
  clip_long:
    kind: extend
    prompt: The camera keeps rising above the clouds
    inputs: [clip]
    duration: 5
"""


def _project(tmp_path: Path, text: str, files: tuple[str, ...] = ()) -> Path:
    for name in files:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"media")
    mediafile = tmp_path / "mediafile.yaml"
    mediafile.write_text(text, encoding="utf-8")
    return mediafile


def test_design_example_builds_the_expected_model(tmp_path: Path) -> None:
    mf = load_mediafile(_project(tmp_path, DESIGN_EXAMPLE, ("art/logo.png",)))
    assert list(mf.assets) == ["london", "sketch", "clip", "clip_long"]
    london, sketch, clip, clip_long = mf.assets.values()
    assert london.prompt == "A collage of London landmarks in a stenciled street-art style"
    assert (london.kind, london.count, london.resolution, london.aspect_ratio) == (
        Kind.IMAGE, 4, "1k", "16:9",
    )  # fmt: skip
    assert london.outputs == tuple(f"out/london-{i}.png" for i in range(4))
    assert [(r.kind, r.asset, r.index, r.path) for r in sketch.inputs] == [
        (RefKind.ASSET, "london", 0, None),
        (RefKind.FILE, None, None, "art/logo.png"),
    ]
    assert sketch.aspect_ratio == "16:9"  # defaults.image reaches edit
    assert sketch.outputs == ("out/sketch.png",)
    # animate: its own duration wins; the video defaults' resolution and model reach it
    assert (clip.duration, clip.resolution, clip.aspect_ratio, clip.model) == (
        8, "720p", None, "grok-imagine-video",
    )  # fmt: skip
    assert clip.outputs == ("out/clip.mp4",)
    assert (clip_long.duration, clip_long.resolution, clip_long.aspect_ratio) == (5, None, None)
    assert clip_long.upstream() == ("clip",)
    assert mf.budget_usd == Decimal("5.0")
    assert mf.providers["xai"] == ProviderSettings(
        max_concurrency=8, poll_interval=2.0, timeout=900
    )
    assert mf.vars == {"style": "stenciled street-art style"}
    assert mf.root == tmp_path and mf.path == tmp_path / "mediafile.yaml"
    assert london.mark is not None and (london.mark.line, london.mark.column) == (14, 3)


def test_built_in_defaults_per_kind(tmp_path: Path) -> None:
    text = """\
version: 1
assets:
  still: {kind: image, prompt: p}
  touched: {kind: edit, prompt: p, inputs: [still]}
  film: {kind: video, prompt: p}
  moving: {kind: animate, prompt: p, inputs: [still]}
  guided: {kind: reference_video, prompt: p, inputs: [still, touched]}
  restyled: {kind: video_edit, prompt: p, inputs: [film]}
  longer: {kind: extend, prompt: p, inputs: [film]}
"""
    a = load_mediafile(_project(tmp_path, text)).assets
    got = {n: (x.model, x.resolution, x.aspect_ratio, x.count, x.duration) for n, x in a.items()}
    assert got == {
        "still": ("grok-imagine-image", "1k", "1:1", 1, None),
        "touched": ("grok-imagine-image", "1k", "auto", 1, None),
        "film": ("grok-imagine-video", "480p", "16:9", 1, 8),
        "moving": ("grok-imagine-video", "480p", None, 1, 8),
        "guided": ("grok-imagine-video", "480p", "16:9", 1, 8),
        "restyled": ("grok-imagine-video", None, None, 1, None),
        "longer": ("grok-imagine-video", None, None, 1, 6),
    }
    assert all(x.provider == "xai" and x.variant == 0 for x in a.values())


def test_defaults_reach_only_kinds_they_mean_something_for(tmp_path: Path) -> None:
    text = """\
version: 1
provider: local
defaults:
  image: {resolution: 2k, count: 2, provider: xai, model: img-2}
  video: {resolution: 720p, aspect_ratio: "9:16", duration: 12, model: vid-2}
assets:
  still: {kind: image, prompt: p, count: 3}
  touched: {kind: edit, prompt: p, inputs: ["still[0]"], provider: local}
  moving: {kind: animate, prompt: p, inputs: ["still[1]"]}
  restyled: {kind: video_edit, prompt: p, inputs: [moving]}
  longer: {kind: extend, prompt: p, inputs: [moving]}
"""
    a = load_mediafile(_project(tmp_path, text)).assets
    assert (a["still"].count, a["still"].resolution, a["still"].provider) == (3, "2k", "xai")
    assert (a["touched"].count, a["touched"].provider, a["touched"].model) == (2, "local", "img-2")
    assert a["touched"].outputs == ("out/touched-0.png", "out/touched-1.png")
    # animate keeps its input image's ratio: a default aspect_ratio does not reach it
    assert (a["moving"].aspect_ratio, a["moving"].duration, a["moving"].provider) == (
        None, 12, "local",
    )  # fmt: skip
    assert (a["restyled"].model, a["restyled"].duration, a["restyled"].aspect_ratio) == (
        "vid-2", None, None,
    )  # fmt: skip
    # extend's duration is the seconds it adds; a default video length does not reach it
    assert (a["longer"].duration, a["longer"].resolution) == (6, None)


def test_vars_interpolate_everywhere_but_vars_and_may_nest(tmp_path: Path) -> None:
    text = """\
version: 1
output_dir: ${folder}/media
vars:
  folder: build
  mood: calm
  style: a ${mood} watercolour
  seconds: 4
assets:
  a:
    kind: image
    prompt: ${style}, literal $${style}, ${seconds}s
    output: ${folder}/a.png
"""
    mf = load_mediafile(_project(tmp_path, text))
    assert mf.assets["a"].prompt == "a calm watercolour, literal ${style}, 4s"
    assert mf.assets["a"].outputs == ("build/a.png",)
    assert mf.output_dir == "build/media"
    assert mf.vars["style"] == "a calm watercolour"


def test_inputs_urls_and_normalized_paths(tmp_path: Path) -> None:
    text = """\
version: 1
output_dir: ./renders/
assets:
  a:
    kind: reference_video
    prompt: p
    inputs: ["https://example.com/x/cat.webp?v=2", ./art/../art/dog.jpg, "https://cdn.example.com/blob"]
    variant: 3
"""
    mf = load_mediafile(_project(tmp_path, text, ("art/dog.jpg",)))
    a = mf.assets["a"]
    assert [(r.kind, r.url or r.path) for r in a.inputs] == [
        (RefKind.URL, "https://example.com/x/cat.webp?v=2"),
        (RefKind.FILE, "art/dog.jpg"),
        (RefKind.URL, "https://cdn.example.com/blob"),
    ]
    assert a.variant == 3 and a.outputs == ("renders/a.mp4",)


def test_a_url_with_video_extension_is_the_wrong_media_for_edit(tmp_path: Path) -> None:
    text = "version: 1\nassets:\n  a: {kind: edit, prompt: p, inputs: ['https://x.test/c.mp4']}\n"
    with pytest.raises(MediafileError) as info:
        load_mediafile(_project(tmp_path, text))
    assert [d.message for d in info.value.diagnostics] == [
        "input 'https://x.test/c.mp4' is a video; kind 'edit' takes image inputs"
    ]


def test_diagnostics_name_the_file_as_given_and_carry_hints(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _project(tmp_path, "version: 1\nassets:\n  a: {kind: image, prompt: p, inputs: [x.png]}\n")
    monkeypatch.chdir(tmp_path.parent)
    with pytest.raises(MediafileError) as info:
        load_mediafile(Path(tmp_path.name) / "mediafile.yaml")
    (first, second) = info.value.diagnostics
    assert first.file == second.file == f"{tmp_path.name}/mediafile.yaml"
    assert first.format() == (
        f"{tmp_path.name}/mediafile.yaml:3:39: assets.a.inputs: kind 'image' takes no inputs, got 1"
    )
    assert second.message == "input file 'x.png' does not exist"
    assert info.value.exit_code == 2
    assert "hint: input paths are relative to the mediafile's folder" in str(info.value)


def test_a_missing_mediafile_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError):
        load_mediafile(tmp_path / "nope.yaml")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"version: 1\n#" + b"x" * (2 * 1024 * 1024), "the mediafile is larger than 2 MiB"),
        (None, "the mediafile is a folder, not a mediafile"),
    ],
)
def test_unreadable_files_are_one_diagnostic_at_the_top(
    tmp_path: Path, content: bytes | None, message: str
) -> None:
    target = tmp_path / "mediafile.yaml"
    if content is None:
        target.mkdir()
    else:
        target.write_bytes(content)
    with pytest.raises(MediafileError) as info:
        load_mediafile(target)
    assert [(d.line, d.column, d.message) for d in info.value.diagnostics] == [(1, 1, message)]


# ----------------------------------------------------------------- property

_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-3, 20), st.floats(allow_nan=True),
    st.sampled_from(["image", "edit", "video", "animate", "extend", "video_edit",
                     "reference_video", "a", "a[0]", "b[2]", "x.png", "../y.mp4", "/abs.png",
                     "https://h.test/i.png", "http://h.test", "1k", "720p", "16:9", "${v}",
                     "$${", "${", "out/a.png", "", "xai", "local"]),
    st.text(max_size=8),
)  # fmt: skip
_values = st.recursive(
    _scalars,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(
            st.sampled_from(["kind", "prompt", "inputs", "count", "x"]), inner, max_size=4
        )
    ),
    max_leaves=12,
)
_asset = st.dictionaries(
    st.sampled_from(["kind", "prompt", "inputs", "count", "duration", "resolution",
                     "aspect_ratio", "model", "variant", "provider", "output", "promt"]),
    _values, max_size=7,
)  # fmt: skip
_document = st.fixed_dictionaries(
    {
        "assets": st.dictionaries(
            st.sampled_from(["a", "b", "c", "bad.name"]), _asset | _values, max_size=4
        )
    },
    optional={
        "version": st.sampled_from([1, 2, "1"]),
        "vars": st.dictionaries(st.sampled_from(["v", "w"]), _values, max_size=2),
        "defaults": st.dictionaries(
            st.sampled_from(["image", "video", "z"]), _asset | _values, max_size=2
        ),
        "output_dir": _scalars,
        "provider": _scalars,
        "providers": st.dictionaries(st.sampled_from(["xai", "local"]), _values, max_size=2),
        "budget": _values,
    },
)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(document=_document | _values)
def test_any_structure_loads_or_fails_with_located_diagnostics(
    tmp_path: Path, document: object
) -> None:
    mediafile = tmp_path / "mediafile.yaml"
    mediafile.write_text(yaml.safe_dump(document), encoding="utf-8")
    try:
        result = load_mediafile(mediafile)
    except MediafileError as exc:
        assert exc.diagnostics
        assert all(d.line >= 1 and d.column >= 1 and d.message for d in exc.diagnostics)
    else:
        assert all(asset.outputs for asset in result.assets.values())


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(raw=st.binary(max_size=200) | st.text(alphabet="ab:-[]{}&*!|>'\"#\t\n ${}0", max_size=60))
def test_any_bytes_load_or_fail_with_located_diagnostics(tmp_path: Path, raw: bytes | str) -> None:
    mediafile = tmp_path / "mediafile.yaml"
    mediafile.write_bytes(raw if isinstance(raw, bytes) else raw.encode())
    try:
        load_mediafile(mediafile)
    except MediafileError as exc:
        assert exc.diagnostics and all(d.line >= 1 for d in exc.diagnostics)


def test_output_dir_may_be_the_project_folder_itself(tmp_path: Path) -> None:
    text = "version: 1\noutput_dir: .\nassets:\n  a: {kind: image, prompt: p, count: 2}\n"
    mf = load_mediafile(_project(tmp_path, text))
    assert mf.assets["a"].outputs == ("a-0.png", "a-1.png")
