"""The rebuild decision: one pure function says what an asset needs, and why.

`plan`, `status`, `why` and `run` all call `decide`, so a dry run never
disagrees with a real one. Constructive traces: the action cache maps a key to
outputs, so a key seen before (a reverted prompt, another branch) is restored
without a call, and an input rebuilt to identical bytes leaves its dependants'
keys — and so their verdicts — unchanged.
"""

from __future__ import annotations

import difflib
import enum
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from imaginebuild.engine.keys import ActionFields
from imaginebuild.spelled import Spelled


class Action(str, enum.Enum):
    """What happens to an asset in a run."""

    UP_TO_DATE = "up_to_date"  # outputs present with the locked hashes for this key
    RESTORE = "restore"  # the key is cached: materialize its outputs, no call
    CALL = "call"  # call the provider
    HOLD = "hold"  # wait for the user's word: a rejected take, or an output retouched by hand


class ReasonCode(Spelled):
    """What kind of cause a Reason names, as `--json` spells it (`reasons[].code`)."""

    NEVER_BUILT = "never_built"  # the lockfile has no entry for the asset
    FORCED = "forced"  # --force asked for a new take
    RESUME = "resume"  # a paid job of this key is still to be collected
    UPSTREAM = "upstream"  # an input asset will be built first
    OUTPUT_MISSING = "output_missing"  # outputs missing or modified on disk
    KEY_FORMAT = "key_format"  # same fields, a key written by another key format
    PARAM = "param"  # kind, provider, model, variant or a parameter changed
    PROMPT = "prompt"
    INPUTS = "inputs"  # the list of inputs changed
    INPUT = "input"  # one input's bytes changed
    REMOTE = "remote"  # the outputs are in the remote cache
    HOLD = "hold"  # waiting for the user's word
    RETOUCHED = "retouched"  # outputs edited by hand since they were generated
    SET_ASIDE = "set_aside"  # a retouch set aside for a new take
    REJECTED = "rejected"  # the take failed the output check
    PICK_STALE = "pick_stale"  # a picked take no longer matches the declaration


@dataclass(frozen=True)
class Reason:
    """Why an asset is not up to date; `text` is for humans, the rest for --json."""

    code: ReasonCode
    text: str
    field: str | None = None
    old: Any = None
    new: Any = None
    asset: str | None = None

    def to_json(self) -> dict[str, Any]:
        """JSON-ready form (None fields omitted)."""
        data = {"code": self.code, "text": self.text, "field": self.field}
        data.update({"old": self.old, "new": self.new, "asset": self.asset})
        return {k: v for k, v in data.items() if v is not None}


@dataclass(frozen=True)
class Decision:
    """The verdict for one asset: an action and the reasons behind it."""

    action: Action
    reasons: tuple[Reason, ...] = ()

    @property
    def summary(self) -> str:
        """One line: the reasons joined, or 'up to date'."""
        if not self.reasons:
            return "up to date" if self.action is Action.UP_TO_DATE else self.action.value
        return "; ".join(r.text for r in self.reasons)


NEVER_BUILT = Reason(ReasonCode.NEVER_BUILT, "never built")
FORCED = Reason(ReasonCode.FORCED, "a new take was asked for (--force)")
RESUMING = Reason(
    ReasonCode.RESUME, "a paid job of this key is still to be collected (a run was stopped)"
)


def decide(
    *,
    fields: ActionFields,
    key: str | None,
    locked_key: str | None,
    locked_fields: Mapping[str, Any] | None,
    outputs_ok: bool,
    cached: bool,
    forced: bool = False,
    pending: tuple[str, ...] = (),
    resuming: bool = False,
) -> Decision:
    """Decide one asset's fate.

    `key` is None when inputs in `pending` (upstream assets or unfetched URLs)
    must be built first; `fields.inputs` then lacks them, and the asset's own
    changes are still named. `outputs_ok` says the materialized outputs match
    the lockfile; `cached` that the action cache holds `key`; `resuming` that the
    journal holds a paid job of `key` whose take is not the stored one (a forced run
    was stopped): it is collected, not left unrecorded.
    """
    if key is None:
        own = (
            changes_since(locked_fields, fields, compare_inputs=False)
            if locked_fields
            else (NEVER_BUILT,)
        )
        waits = tuple(
            Reason(ReasonCode.UPSTREAM, f"input {name!r} will be built first", asset=name)
            for name in pending
        )
        return Decision(Action.CALL, (*own, *waits))
    if forced:
        return Decision(Action.CALL, (FORCED,))
    if resuming:
        return Decision(Action.CALL, (RESUMING,))
    if locked_key == key:
        if outputs_ok:
            return Decision(Action.UP_TO_DATE)
        missing = Reason(ReasonCode.OUTPUT_MISSING, "outputs missing or modified")
        return Decision(Action.RESTORE if cached else Action.CALL, (missing,))
    changes = changes_since(locked_fields, fields) if locked_fields else (NEVER_BUILT,)
    if not changes:  # the lockfile was written by another key format: same fields, new key
        changes = (Reason(ReasonCode.KEY_FORMAT, "key format changed"),)
    return Decision(Action.RESTORE if cached else Action.CALL, changes)


def changes_since(
    old: Mapping[str, Any], new: ActionFields, *, compare_inputs: bool = True
) -> tuple[Reason, ...]:
    """The fields of `new` that differ from a lockfile's recorded `old` fields."""
    current = new.to_json()
    reasons: list[Reason] = []
    for name in ("kind", "provider", "model", "variant"):
        if old.get(name) != current[name]:
            reasons.append(_changed(name, old.get(name), current[name]))
    old_params: Mapping[str, Any] = old.get("params") or {}
    new_params: Mapping[str, Any] = current["params"]  # type: ignore[assignment]
    for name in sorted(set(old_params) | set(new_params)):
        if old_params.get(name) != new_params.get(name):
            reasons.append(_changed(name, old_params.get(name), new_params.get(name)))
    if old.get("prompt") != new.prompt:
        reasons.append(
            Reason(
                ReasonCode.PROMPT,
                f"prompt changed: {prompt_diff(str(old.get('prompt', '')), new.prompt)}",
                field="prompt",
                old=old.get("prompt"),
                new=new.prompt,
            )
        )
    if compare_inputs:
        reasons.extend(_input_changes(old.get("inputs") or [], new))
    return tuple(reasons)


def _changed(name: str, old: Any, new: Any) -> Reason:
    return Reason(ReasonCode.PARAM, f"{name} {old!r} → {new!r}", field=name, old=old, new=new)


def _input_changes(old_inputs: list[Mapping[str, Any]], new: ActionFields) -> list[Reason]:
    old_refs = [str(i.get("ref")) for i in old_inputs]
    new_refs = [i.ref for i in new.inputs]
    if old_refs != new_refs:
        return [
            Reason(
                ReasonCode.INPUTS,
                f"inputs {old_refs} → {new_refs}",
                field="inputs",
                old=old_refs,
                new=new_refs,
            )
        ]
    reasons = []
    for before, now in zip(old_inputs, new.inputs, strict=True):
        if before.get("sha256") != now.sha256:
            why = ""
            if now.asset:
                why = " (rebuilt upstream)" if now.ref == now.asset else f" (asset {now.asset!r})"
            reasons.append(
                Reason(
                    ReasonCode.INPUT,
                    f"input {now.ref!r} changed{why}",
                    field="inputs",
                    old=before.get("sha256"),
                    new=now.sha256,
                    asset=now.asset,
                )
            )
    return reasons


def prompt_diff(old: str, new: str, limit: int = 160) -> str:
    """A compact word diff: `[-removed-]{+added+}` around unchanged words."""
    a, b = old.split(), new.split()
    parts: list[str] = []
    for op, i1, i2, j1, j2 in difflib.SequenceMatcher(a=a, b=b, autojunk=False).get_opcodes():
        if op == "equal":
            words = a[i1:i2]
            parts.append(" ".join(words) if len(words) <= 6 else f"{words[0]} … {words[-1]}")
            continue
        if i2 > i1:
            parts.append("[-" + " ".join(a[i1:i2]) + "-]")
        if j2 > j1:
            parts.append("{+" + " ".join(b[j1:j2]) + "+}")
    text = " ".join(parts)
    return text if len(text) <= limit else text[: limit - 1] + "…"
