"""YAML with locations: plain data, marks of every node, and the problems YAML lets pass."""

from __future__ import annotations

import math

import pytest

from imaginebuild.errors import MediafileError
from imaginebuild.model import Mark
from imaginebuild.mediafile.yamlload import MAX_NODES, compose, format_path, parse_yaml


def test_plain_data_and_marks_by_json_path() -> None:
    text = "version: 1\nassets:\n  sketch:\n    inputs: [london, 'art/a.png']\n"
    data, marks = parse_yaml(text, "m.yaml")
    assert data == {"version": 1, "assets": {"sketch": {"inputs": ["london", "art/a.png"]}}}
    assert marks[()] == Mark("m.yaml", 1, 1)
    assert marks[("version",)] == Mark("m.yaml", 1, 10)
    assert marks[("assets", "sketch", "inputs")] == Mark("m.yaml", 4, 13)
    assert marks[("assets", "sketch", "inputs", 1)] == Mark("m.yaml", 4, 22)


def test_key_marks_and_nearest_ancestor_lookup() -> None:
    parsed = compose("assets:\n  a:\n    kind: image\n", "m.yaml")
    assert parsed.mark(("assets", "a"), key=True) == Mark("m.yaml", 2, 3)
    assert parsed.mark(("assets", "a")) == Mark("m.yaml", 3, 5)
    assert parsed.mark(("assets", "a", "missing", 3)) == Mark("m.yaml", 3, 5)


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("x: 12", 12), ("x: 0x1f", 31), ("x: 1_000", 1000), ("x: -0b101", -5),
        ("x: 1.5", 1.5), ("x: yes", True), ("x: Off", False), ("x: ~", None),
        ("x: 2024-05-01", "2024-05-01"), ("x: '3'", "3"), ("x: 1:30", 90),
    ],
)  # fmt: skip
def test_scalars_resolve_like_the_safe_loader(text: str, value: object) -> None:
    data, _ = parse_yaml(text, "m.yaml")
    assert data == {"x": value}


def test_special_floats() -> None:
    data, _ = parse_yaml("a: .inf\nb: -.Inf\nc: .nan\n", "m.yaml")
    assert isinstance(data, dict)
    assert data["a"] == math.inf and data["b"] == -math.inf and math.isnan(data["c"])


def _problems(text: str) -> list[str]:
    return [
        f"{d.line}:{d.column}: {d.path}: {d.message}" for d in compose(text, "m.yaml").diagnostics
    ]


def test_duplicate_keys_are_errors_and_the_first_wins() -> None:
    parsed = compose("a:\n  b: 1\n  b: 2\n", "m.yaml")
    assert parsed.data == {"a": {"b": 1}}
    assert _problems("a:\n  b: 1\n  b: 2\n") == [
        "3:3: a.b: duplicate key 'b' (first defined on line 2)"
    ]


def test_keys_must_be_strings() -> None:
    assert _problems("on: 1\n2: x\n") == [
        "1:1: : keys must be strings, got 'on'",
        "2:1: : keys must be strings, got '2'",
    ]


def test_python_tags_are_refused_never_constructed() -> None:
    assert _problems("a: !!python/object/apply:os.system [ls]\n") == [
        "1:4: a: unsupported YAML tag 'tag:yaml.org,2002:python/object/apply:os.system'"
    ]


def test_billion_laughs_stops_at_the_node_budget() -> None:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 9)]
    parsed = compose("\n".join(lines) + "\n", "m.yaml")
    assert parsed.data is None
    assert [d.message for d in parsed.diagnostics] == [
        f"the document expands to {MAX_NODES} nodes; refusing to read further"
    ]


def test_small_aliases_are_fine() -> None:
    data, _ = parse_yaml("base: &b {kind: image}\nother: *b\n", "m.yaml")
    assert data == {"base": {"kind": "image"}, "other": {"kind": "image"}}


def test_recursive_alias_is_an_error() -> None:
    assert _problems("a: &x [1, *x]\n") == [
        "1:4: a[1]: an alias refers to a node that contains it (a cycle)"
    ]


def test_deep_nesting_is_refused() -> None:
    problems = _problems("a: " + "[" * 80 + "]" * 80 + "\n")
    assert len(problems) == 1 and "nests deeper than 64 levels" in problems[0]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a:\n\tb: 1\n", "2:1: YAML syntax error: a tab character where YAML expects spaces"),
        ("a: [1\n", "2:1: YAML syntax error: did not find expected ',' or ']'"
                    " (while parsing a flow sequence)"),
        ("", "1:1: the mediafile is empty"),
        ("# only a comment\n", "1:1: the mediafile is empty"),
    ],
)  # fmt: skip
def test_syntax_problems_are_located(text: str, expected: str) -> None:
    problems = compose(text, "m.yaml").diagnostics
    assert [f"{d.line}:{d.column}: {d.message}" for d in problems] == [expected]


def test_parse_yaml_raises_every_problem_at_once() -> None:
    with pytest.raises(MediafileError) as info:
        parse_yaml("a: 1\na: 2\nb: !!set {x}\n", "m.yaml")
    assert [(d.line, d.path) for d in info.value.diagnostics] == [(2, "a"), (3, "b")]


def test_format_path() -> None:
    assert format_path(("assets", "sketch", "inputs", 0)) == "assets.sketch.inputs[0]"
    assert format_path((2, "a")) == "[2].a"
    assert format_path(()) == ""
