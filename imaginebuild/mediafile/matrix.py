"""Matrix assets: a template with `matrix:` becomes one ordinary asset per combination of its axes.

    vars: {products: [aurora, comet]}
    spot-${product}-${format.name}:              spot-aurora-wide   [product=aurora, format=wide]
      matrix:                                    spot-aurora-tall   [product=aurora, format=tall]
        product: "${products}"           ──▶     spot-comet-wide    [product=comet, format=wide]
        format: [{name: wide}, {name: tall}]     spot-comet-tall    [product=comet, format=tall]

Runs on the parsed data before vars are interpolated: axis references
(`${product}`, `${format.name}`) are filled in the template's name and every
string under it, `matrix:` is dropped, and what is left is exactly the data of
the same assets written out by hand, so their action keys are the same. Other
`${name}` references stay for interpolation. A var may also be a list (an
axis, named as `"${products}"`) or a mapping (its fields read as `${brand.name}`).

Expanded names are remembered with their template and combination so that
`relabel` can locate a later diagnostic at the template and name the combination.
The expansion is bounded (assets made, characters written) before it allocates.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from imaginebuild.errors import Diagnostic, did_you_mean
from imaginebuild.mediafile.yamlload import JsonPath, MarkedProblems, Parsed, format_path

MAX_ASSETS = 10_000  # assets all the matrices of one file may expand to
MAX_TEXT = 64 * 1024  # characters one expanded string may grow to (as for vars)
MAX_TOTAL = 32 * 1024 * 1024  # characters all expansions of a file may write together

_REF = re.compile(r"\$\$\{|\$\{([^}]*)\}")
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_FIELD_REF = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)\.([A-Za-z_][A-Za-z0-9_]*)$")
_WHOLE_VAR = re.compile(r"^\$\{([A-Za-z_][A-Za-z0-9_]*)\}$")
_ASSET_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")
_SCALAR = (str, int, float)
_FAILED = object()  # a reference already reported

Item = str | int | float | Mapping[str, str | int | float]


@dataclass(frozen=True)
class Combination:
    """Where an expanded asset came from: its template's name and one item per axis."""

    template: str
    items: tuple[tuple[str, str], ...]  # (axis, the item's label), in declaration order
    number: int = 1  # its place in the template's cross product, from 1

    @property
    def label(self) -> str:
        """`spot-${product}-${format.name} [product=comet, format=tall]`."""
        return f"{self.template} {self.choice}"

    @property
    def choice(self) -> str:
        """`[product=comet, format=tall]`."""
        return f"[{', '.join(f'{a}={i}' for a, i in self.items)}]"


@dataclass
class Expansion:
    """The data with every template replaced by its assets, and what the expansion found."""

    data: dict[str, Any]
    origins: dict[str, Combination] = field(default_factory=dict)  # expanded name → origin
    diagnostics: list[Diagnostic] = field(default_factory=list)


class _Budget:
    """Counts what the expansions of one file have made, against the bounds."""

    def __init__(self) -> None:
        self.assets = 0
        self.chars = 0


def expand_matrices(data: dict[str, Any], where: Parsed) -> Expansion:
    """Expand every matrix template of `data` (parsed, not yet interpolated).

    Registers each expanded name with `where` so marks of the expanded asset
    resolve to the template's. Returns `data` itself when there is nothing to do.
    """
    assets = data.get("assets")
    raw_vars = data.get("vars")
    variables: Mapping[str, Any] = raw_vars if isinstance(raw_vars, dict) else {}
    structured = any(isinstance(v, (list, dict)) for v in variables.values())
    templated = isinstance(assets, dict) and any(
        "$" in name or (isinstance(body, dict) and "matrix" in body)
        for name, body in assets.items()
    )
    if not structured and not templated:
        return Expansion(data)
    expansion = Expansion(dict(data))
    filler = _Filler(variables, where, expansion.diagnostics)
    if structured:
        expansion.data = {
            key: value if key == "assets" else filler.plain(value, (key,))
            for key, value in data.items()
        }
    if isinstance(assets, dict):
        expansion.data["assets"] = _expand_assets(assets, filler, where, expansion)
    return expansion


def _expand_assets(
    assets: Mapping[str, Any], filler: _Filler, where: Parsed, expansion: Expansion
) -> dict[str, Any]:
    result: dict[str, Any] = {}
    declared: dict[str, Combination | None] = {}  # name → its origin (None: written by hand)
    budget = _Budget()
    for name, body in assets.items():
        is_template = isinstance(body, dict) and "matrix" in body
        if filler.exhausted:
            break
        if not is_template:
            if "${" in name:
                filler.report(
                    ("assets", name), f"asset name '{name}' uses '${{…}}' but the asset has no "
                    "`matrix:`", "add `matrix:` with the axes the name uses", key=True,
                )  # fmt: skip
                continue
            if name in declared:
                made_by = declared[name]
                filler.report(
                    ("assets", name), f"asset '{name}' is also made by "
                    f"{made_by.label if made_by else 'another asset'}",
                    "rename the asset or change the template's name", key=True,
                )  # fmt: skip
                continue
            result[name] = filler.plain(body, ("assets", name)) if filler.structured else body
            declared[name] = None
            continue
        for expanded, combination, asset in _expand_one(name, body, filler, budget):
            if expanded in declared:
                first = declared[expanded]
                if first is None:
                    other = f"asset '{expanded}'"
                elif first.template == name:
                    other = f"combination {first.number} {first.choice}"
                else:
                    other = first.label
                filler.report(
                    ("assets", name),
                    f"combination {combination.number} expands to '{expanded}', as does {other}",
                    "each combination needs its own name", key=True,
                )  # fmt: skip
                continue
            declared[expanded] = combination
            result[expanded] = asset
            expansion.origins[expanded] = combination
    where.aliases.update((name, c.template) for name, c in expansion.origins.items())
    return result


def _expand_one(
    template: str, body: Mapping[str, Any], filler: _Filler, budget: _Budget
) -> Iterable[tuple[str, Combination, dict[str, Any]]]:
    """Each combination's (expanded name, combination, asset data) of one template."""
    here: JsonPath = ("assets", template)
    axes = filler.axes(body["matrix"], (*here, "matrix"))
    if axes is None:
        return
    used = {ref.split(".", 1)[0] for ref in _refs(template)}
    missing = [axis for axis in axes if axis not in used]
    if missing:
        listed = ", ".join(f"'{a}'" for a in missing)
        filler.report(
            here, f"the name of a matrix asset must use every axis; it does not use {listed}",
            f"add ${{{missing[0]}}} to the name, or remove the axis", key=True,
        )  # fmt: skip
        return
    total = 1
    for items in axes.values():
        total *= len(items)
    if budget.assets + total > MAX_ASSETS:
        filler.report(
            (*here, "matrix"), f"the matrix expands to {total:,} assets; a file's matrices "
            f"may make at most {MAX_ASSETS:,}", "split the catalog over several mediafiles",
            key=True,
        )  # fmt: skip
        return
    budget.assets += total
    names = list(axes)
    rest = {k: v for k, v in body.items() if k != "matrix"}
    for number, picked in enumerate(itertools.product(*axes.values()), 1):
        chosen = dict(zip(names, picked, strict=True))
        labels = tuple((a, _label(i)) for a, i in chosen.items())
        combination = Combination(template, labels, number)
        filler.begin(chosen, combination, budget)
        failed_before = filler.failed_refs
        expanded = filler.text(template, here, key=True)
        name_reported = filler.failed_refs > failed_before  # not also "not a valid name"
        asset = filler.fill(rest, here)
        if filler.exhausted:
            return
        if name_reported:
            continue
        if not isinstance(expanded, str) or not _ASSET_NAME.match(expanded):
            filler.report(
                here, f"expands to '{expanded}', not a valid asset name",
                "names start with a letter or '_' and use only letters, digits, '_' and '-'",
                key=True,
            )  # fmt: skip
            continue
        yield expanded, combination, asset


def _refs(text: str) -> list[str]:
    return [m.group(1) for m in _REF.finditer(text) if m.group(1) is not None]


def _label(item: Item) -> str:
    """How a combination names an item: a scalar itself, a mapping its `name` (or first) field."""
    if isinstance(item, Mapping):
        shown = item.get("name", next(iter(item.values()), "?"))
        return str(shown)
    return str(item)


class _Filler:
    """Fills `${axis}`, `${axis.field}` and `${mapping.field}` into strings; reports misuse."""

    def __init__(
        self, variables: Mapping[str, Any], where: Parsed, diagnostics: list[Diagnostic]
    ) -> None:
        self.problems = MarkedProblems(where, into=diagnostics)
        self.variables = variables
        self.structured = any(isinstance(v, (list, dict)) for v in variables.values())
        self.where = where
        self.seen: set[tuple[str, str]] = set()
        self.parts: dict[str, tuple[tuple[str | None, str], ...]] = {}  # a text's pieces
        self.chosen: Mapping[str, Item] = {}
        self.combination: Combination | None = None
        self.budget = _Budget()
        self.exhausted = False
        self.failed_refs = 0  # references reported as wrong so far

    # ------------------------------------------------------------- reporting

    def report(
        self, path: JsonPath, message: str, hint: str | None = None, *, key: bool = False
    ) -> None:
        """A diagnostic at `path` (a template's paths are located at the template)."""
        shown = format_path(path)
        if (
            self.combination is not None
            and len(path) >= 2
            and path[:2] == ("assets", self.combination.template)
        ):
            shown = format_path(("assets", self.combination.label, *path[2:]))
            if (format_path(path), message) in self.seen:
                return  # the same problem in every combination: say it once
            self.seen.add((format_path(path), message))
        self.problems.at(path, message, hint, key=key, shown=shown)

    # ------------------------------------------------------------------ axes

    def axes(self, raw: object, path: JsonPath) -> dict[str, list[Item]] | None:
        """The axes of a `matrix:` mapping with their items, or None (reported) if malformed."""
        self.combination = None
        if not isinstance(raw, dict) or not raw:
            self.report(
                path,
                "`matrix:` must map axis names to lists of items",
                "e.g. matrix: {product: [aurora, comet]}",
            )
            return None
        axes: dict[str, list[Item]] = {}
        for axis, value in raw.items():
            items = self._axis(axis, value, (*path, axis))
            if items is None:
                return None
            axes[axis] = items
        return axes

    def _axis(self, axis: str, value: object, path: JsonPath) -> list[Item] | None:
        if not _NAME.match(axis):
            self.report(
                path,
                f"invalid axis name '{axis}'",
                "axis names use letters, digits and '_'",
                key=True,
            )
            return None
        if isinstance(value, str):
            whole = _WHOLE_VAR.match(value)
            if whole is None:
                self.report(
                    path,
                    f"axis '{axis}' must be a list or a \"${{var}}\" naming one, "
                    f"got string '{value}'",
                )
                return None
            name = whole.group(1)
            if name not in self.variables:
                self.report(
                    path,
                    f"axis '{axis}' names undefined var '{name}'"
                    + did_you_mean(name, self.variables),
                    "define the list under `vars:`",
                )
                return None
            value = self.variables[name]
            if not isinstance(value, list):
                self.report(
                    path,
                    f"axis '{axis}' names var '{name}', which is {_what(value)}, not a list",
                    f"write vars: {{{name}: [a, b, c]}}",
                )
                return None
            path = ("vars", name)
        if not isinstance(value, list):
            self.report(path, f"axis '{axis}' must be a list, got {_what(value)}")
            return None
        if not value:
            self.report(
                path, f"axis '{axis}' is an empty list", "a matrix needs at least one item per axis"
            )
            return None
        for index, item in enumerate(value):
            if not _is_item(item):
                self.report(
                    (*path, index),
                    f"an item of axis '{axis}' must be a text, a number or a mapping of them, "
                    f"got {_what(item)}",
                )
                return None
        return list(value)

    # ------------------------------------------------------------ substitution

    def begin(self, chosen: Mapping[str, Item], combination: Combination, budget: _Budget) -> None:
        """Fill the next strings for this combination."""
        self.chosen, self.combination, self.budget = chosen, combination, budget

    def plain(self, node: object, path: JsonPath) -> object:
        """`node` outside any template: only mapping-var fields are filled."""
        self.chosen, self.combination = {}, None
        return self.fill(node, path)

    def fill(self, node: object, path: JsonPath) -> Any:
        """A copy of `node` with every string filled."""
        if isinstance(node, str):
            return self.text(node, path)
        if isinstance(node, list):
            return [self.fill(item, (*path, i)) for i, item in enumerate(node)]
        if isinstance(node, dict):
            return {k: self.fill(v, (*path, k)) for k, v in node.items()}
        return node

    def text(self, text: str, path: JsonPath, *, key: bool = False) -> object:
        """One string filled; a string that is exactly one numeric item field stays a number."""
        if "${" not in text:
            return text
        parts = self.parts.get(text)
        if parts is None:
            parts = self.parts[text] = _split(text)
        pieces: list[str] = []
        for ref, written in parts:
            value = None if ref is None else self._value(ref, path, key)
            if len(parts) == 1 and isinstance(value, (int, float)) and not isinstance(value, bool):
                return value
            if value is None:
                pieces.append(written)
            else:  # reported, then escaped so that interpolation does not report it again
                self.failed_refs += value is _FAILED
                pieces.append("$" + written if value is _FAILED else str(value))
        result = "".join(pieces)
        self.budget.chars += len(result)
        if len(result) > MAX_TEXT or self.budget.chars > MAX_TOTAL:
            limit = (
                f"{MAX_TEXT:,} characters"
                if len(result) > MAX_TEXT
                else f"{MAX_TOTAL:,} characters in all"
            )
            self.report(
                path,
                f"the matrix expands this text past {limit}",
                "check the axes' items and the file's size",
                key=key,
            )
            self.exhausted = self.budget.chars > MAX_TOTAL
            return result[:MAX_TEXT]
        return result

    def _value(self, ref: str, path: JsonPath, key: bool) -> object:
        """The value of `ref` from the combination or a mapping var; None leaves it as written
        (an ordinary var), `_FAILED` says it was reported here."""
        dotted = _FIELD_REF.match(ref)
        head, name = (dotted.group(1), dotted.group(2)) if dotted else (ref, None)
        if head in self.chosen:
            return self._field(head, self.chosen[head], name, path, key, "axis")
        variable = self.variables.get(head)
        if isinstance(variable, dict):
            return self._field(head, variable, name, path, key, "var")
        if isinstance(variable, list):
            self.report(
                path,
                f"var '{head}' is a list; only a matrix axis can use it",
                f'matrix: {{item: "${{{head}}}"}}',
                key=key,
            )
            return _FAILED
        if head in self.variables:
            return None  # a text var: interpolation fills it (or says `.x` is not a var)
        if self.combination is None and name is None:
            return None  # an undefined var: interpolation reports it
        axes = list(self.chosen) + [v for v, x in self.variables.items() if isinstance(x, dict)]
        what = "unknown axis" if self.combination is not None else "undefined var"
        self.report(
            path,
            f"{what} '{head}'{did_you_mean(head, axes)}",
            "axes are the keys of `matrix:`" if self.combination else None,
            key=key,
        )
        return _FAILED

    def _field(
        self, head: str, item: object, name: str | None, path: JsonPath, key: bool, what: str
    ) -> object:
        if isinstance(item, Mapping):
            if name is None:
                fields = ", ".join(item)
                self.report(
                    path,
                    f"{what} '{head}' is a mapping; name one of its fields: {fields}",
                    f"e.g. ${{{head}.{next(iter(item), 'name')}}}",
                    key=key,
                )
                return _FAILED
            if name not in item:
                self.report(
                    path,
                    f"{what} '{head}' has no field '{name}'{did_you_mean(name, item)}",
                    f"its fields: {', '.join(item)}",
                    key=key,
                )
                return _FAILED
            return item[name]
        if name is not None:
            self.report(
                path,
                f"{what} '{head}' is {_what(item)}, it has no field '{name}'",
                f"write ${{{head}}}",
                key=key,
            )
            return _FAILED
        return item


def _split(text: str) -> tuple[tuple[str | None, str], ...]:
    """A text as (reference or None, the text as written) pieces, so that a template's
    strings are scanned once, not once per combination. `$${` stays as written."""
    pieces: list[tuple[str | None, str]] = []
    start = 0
    for match in _REF.finditer(text):
        if match.start() > start:
            pieces.append((None, text[start : match.start()]))
        pieces.append((match.group(1), match.group(0)))
        start = match.end()
    if start < len(text):
        pieces.append((None, text[start:]))
    return tuple(pieces)


def _is_item(item: object) -> bool:
    if isinstance(item, bool):
        return False
    if isinstance(item, _SCALAR):
        return True
    return (
        isinstance(item, dict)
        and bool(item)
        and all(isinstance(v, _SCALAR) and not isinstance(v, bool) for v in item.values())
    )


def _what(value: object) -> str:
    if isinstance(value, bool):
        return f"boolean {str(value).lower()}"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    if value is None:
        return "nothing (null)"
    return f"'{value}'" if isinstance(value, str) else f"the number {value}"
