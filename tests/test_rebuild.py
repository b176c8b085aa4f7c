"""The pure rebuild decision: what an asset needs and the reasons, field by field."""

from __future__ import annotations

import dataclasses

import pytest

from imaginebuild.engine.keys import ActionFields, InputDigest, action_key
from imaginebuild.engine.rebuild import Action, decide, prompt_diff

BASE = ActionFields(
    kind="edit",
    provider="local",
    model="grok-imagine-image",
    params={"resolution": "1k", "aspect_ratio": "1:1", "count": 1},
    prompt="Ink the fox with bold outlines",
    variant=0,
    inputs=(InputDigest("base", "a" * 64, "base"), InputDigest("art/logo.png", "b" * 64)),
)


def _decide(
    new: ActionFields,
    *,
    old: ActionFields | None = BASE,
    outputs_ok: bool = True,
    cached: bool = False,
    forced: bool = False,
) -> tuple[Action, list[tuple[str, str | None]]]:
    decision = decide(
        fields=new,
        key=action_key(new),
        locked_key=action_key(old) if old else None,
        locked_fields=old.to_json() if old else None,
        outputs_ok=outputs_ok,
        cached=cached,
        forced=forced,
    )
    return decision.action, [(r.code, r.field) for r in decision.reasons]


def test_unchanged_with_its_outputs_is_up_to_date() -> None:
    assert _decide(BASE) == (Action.UP_TO_DATE, [])


def test_never_built_calls_or_restores() -> None:
    assert _decide(BASE, old=None) == (Action.CALL, [("never_built", None)])
    assert _decide(BASE, old=None, cached=True) == (Action.RESTORE, [("never_built", None)])


def test_missing_outputs_restore_from_the_cache_else_call() -> None:
    missing = [("output_missing", None)]
    assert _decide(BASE, outputs_ok=False, cached=True) == (Action.RESTORE, missing)
    assert _decide(BASE, outputs_ok=False) == (Action.CALL, missing)


def test_force_always_calls() -> None:
    assert _decide(BASE, forced=True, cached=True) == (Action.CALL, [("forced", None)])


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"prompt": "Ink the fox with thin outlines"}, [("prompt", "prompt")]),
        ({"variant": 1}, [("param", "variant")]),
        ({"model": "grok-imagine-image-pro"}, [("param", "model")]),
        ({"provider": "xai"}, [("param", "provider")]),
        (
            {"params": {"resolution": "2k", "aspect_ratio": "1:1", "count": 1}},
            [("param", "resolution")],
        ),
        (
            {"params": {"resolution": "1k", "aspect_ratio": "4:3", "count": 2}},
            [("param", "aspect_ratio"), ("param", "count")],
        ),
        (
            {"inputs": (InputDigest("base", "c" * 64, "base"), BASE.inputs[1])},
            [("input", "inputs")],
        ),
        ({"inputs": (BASE.inputs[1], BASE.inputs[0])}, [("inputs", "inputs")]),
        ({"inputs": BASE.inputs[:1]}, [("inputs", "inputs")]),
    ],
)
def test_a_changed_field_is_named(change: dict[str, object], expected: list[object]) -> None:
    new = dataclasses.replace(BASE, **change)  # type: ignore[arg-type]
    assert _decide(new) == (Action.CALL, expected)
    assert _decide(new, cached=True)[0] is Action.RESTORE  # a reverted edit costs nothing


def test_an_upstream_input_reason_names_the_asset() -> None:
    new = dataclasses.replace(BASE, inputs=(InputDigest("base", "c" * 64, "base"), BASE.inputs[1]))
    decision = decide(
        fields=new, key=action_key(new), locked_key=action_key(BASE),
        locked_fields=BASE.to_json(), outputs_ok=True, cached=False,
    )  # fmt: skip
    (reason,) = decision.reasons
    assert reason.asset == "base"
    assert "'base' changed" in reason.text
    assert reason.to_json() == {
        "code": "input", "text": reason.text, "field": "inputs",
        "old": "a" * 64, "new": "c" * 64, "asset": "base",
    }  # fmt: skip


def test_pending_upstream_waits_and_still_names_own_changes() -> None:
    known = dataclasses.replace(BASE, inputs=BASE.inputs[1:])  # `base` is not built yet
    fresh = decide(
        fields=known, key=None, locked_key=None, locked_fields=None,
        outputs_ok=False, cached=False, pending=("base",),
    )  # fmt: skip
    assert fresh.action is Action.CALL
    assert [(r.code, r.asset) for r in fresh.reasons] == [
        ("never_built", None), ("upstream", "base")
    ]  # fmt: skip
    bumped = dataclasses.replace(known, variant=1)
    stale = decide(
        fields=bumped, key=None, locked_key=action_key(BASE), locked_fields=BASE.to_json(),
        outputs_ok=True, cached=True, pending=("base",),
    )  # fmt: skip
    assert stale.action is Action.CALL
    assert [(r.code, r.field, r.asset) for r in stale.reasons] == [
        ("param", "variant", None), ("upstream", None, "base")
    ]  # fmt: skip


def test_same_fields_under_a_new_key_format_say_so() -> None:
    decision = decide(
        fields=BASE, key="new", locked_key="old", locked_fields=BASE.to_json(),
        outputs_ok=True, cached=False,
    )  # fmt: skip
    assert [r.code for r in decision.reasons] == ["key_format"]


def test_summary_joins_reasons() -> None:
    new = dataclasses.replace(BASE, variant=3, prompt="Ink the fox")
    decision = decide(
        fields=new, key=action_key(new), locked_key=action_key(BASE),
        locked_fields=BASE.to_json(), outputs_ok=True, cached=False,
    )  # fmt: skip
    assert decision.summary == "variant 0 → 3; prompt changed: Ink the fox [-with bold outlines-]"


def test_prompt_diff_marks_words() -> None:
    assert prompt_diff("a red fox", "a grey fox") == "a [-red-] {+grey+} fox"
    assert prompt_diff("", "new words") == "{+new words+}"
    long = prompt_diff("x " * 200, "y " * 200, limit=40)
    assert len(long) == 40 and long.endswith("…")
