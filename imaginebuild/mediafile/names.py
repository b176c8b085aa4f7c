"""The asset names of a mediafile read from its text alone, fast enough for shell
completion: no YAML parsing, no validation, no vars.

Block-style `assets:` (one key per line, the usual way) is read line by line; for
anything else (a flow mapping, a matrix template) the answer is None and the caller
loads the file properly.
"""

from __future__ import annotations

import re

_ASSETS = re.compile(r"^assets\s*:\s*(#.*)?$")
_KEY = re.compile(
    r"""^(?P<indent>[ ]+)(?P<quote>["']?)(?P<name>[^"'\s:#{}\[\],]+)(?P=quote)\s*:(\s|$)"""
)


def quick_asset_names(text: str) -> list[str] | None:
    """The names under a block-style top-level `assets:` in file order; None when the
    text does not say plainly (no such block, a flow mapping, a template's `${…}`)."""
    lines = text.splitlines()
    start = next((i for i, line in enumerate(lines) if _ASSETS.match(line)), None)
    if start is None:
        return None
    names: list[str] = []
    indent: str | None = None
    for line in lines[start + 1 :]:
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        if not line.startswith(" "):
            break  # the next top-level key
        found = _KEY.match(line)
        if indent is None:
            if found is None:
                return None
            indent = found.group("indent")
        if found is not None and found.group("indent") == indent:
            names.append(found.group("name"))
        elif len(line) - len(line.lstrip(" ")) < len(indent):
            return None  # a shape this scan does not know
    if not names or any("$" in name for name in names):
        return None
    return names
