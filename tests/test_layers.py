"""The import layers: no module imports one above its layer, and no modules import each other.

Every `import` in the package is read with `ast`, wherever it stands: at the top,
inside a function (the lazy imports that keep start-up light) or under
`TYPE_CHECKING` (a type is a dependency too). Bottom to top:

    __main__
      ▲
    cli   imaginebuild (the public API, `imaginebuild/__init__.py`)
      ▲
    project
      ▲
    engine
      ▲
    providers   remote   coordinator
      ▲
    mediafile   store   testing
      ▲
    the shared vocabulary: errors, model, events, money, retry, version,
                           atomic, mediaprobe, urls, gcpause, layout,
                           untrusted

A module may import its own package and anything in a lower layer. Packages side
by side in one layer know nothing of each other. Nothing in the package imports
`testing` (the fake servers exist for tests and rehearsals). Modules of the shared
vocabulary may import one another, but, like every module, never in a cycle.

Today's code still breaks a few of these rules; KNOWN_UPWARD and KNOWN_CYCLES list
each case with its reason. When a fix lands, its entry must go (a stale entry fails
the test too), so the lists only shrink.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import networkx as nx
import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "imaginebuild"

VOCABULARY = frozenset(
    {
        "errors",
        "model",
        "events",
        "money",
        "retry",
        "version",
        "atomic",
        "mediaprobe",
        "urls",
        "gcpause",
        "layout",
        "untrusted",
        "spelled",
        "provenance",
        "capabilities",
    }
)
# Layers above the shared vocabulary (layer 0), bottom to top; "imaginebuild" is the
# root `__init__` (the lazy public API).
LAYERS: tuple[frozenset[str], ...] = (
    frozenset({"mediafile", "store", "testing"}),
    frozenset({"providers", "remote", "coordinator"}),
    frozenset({"engine"}),
    frozenset({"project"}),
    frozenset({"cli", "imaginebuild"}),
    frozenset({"__main__"}),
)
IMPORTED_BY_NOTHING = frozenset({"testing"})

# Imports that run against the rules today, (importer, imported) → why. Remove an
# entry when its fix lands; a new violation is never added here.
KNOWN_UPWARD: Mapping[tuple[str, str], str] = {
    # mediafile (1) → engine (3): a `pricing:` override is checked against the price table.
    ("mediafile.load", "engine.priceoverrides"): "the price-override check loads the price table",
}
# Groups of modules that import each other, as sets of module names → why.
KNOWN_CYCLES: Mapping[frozenset[str], str] = {}


@dataclass(frozen=True)
class Edge:
    """One import: `importer` (at `line` of its file) names `imported`."""

    importer: str
    imported: str
    line: int


def module_names(root: Path) -> dict[str, Path]:
    """Every module under `root`, named relative to it (`engine.keys`, `cli` for its __init__)."""
    names: dict[str, Path] = {}
    for path in sorted(root.rglob("*.py")):
        parts = path.relative_to(root).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        names[".".join(parts) or root.name] = path
    return names


def _target(dotted: str, root: str, modules: Mapping[str, Path]) -> str | None:
    """The module a dotted import name lands in (the longest known prefix), or None if foreign."""
    if dotted != root and not dotted.startswith(root + "."):
        return None
    name = dotted[len(root) + 1 :] or root
    while name not in modules and "." in name:
        name = name.rpartition(".")[0]
    return name if name in modules else root


def _imported_names(node: ast.Import | ast.ImportFrom, package: str, root: str) -> Iterator[str]:
    """The dotted names an import statement loads (`from a import b` may load module `a.b`)."""
    if isinstance(node, ast.Import):
        yield from (alias.name for alias in node.names)
    else:
        base = node.module or ""
        if node.level:
            parts = [root, *package.split(".")] if package != root else [root]
            parts = parts[: len(parts) - node.level + 1]
            base = ".".join([*parts, *([node.module] if node.module else [])])
        for alias in node.names:
            yield f"{base}.{alias.name}"


def import_edges(root: Path) -> list[Edge]:
    """Every import between modules under `root`, with the line it is on."""
    modules = module_names(root)
    edges: list[Edge] = []
    for name, path in modules.items():
        is_package = path.name == "__init__.py"
        package = name if is_package else (name.rpartition(".")[0] or root.name)
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in ast.walk(tree):
            if not isinstance(node, ast.Import | ast.ImportFrom):
                continue
            for dotted in _imported_names(node, package, root.name):
                target = _target(dotted, root.name, modules)
                if target is not None and target != name:
                    edges.append(Edge(name, target, node.lineno))
    return edges


def unit_of(module: str) -> str:
    """The package or top-level module a module belongs to (its unit of layering)."""
    return module.split(".")[0]


def layer_of(unit: str) -> int | None:
    """0 for the shared vocabulary, 1… for LAYERS, None for a module nobody placed."""
    if unit in VOCABULARY:
        return 0
    return next((i for i, units in enumerate(LAYERS, 1) if unit in units), None)


def rule_broken(edge: Edge) -> str | None:
    """Why an import is not allowed by the layers, or None when it is."""
    src, dst = unit_of(edge.importer), unit_of(edge.imported)
    if src == dst:
        return None
    if dst in IMPORTED_BY_NOTHING:
        return f"nothing in the package may import `{dst}`"
    low, high = layer_of(dst), layer_of(src)
    if low is None or high is None:
        unplaced = src if high is None else dst
        return f"`{unplaced}` has no layer: add it to VOCABULARY or LAYERS"
    if low == high and low > 0:
        return f"`{src}` and `{dst}` are side by side in layer {low}"
    if low > high:
        return f"`{src}` (layer {high}) reaches up to `{dst}` (layer {low})"
    return None


def violations(edges: list[Edge]) -> dict[tuple[str, str], tuple[int, str]]:
    """Each forbidden (importer, imported) pair with its first line and the rule it breaks."""
    found: dict[tuple[str, str], tuple[int, str]] = {}
    for edge in sorted(edges, key=lambda e: (e.importer, e.imported, e.line)):
        why = rule_broken(edge)
        if why is not None:
            found.setdefault((edge.importer, edge.imported), (edge.line, why))
    return found


def located(importer: str, imported: str, line: int, why: str) -> str:
    """One violation as `imaginebuild/engine/keys.py:88: imports imaginebuild.cli.report: why`."""
    path = module_names(PACKAGE)[importer].relative_to(PACKAGE.parent)
    return f"{path}:{line}: imports imaginebuild.{imported}: {why}"


def cycles(edges: list[Edge]) -> list[frozenset[str]]:
    """The groups of modules that import each other (strongly connected, more than one)."""
    graph = nx.DiGraph((e.importer, e.imported) for e in edges)
    return [frozenset(c) for c in nx.strongly_connected_components(graph) if len(c) > 1]


def may_import_line(docstring: str) -> str:
    """The `May import: …` sentence of a package docstring."""
    found = re.search(r"May import:(.*?)\.(?:\s|$)", docstring, re.DOTALL)
    assert found, "the package docstring has no `May import: …` sentence"
    return found.group(1)


# ---------------------------------------------------------------------- the package


EDGES = import_edges(PACKAGE)


def test_every_module_has_a_layer() -> None:
    units = {unit_of(name) for name in module_names(PACKAGE)}
    assert {u for u in units if layer_of(u) is None} == set()


def test_no_import_runs_up_the_layers() -> None:
    found = violations(EDGES)
    new = {
        located(*pair, line, why) for pair, (line, why) in found.items() if pair not in KNOWN_UPWARD
    }
    assert not new, "imports against the layers:\n" + "\n".join(sorted(new))


def test_every_known_violation_still_exists() -> None:
    """An allow-list entry whose import is gone must be deleted, so the list only shrinks."""
    stale = set(KNOWN_UPWARD) - set(violations(EDGES))
    assert not stale, f"fixed, remove from KNOWN_UPWARD: {sorted(stale)}"


def test_no_modules_import_each_other() -> None:
    found = set(cycles(EDGES))
    new = [sorted(c) for c in found if c not in KNOWN_CYCLES]
    assert not new, f"import cycles: {new}"
    stale = set(KNOWN_CYCLES) - found
    assert not stale, f"fixed, remove from KNOWN_CYCLES: {[sorted(c) for c in stale]}"


@pytest.mark.parametrize(
    "unit", sorted(u for layer in LAYERS for u in layer if (PACKAGE / u).is_dir())
)
def test_each_package_docstring_names_what_it_may_import(unit: str) -> None:
    """The docstring and this test agree: backquoted names are exactly the lower packages."""
    tree = ast.parse((PACKAGE / unit / "__init__.py").read_text(encoding="utf-8"))
    sentence = may_import_line(ast.get_docstring(tree) or "")
    named = set(re.findall(r"`([a-z_]+)`", sentence))
    layer = layer_of(unit)
    assert layer is not None
    below = {u for lower in LAYERS[: layer - 1] for u in lower}
    assert named == below - IMPORTED_BY_NOTHING
    assert "shared vocabulary" in sentence


# ---------------------------------------------------------------------- the checker itself


def _write(root: Path, files: Mapping[str, str]) -> Path:
    for rel, text in files.items():
        path = root / "imaginebuild" / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return root / "imaginebuild"


def test_the_checker_sees_a_function_level_import_up_the_layers(tmp_path: Path) -> None:
    root = _write(
        tmp_path,
        {
            "__init__.py": "",
            "errors.py": "",
            "store/__init__.py": "",
            "store/cache.py": "def f():\n    from imaginebuild.cli import app\n",
            "cli/__init__.py": "",
            "cli/app.py": "from imaginebuild.store import cache\nfrom imaginebuild import errors\n",
        },
    )
    edges = import_edges(root)
    assert {(e.importer, e.imported, e.line) for e in edges} == {
        ("store.cache", "cli.app", 2),
        ("cli.app", "store.cache", 1),
        ("cli.app", "errors", 2),
    }
    assert violations(edges) == {
        ("store.cache", "cli.app"): (2, "`store` (layer 1) reaches up to `cli` (layer 5)")
    }
    assert cycles(edges) == [frozenset({"store.cache", "cli.app"})]


def test_the_checker_sees_siblings_relative_imports_and_type_only_imports(
    tmp_path: Path,
) -> None:
    root = _write(
        tmp_path,
        {
            "__init__.py": "",
            "remote/__init__.py": "",
            "remote/sync.py": "from . import link\nfrom ..providers.base import P\n",
            "remote/link.py": "",
            "providers/__init__.py": "",
            "providers/base.py": (
                "from typing import TYPE_CHECKING\n"
                "if TYPE_CHECKING:\n    import imaginebuild.testing.fake\n"
            ),
            "testing/__init__.py": "",
            "testing/fake.py": "",
        },
    )
    assert violations(import_edges(root)) == {
        ("remote.sync", "providers.base"): (
            2,
            "`remote` and `providers` are side by side in layer 2",
        ),
        ("providers.base", "testing.fake"): (3, "nothing in the package may import `testing`"),
    }
