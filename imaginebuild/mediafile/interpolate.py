"""Vars: `${name}` in every string outside `vars:` replaced by the var's text (`$${` is a
literal `${`), vars that use other vars resolved, and every problem (an undefined var, a
cycle, a string or a file grown past its cap) a located diagnostic."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from imaginebuild.errors import Diagnostic, did_you_mean
from imaginebuild.mediafile.yamlload import JsonPath, MarkedProblems, Parsed

MAX_EXPANDED = 64 * 1024  # characters a string may grow to by vars
MAX_EXPANDED_TOTAL = 16 * 1024 * 1024  # characters all strings together may grow to
_VAR = re.compile(r"\$\$\{|\$\{([^}]*)(\})?")
_VAR_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def interpolate(data: dict[str, Any], where: Parsed) -> tuple[dict[str, Any], list[Diagnostic]]:
    """Replace `${name}` in every string outside `vars:` by the var's text; `$${` is a literal `${`.

    Vars may use other vars; an undefined var or a cycle among vars is a diagnostic.
    """
    problems = MarkedProblems(where)
    values = resolve_vars(data.get("vars"), where, problems)
    total = [0]  # characters produced so far: many strings each at the cap add up too

    def walk(node: object, path: JsonPath) -> object:
        if isinstance(node, str):
            if total[0] > MAX_EXPANDED_TOTAL:
                return node  # reported once below; expanding more would only cost memory
            text = _substitute(node, values, path, where, problems)
            total[0] += len(text)
            return text
        if isinstance(node, list):
            return [walk(item, (*path, i)) for i, item in enumerate(node)]
        if isinstance(node, dict):
            return {k: walk(v, (*path, k)) for k, v in node.items()}
        return node

    result = {k: v if k == "vars" else walk(v, (k,)) for k, v in data.items()}
    if total[0] > MAX_EXPANDED_TOTAL:
        problems.at(("vars",),
            f"vars expand the mediafile past {MAX_EXPANDED_TOTAL:,} characters in all",
            "check for vars that repeat other vars across many assets",
        )  # fmt: skip
    return result, problems.diagnostics


def resolve_vars(raw: object, where: Parsed, problems: MarkedProblems) -> dict[str, str]:
    """Each var's final text; vars of a wrong type stay as written (the schema reports them)."""
    if not isinstance(raw, dict):
        return {}
    texts = {name: _var_text(value) for name, value in raw.items()}
    done = {name: f"${{{name}}}" for name, text in texts.items() if text is None}
    active: list[str] = []

    def resolve(name: str) -> str:
        if name in done:
            return done[name]
        if name in active:
            ring = [*active[active.index(name) :], name]
            problems.at(("vars", ring[0]), "vars form a cycle: " + " → ".join(ring))
            return ""
        active.append(name)
        lookup = _Lookup(texts, resolve)
        done[name] = _substitute(str(texts[name]), lookup, ("vars", name), where, problems)
        active.pop()
        return done[name]

    for name in texts:
        resolve(name)
    return done


class _Lookup(Mapping[str, str]):
    """A mapping view that resolves vars lazily, so vars may use other vars."""

    def __init__(self, texts: Mapping[str, str | None], resolve: Any) -> None:
        self.texts = texts
        self.resolve = resolve

    def __getitem__(self, name: str) -> str:
        if name not in self.texts:
            raise KeyError(name)
        return str(self.resolve(name))

    def __contains__(self, name: object) -> bool:
        return name in self.texts

    def __iter__(self) -> Any:
        return iter(self.texts)

    def __len__(self) -> int:
        return len(self.texts)


def _var_text(value: object) -> str | None:
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        return None
    return value if isinstance(value, str) else str(value)


def _substitute(
    text: str, values: Mapping[str, str], path: JsonPath, where: Parsed, problems: MarkedProblems
) -> str:
    if "$" not in text:
        return text
    grown = [len(text)]

    def replace(match: re.Match[str]) -> str:
        value = _expand(match)
        grown[0] += len(value)
        if grown[0] > MAX_EXPANDED:
            return ""  # reported below; stop growing now (nested vars multiply quickly)
        return value

    def _expand(match: re.Match[str]) -> str:
        if match.group(0) == "$${":
            return "${"
        name, closed = match.group(1), match.group(2)
        if closed is None:
            problems.at(path, "unclosed '${' (write '$${' for a literal '${')")
            return match.group(0)
        if not _VAR_NAME.match(name):
            problems.at(path, f"invalid var reference '${{{name}}}'")
            return match.group(0)
        if name not in values:
            guess = did_you_mean(name, values)
            problems.at(path, f"undefined var '{name}'{guess}",
                f"define it under `vars:`, or write '$${{{name}}}' for the literal text",
            )  # fmt: skip
            return match.group(0)
        return values[name]

    result = _VAR.sub(replace, text)
    if grown[0] > MAX_EXPANDED:
        problems.at(path,
            f"vars expand this text past {MAX_EXPANDED:,} characters",
            "a prompt is a few sentences; check for vars that repeat other vars",
        )  # fmt: skip
        return result[:MAX_EXPANDED]
    return result
