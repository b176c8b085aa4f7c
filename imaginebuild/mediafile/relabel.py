"""Diagnostics about assets expanded from a matrix template, named by the template and the
combination (`assets.spot-${product} [product=comet].inputs[0]`), each problem shown once
and at most `MAX_SHOWN` different ones at one place."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from imaginebuild.errors import Diagnostic
from imaginebuild.mediafile.matrix import Combination

MAX_SHOWN = 3  # diagnostics shown per place in a template; the rest are counted


def relabel(
    diagnostics: Sequence[Diagnostic], origins: Mapping[str, Combination]
) -> list[Diagnostic]:
    """Diagnostics about expanded assets, named by template and combination.

    `assets.spot-comet-tall.inputs[0]` becomes
    `assets.spot-${product}-${format.name} [product=comet, format=tall].inputs[0]`
    (the line and column already point into the template). The same problem in
    many combinations is shown once, and at most `MAX_SHOWN` different problems
    at one place; the rest are counted.
    """
    if not origins:
        return list(diagnostics)
    result: list[Diagnostic] = []
    shown: dict[tuple[str, int, int, str], int] = {}
    hidden: dict[tuple[str, int, int, str], int] = {}
    said: set[tuple[tuple[str, int, int, str], str]] = set()

    def number(diagnostic: Diagnostic) -> int:
        origin = origins.get(_asset_in(diagnostic.path)[0] or "")
        return origin.number if origin is not None else 0

    for diagnostic in sorted(diagnostics, key=number):  # stable: combinations in order
        name, rest = _asset_in(diagnostic.path)
        origin = origins.get(name) if name else None
        if origin is None:
            result.append(diagnostic)
            continue
        place = (diagnostic.file, diagnostic.line, diagnostic.column, origin.template + rest)
        seen = shown.get(place, 0)
        if seen >= MAX_SHOWN or (place, diagnostic.message) in said:
            hidden[place] = hidden.get(place, 0) + 1
            continue
        shown[place] = seen + 1
        said.add((place, diagnostic.message))
        path = f"assets.{origin.label}{rest}"
        result.append(
            Diagnostic(
                diagnostic.file,
                diagnostic.line,
                diagnostic.column,
                path,
                diagnostic.message,
                diagnostic.hint,
            )
        )
    for (file, line, column, spot), count in hidden.items():
        noun = "combination" if count == 1 else "combinations"
        result.append(
            Diagnostic(
                file,
                line,
                column,
                f"assets.{spot}",
                f"… and {count} more {noun} with a problem here",
            )
        )
    return result


def _asset_in(path: str) -> tuple[str | None, str]:
    """The asset name a diagnostic's path starts in, and the rest of the path."""
    if not path.startswith("assets."):
        return None, ""
    rest = path[len("assets.") :]
    cut = min((i for i in (rest.find("."), rest.find("[")) if i >= 0), default=len(rest))
    return rest[:cut], rest[cut:]
