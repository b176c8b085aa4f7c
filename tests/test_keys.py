"""Action keys change when anything that determines an output changes, and never otherwise."""

from __future__ import annotations

import dataclasses
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from imaginebuild.engine.keys import KEY_FORMAT_VERSION, ActionFields, InputDigest, action_key
from imaginebuild.mediafile.load import load_mediafile
from imaginebuild.model import Asset

hexes = st.text(alphabet="0123456789abcdef", min_size=64, max_size=64)
digests = st.builds(InputDigest, ref=st.text(max_size=12), sha256=hexes)
param_values = st.one_of(st.integers(-5, 20), st.sampled_from(["1k", "2k", "480p", "16:9"]))
fields_strategy = st.builds(
    ActionFields,
    kind=st.sampled_from(["image", "edit", "video", "animate", "extend"]),
    provider=st.sampled_from(["xai", "local"]),
    model=st.text(max_size=20),
    params=st.dictionaries(st.sampled_from(["resolution", "count", "duration"]), param_values),
    prompt=st.text(max_size=80),
    variant=st.integers(0, 1000),
    inputs=st.lists(digests, max_size=4).map(tuple),
)


def _other(value: object) -> object:
    """A value of the same type that differs from `value`."""
    if isinstance(value, str):
        return value + "x"
    if isinstance(value, int):
        return value + 1
    raise AssertionError(value)


@given(fields_strategy, st.data())
def test_key_changes_when_any_field_changes(fields: ActionFields, data: st.DataObject) -> None:
    key = action_key(fields)
    for name in ("kind", "provider", "model", "prompt", "variant"):
        changes: dict[str, Any] = {name: _other(getattr(fields, name))}
        assert action_key(dataclasses.replace(fields, **changes)) != key, name
    for name, value in fields.params.items():
        params = {**fields.params, name: _other(value)}
        assert action_key(dataclasses.replace(fields, params=params)) != key, name
    extra = {**fields.params, "aspect_ratio": "1:1"}
    assert action_key(dataclasses.replace(fields, params=extra)) != key
    if fields.inputs:
        i = data.draw(st.integers(0, len(fields.inputs) - 1))
        other = data.draw(hexes.filter(lambda h: h != fields.inputs[i].sha256))
        inputs = list(fields.inputs)
        inputs[i] = dataclasses.replace(inputs[i], sha256=other)
        assert action_key(dataclasses.replace(fields, inputs=tuple(inputs))) != key
        fewer = fields.inputs[:-1]
        assert action_key(dataclasses.replace(fields, inputs=fewer)) != key
    reordered = tuple(reversed(fields.inputs))
    if [d.sha256 for d in reordered] != [d.sha256 for d in fields.inputs]:
        assert action_key(dataclasses.replace(fields, inputs=reordered)) != key


@given(fields_strategy, st.randoms(use_true_random=False), st.text(max_size=12))
def test_key_ignores_param_order_and_input_labels(
    fields: ActionFields, rnd: Any, label: str
) -> None:
    items = list(fields.params.items())
    rnd.shuffle(items)
    relabelled = tuple(
        dataclasses.replace(d, ref=label, asset=label or None) for d in fields.inputs
    )
    same = dataclasses.replace(fields, params=dict(items), inputs=relabelled)
    assert action_key(same) == action_key(fields)


def test_key_carries_a_format_version() -> None:
    fields = ActionFields("image", "local", "m", {}, "p", 0, ())
    assert fields.encoded()["v"] == KEY_FORMAT_VERSION
    assert len(action_key(fields)) == 64


# -- through the mediafile: formatting never changes a key --------------------------------

_ASSET_KEYS = ("kind", "prompt", "resolution", "aspect_ratio", "count", "variant")


def _fields(asset: Asset) -> ActionFields:
    """The key fields of an asset without inputs (what the engine hashes for it)."""
    return ActionFields(
        asset.kind.value, asset.provider, asset.model, asset.params(), asset.prompt,
        asset.variant, (),
    )  # fmt: skip


def _keys(text: str) -> dict[str, str]:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "mediafile.yaml"
        path.write_text(text, encoding="utf-8")
        mediafile = load_mediafile(path)
    return {name: action_key(_fields(a)) for name, a in mediafile.assets.items()}


def _yaml(
    assets: Mapping[str, Mapping[str, object]],
    order: list[str],
    pad: str,
    comments: bool,
    flow: bool,
) -> str:
    lines = ["# a comment" if comments else "", "version: 1", "provider: local", "assets:"]
    for name, body in assets.items():
        keys = [k for k in order if k in body]
        if flow:
            inner = ", ".join(f"{k}:{pad} {_scalar(body[k])}" for k in keys)
            lines.append(f"  {name}: {{{inner}}}")
            continue
        lines.append(f"  {name}:{pad}")
        for k in keys:
            lines.append(f"    {k}:{pad} {_scalar(body[k])}" + ("  # why" if comments else ""))
        if comments:
            lines.append("")
    return "\n".join(lines) + "\n"


def _scalar(value: object) -> str:
    return f'"{value}"' if isinstance(value, str) else str(value)


asset_bodies = st.fixed_dictionaries(
    {
        "kind": st.just("image"),
        "prompt": st.sampled_from(["A fox", "A lighthouse at dawn", "Two boats"]),
        "resolution": st.sampled_from(["1k", "2k"]),
        "aspect_ratio": st.sampled_from(["1:1", "16:9", "auto"]),
        "count": st.integers(1, 10),
        "variant": st.integers(0, 3),
    }
)


@settings(max_examples=40, deadline=None)
@given(
    asset_bodies,
    st.permutations(list(_ASSET_KEYS)),
    st.sampled_from(["", " ", "   "]),
    st.booleans(),
    st.booleans(),
)
def test_mediafile_formatting_never_changes_a_key(
    body: dict[str, object], order: list[str], pad: str, comments: bool, flow: bool
) -> None:
    plain = _keys(_yaml({"hero": body}, list(_ASSET_KEYS), "", False, False))
    styled = _keys(_yaml({"hero": body}, order, pad, comments, flow))
    assert styled == plain
    more: dict[str, Mapping[str, object]] = {
        "hero": body,
        "unrelated": {"kind": "image", "prompt": "Something else"},
    }
    assert _keys(_yaml(more, order, pad, comments, flow))["hero"] == plain["hero"]


@settings(max_examples=30, deadline=None)
@given(asset_bodies, st.sampled_from(_ASSET_KEYS[1:]))
def test_mediafile_meaningful_edits_change_the_key(body: dict[str, object], name: str) -> None:
    before = _keys(_yaml({"hero": body}, list(_ASSET_KEYS), "", False, False))["hero"]
    changed = dict(body)
    value = body[name]
    if name == "resolution":
        changed[name] = "2k" if value == "1k" else "1k"
    elif name == "aspect_ratio":
        changed[name] = "4:3"
    elif name == "count":
        changed[name] = 1 if value != 1 else 2
    elif isinstance(value, int):
        changed[name] = value + 1
    else:
        changed[name] = f"{value} at night"
    after = _keys(_yaml({"hero": changed}, list(_ASSET_KEYS), "", False, False))["hero"]
    assert after != before


def test_a_var_edit_changes_only_the_keys_that_use_it() -> None:
    text = (
        "version: 1\nprovider: local\nvars: {style: ink}\nassets:\n"
        "  a: {kind: image, prompt: 'A fox in ${style}'}\n"
        "  b: {kind: image, prompt: 'A fox in ink'}\n"
    )
    before = _keys(text)
    assert before["a"] == before["b"]  # same request after interpolation → same key
    after = _keys(text.replace("style: ink", "style: chalk"))
    assert after["a"] != before["a"]
    assert after["b"] == before["b"]


# -- the key format, pinned -------------------------------------------------------------------
# Every cache and lockfile in the world holds keys of this format: a change to the encoding
# (a renamed field, another separator, ASCII escapes, a dropped field) changes every key, so
# it must come with a new KEY_FORMAT_VERSION. These vectors are written out by hand.

PINNED_FIELDS = ActionFields(
    kind="edit",
    provider="xai",
    model="grok-imagine-image",
    params={"resolution": "1k", "aspect_ratio": "1:1"},
    prompt="Ink <IMAGE_0> — «é»",
    variant=2,
    inputs=(InputDigest("base", "a" * 64, "base"), InputDigest("art/logo.png", "b" * 64)),
)
PINNED_ENCODING = (
    '{"inputs":["' + "a" * 64 + '","' + "b" * 64 + '"],"kind":"edit",'
    '"model":"grok-imagine-image","params":{"aspect_ratio":"1:1","resolution":"1k"},'
    '"prompt":"Ink <IMAGE_0> — «é»","provider":"xai","v":1,"variant":2}'
).encode("utf-8")


def test_the_key_is_the_sha256_of_the_pinned_canonical_encoding() -> None:
    import hashlib

    from imaginebuild.engine.keys import canonical_json

    assert canonical_json(PINNED_FIELDS.encoded()) == PINNED_ENCODING
    assert action_key(PINNED_FIELDS) == hashlib.sha256(PINNED_ENCODING).hexdigest()
    assert action_key(PINNED_FIELDS) == (
        "cffb9fb7e92bc49592278d1b470085d21fd94f486cbb753864538644972553e2"
    )


def test_canonical_json_refuses_what_json_cannot_say() -> None:
    import pytest

    from imaginebuild.engine.keys import canonical_json

    with pytest.raises(ValueError):
        canonical_json({"x": float("nan")})
    assert canonical_json({"b": 1, "a": [1.5, None]}) == b'{"a":[1.5,null],"b":1}'


def test_the_lockfile_form_keeps_every_reference() -> None:
    assert PINNED_FIELDS.to_json() == {
        "kind": "edit",
        "provider": "xai",
        "model": "grok-imagine-image",
        "params": {"resolution": "1k", "aspect_ratio": "1:1"},
        "prompt": "Ink <IMAGE_0> — «é»",
        "variant": 2,
        "inputs": [
            {"ref": "base", "sha256": "a" * 64, "asset": "base"},
            {"ref": "art/logo.png", "sha256": "b" * 64},
        ],
    }
