"""The schema layer agrees with the model, reads well, and the semantic helpers classify inputs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from imaginebuild.mediafile.inputs import Problem, project_path, resolve_input
from imaginebuild.mediafile.schema import load_schema
from imaginebuild.mediafile.schemacheck import schema_diagnostics
from imaginebuild.mediafile.yamlload import compose
from imaginebuild.model import (
    IMAGE_ASPECT_RATIOS,
    IMAGE_RESOLUTIONS,
    KIND_SPECS,
    VIDEO_ASPECT_RATIOS,
    VIDEO_RESOLUTIONS,
    InputRef,
    Kind,
    Media,
    RefKind,
)
from imaginebuild.spelled import PROVIDERS

SCHEMA = load_schema()
LOCAL_HINT = "for a local file, copy it into the project and give its relative path"
COPY_HINT = (
    "copy the file into the project folder and give its path relative to the mediafile, "
    "or allow its folder with --allow-read DIR"
)
ASSET = SCHEMA["$defs"]["asset"]


def _rules(kind: Kind) -> dict[str, Any]:
    (branch,) = [b for b in ASSET["allOf"] if b["if"]["properties"]["kind"]["const"] == kind.value]
    rules: dict[str, Any] = branch["then"]["properties"]
    return rules


def test_schema_is_valid_draft_2020_12() -> None:
    jsonschema.Draft202012Validator.check_schema(SCHEMA)
    assert SCHEMA["$schema"] == "https://json-schema.org/draft/2020-12/schema"


def test_schema_kinds_and_providers_match_the_model() -> None:
    assert ASSET["properties"]["kind"]["enum"] == [k.value for k in Kind]
    assert ASSET["properties"]["provider"]["enum"] == list(PROVIDERS)
    assert SCHEMA["properties"]["version"]["const"] == 1
    assert sorted(b["if"]["properties"]["kind"]["const"] for b in ASSET["allOf"]) == sorted(
        k.value for k in Kind
    )


@pytest.mark.parametrize("kind", list(Kind))
def test_schema_rules_per_kind_match_kind_specs(kind: Kind) -> None:
    spec = KIND_SPECS[kind]
    rules = _rules(kind)
    image = spec.output is Media.IMAGE
    for param in ("count", "duration", "resolution", "aspect_ratio"):
        if param not in spec.params:
            assert rules[param] == {"not": {}}, param
    if "resolution" in spec.params:
        assert rules["resolution"]["enum"] == list(
            IMAGE_RESOLUTIONS if image else VIDEO_RESOLUTIONS
        )
    if "aspect_ratio" in spec.params:
        wanted = IMAGE_ASPECT_RATIOS if image else VIDEO_ASPECT_RATIOS
        assert rules["aspect_ratio"]["enum"] == list(wanted)
    if "duration" in spec.params:
        assert spec.duration_range is not None
        assert (rules["duration"]["minimum"], rules["duration"]["maximum"]) == spec.duration_range
    if "count" in spec.params:
        count = ASSET["properties"]["count"]
        assert (count["minimum"], count["maximum"]) == (1, 10)


def test_defaults_sections_match_the_model() -> None:
    sections = SCHEMA["properties"]["defaults"]["properties"]
    image, video = sections["image"]["properties"], sections["video"]["properties"]
    assert image["resolution"]["enum"] == list(IMAGE_RESOLUTIONS)
    assert image["aspect_ratio"]["enum"] == list(IMAGE_ASPECT_RATIOS)
    assert video["resolution"]["enum"] == list(VIDEO_RESOLUTIONS)
    assert video["aspect_ratio"]["enum"] == list(VIDEO_ASPECT_RATIOS)
    video_ranges = [s.duration_range for k, s in KIND_SPECS.items() if k is not Kind.EXTEND]
    assert (video["duration"]["minimum"], video["duration"]["maximum"]) in video_ranges
    assert "count" in image and "count" not in video and "duration" not in image


def _properties(node: object, where: str = "") -> list[tuple[str, dict[str, Any]]]:
    found: list[tuple[str, dict[str, Any]]] = []
    if isinstance(node, dict):
        for name, sub in node.get("properties", {}).items():
            if isinstance(sub, dict) and sub != {"not": {}} and "enum" not in sub.keys() - {
                "title", "description", "examples", "type", "enum",
            } and not (set(sub) <= {"enum", "minimum", "maximum"}):  # fmt: skip
                found.append((f"{where}.{name}", sub))
        for key, sub in node.items():
            if key not in ("if",):
                found += _properties(sub, f"{where}.{key}") if isinstance(sub, dict) else []
    return found


def test_every_property_has_title_description_and_examples() -> None:
    props = _properties(SCHEMA)
    assert len(props) > 30
    for where, prop in props:
        assert {"title", "description", "examples"} <= prop.keys(), where


def _messages(text: str) -> list[str]:
    parsed = compose(text, "m.yaml")
    return sorted(f"{d.path}: {d.message}" for d in schema_diagnostics(parsed.data, parsed))


def test_schema_messages_are_friendly() -> None:
    assert _messages(
        "version: 1\nassets:\n  a: {kind: animate, prompt: p, count: 2, duration: '3',"
        " aspect_ratio: '9:20', inputs: [x.png], promt: q}\n"
    ) == [
        "assets.a.aspect_ratio: '9:20' is not a video aspect ratio; use one of "
        + ", ".join(VIDEO_ASPECT_RATIOS),
        "assets.a.count: 'count' does not apply to kind 'animate'",
        "assets.a.duration: expected an integer, got string '3'",
        "assets.a.promt: unknown key 'promt' (did you mean 'prompt'?)",
    ]


def test_a_clean_file_has_no_schema_problems() -> None:
    assert _messages("version: 1\nassets:\n  a: {kind: image, prompt: p}\n") == []


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("london", InputRef("london", RefKind.ASSET, asset="london")),
        ("london[3]", InputRef("london[3]", RefKind.ASSET, asset="london", index=3)),
        ("https://h.test/a.png", InputRef("https://h.test/a.png", RefKind.URL, url="https://h.test/a.png")),
        ("./art//x.png", InputRef("./art//x.png", RefKind.FILE, path="art/x.png")),
        ("lodnon", Problem("unknown asset 'lodnon' (did you mean 'london'?)",
                           "a local file needs its extension, e.g. art/logo.png")),
        ("lodnon[0]", Problem("unknown asset 'lodnon' (did you mean 'london'?)")),
        ("http://h.test/a.png", Problem("only https:// URLs are allowed as inputs, got http://",
                                        LOCAL_HINT)),
        ("https:///a.png", Problem("'https:///a.png' has no host")),
        ("../a.png", Problem("input '../a.png' is a path outside the project",
                             COPY_HINT)),
        ("C:\\art\\a.png", Problem("input 'C:\\art\\a.png' is an absolute path",
                                   COPY_HINT)),
    ],
)  # fmt: skip
def test_resolve_input(raw: str, expected: InputRef | Problem, tmp_path: Path) -> None:
    assert resolve_input(raw, ["london"], tmp_path) == expected


def test_project_path_refuses_symlinks_that_leave(tmp_path: Path) -> None:
    root = tmp_path / "project"
    (root / "art").mkdir(parents=True)
    (tmp_path / "secret.png").write_bytes(b"x")
    (root / "art" / "leak.png").symlink_to(tmp_path / "secret.png")
    (root / "art" / "real.png").write_bytes(b"x")
    (root / "art" / "alias.png").symlink_to(root / "art" / "real.png")
    assert project_path("art/leak.png", root) is None
    assert project_path("art/alias.png", root) == "art/alias.png"
    assert project_path("art/../art/real.png", root) == "art/real.png"
    assert project_path(".", root) is None
    assert project_path("/etc/passwd", root) is None


def test_importing_the_front_end_does_not_import_jsonschema() -> None:
    code = "import sys, imaginebuild.mediafile.load; print('jsonschema' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
