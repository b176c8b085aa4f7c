"""The reasons a rebuild decision gives, field for field: `why`, `status` and `--json`
show exactly these, so each is pinned whole (code, text, field, old, new, asset)."""

from __future__ import annotations

from typing import Any

import pytest

from imaginebuild.engine.keys import ActionFields, InputDigest
from imaginebuild.engine.rebuild import Action, Reason, changes_since, decide

BASE = "a" * 64
NEW_BASE = "c" * 64
LOGO = "b" * 64


def fields(**changes: Any) -> ActionFields:
    values: dict[str, Any] = {
        "kind": "edit",
        "provider": "xai",
        "model": "grok-imagine-image",
        "params": {"resolution": "1k", "aspect_ratio": "1:1"},
        "prompt": "Ink the fox with bold outlines",
        "variant": 0,
        "inputs": (InputDigest("base", BASE, "base"), InputDigest("art/logo.png", LOGO)),
    }
    values.update(changes)
    return ActionFields(**values)


LOCKED = fields().to_json()


def test_a_changed_parameter_names_its_old_and_new_value() -> None:
    now = fields(params={"resolution": "2k", "aspect_ratio": "1:1", "count": 2})
    assert changes_since(LOCKED, now) == (
        Reason("param", "count None → 2", field="count", old=None, new=2),
        Reason("param", "resolution '1k' → '2k'", field="resolution", old="1k", new="2k"),
    )


def test_a_removed_parameter_is_a_change_too() -> None:
    now = fields(params={"resolution": "1k"})
    assert changes_since(LOCKED, now) == (
        Reason("param", "aspect_ratio '1:1' → None", field="aspect_ratio", old="1:1", new=None),
    )


def test_a_changed_model_and_variant_are_named() -> None:
    now = fields(model="grok-2-image", variant=3)
    assert changes_since(LOCKED, now) == (
        Reason(
            "param", "model 'grok-imagine-image' → 'grok-2-image'", field="model",
            old="grok-imagine-image", new="grok-2-image",
        ),
        Reason("param", "variant 0 → 3", field="variant", old=0, new=3),
    )  # fmt: skip


def test_a_changed_prompt_carries_a_word_diff_and_both_texts() -> None:
    now = fields(prompt="Ink the fox with thin outlines")
    assert changes_since(LOCKED, now) == (
        Reason(
            "prompt",
            "prompt changed: Ink the fox with [-bold-] {+thin+} outlines",
            field="prompt",
            old="Ink the fox with bold outlines",
            new="Ink the fox with thin outlines",
        ),
    )


def test_a_prompt_missing_from_the_lockfile_diffs_against_nothing() -> None:
    locked = {k: v for k, v in LOCKED.items() if k != "prompt"}
    (reason,) = changes_since(locked, fields(prompt="a b"))
    assert reason == Reason("prompt", "prompt changed: {+a b+}", field="prompt", new="a b")


def test_other_inputs_are_one_reason_with_both_lists() -> None:
    now = fields(inputs=(InputDigest("art/logo.png", LOGO),))
    assert changes_since(LOCKED, now) == (
        Reason(
            "inputs",
            "inputs ['base', 'art/logo.png'] → ['art/logo.png']",
            field="inputs",
            old=["base", "art/logo.png"],
            new=["art/logo.png"],
        ),
    )


@pytest.mark.parametrize(
    ("digest", "text"),
    [
        (InputDigest("base", NEW_BASE, "base"), "input 'base' changed (rebuilt upstream)"),
        (InputDigest("base", NEW_BASE, "sketch"), "input 'base' changed (asset 'sketch')"),
        (InputDigest("base", NEW_BASE), "input 'base' changed"),
    ],
)
def test_a_changed_input_says_whose_it_is(digest: InputDigest, text: str) -> None:
    now = fields(inputs=(digest, InputDigest("art/logo.png", LOGO)))
    assert changes_since(LOCKED, now) == (
        Reason("input", text, field="inputs", old=BASE, new=NEW_BASE, asset=digest.asset),
    )


def test_inputs_are_not_compared_when_asked_not_to() -> None:
    now = fields(inputs=(InputDigest("art/logo.png", LOGO),))
    assert changes_since(LOCKED, now, compare_inputs=False) == ()


def test_waiting_on_upstream_names_each_pending_input() -> None:
    decision = decide(
        fields=fields(), key=None, locked_key="k", locked_fields=LOCKED, outputs_ok=True,
        cached=False, pending=("base", "sketch"),
    )  # fmt: skip
    assert decision.action is Action.CALL
    assert decision.reasons == (
        Reason("upstream", "input 'base' will be built first", asset="base"),
        Reason("upstream", "input 'sketch' will be built first", asset="sketch"),
    )


@pytest.mark.parametrize(("cached", "action"), [(True, Action.RESTORE), (False, Action.CALL)])
def test_missing_outputs_restore_when_cached(cached: bool, action: Action) -> None:
    decision = decide(
        fields=fields(), key="k", locked_key="k", locked_fields=LOCKED, outputs_ok=False,
        cached=cached,
    )  # fmt: skip
    assert decision.action is action
    assert decision.reasons == (Reason("output_missing", "outputs missing or modified"),)
    assert decision.summary == "outputs missing or modified"


def test_the_same_fields_under_a_new_key_are_a_key_format_change() -> None:
    decision = decide(
        fields=fields(), key="new", locked_key="old", locked_fields=LOCKED, outputs_ok=True,
        cached=False,
    )  # fmt: skip
    assert decision.reasons == (Reason("key_format", "key format changed"),)
    assert decision.reasons[0].to_json() == {"code": "key_format", "text": "key format changed"}


def test_a_prompt_diff_keeps_short_equal_runs_and_elides_long_ones() -> None:
    from imaginebuild.engine.rebuild import prompt_diff

    six = "a b c d e f"
    assert prompt_diff(f"{six} old", f"{six} new") == "a b c d e f [-old-] {+new+}"
    seven = "a b c d e f g"
    assert prompt_diff(f"{seven} old", f"{seven} new") == "a … g [-old-] {+new+}"


def test_a_prompt_diff_is_cut_only_past_its_limit() -> None:
    from imaginebuild.engine.rebuild import prompt_diff

    assert prompt_diff("x", "y", limit=13) == "[-x-] {+y+}"  # 11 characters
    assert prompt_diff("x", "yyy", limit=13) == "[-x-] {+yyy+}"  # exactly 13: whole
    assert prompt_diff("x", "yyyy", limit=13) == "[-x-] {+yyyy…"


def test_a_prompt_diff_is_at_most_160_characters_by_default() -> None:
    from imaginebuild.engine.rebuild import prompt_diff

    diff = prompt_diff("x", "y" * 152)  # 162 characters in full
    assert len(diff) == 160 and diff.endswith("y…")
