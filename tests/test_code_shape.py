"""The code's shape: no module over MAX_MODULE_LINES lines, no function over MAX_FUNCTION_LINES.

Every module under `imaginebuild/` is read with `ast`. A module's size is its line
count; a function's (or method's, nested ones included) is `end_lineno - lineno + 1`,
its decorators not counted. A failure lists every offender with its path and size, so
one run shows all there is to split.

KNOWN_LONG_MODULES lists a module allowed over the limit for now, with its reason.
When it is brought under, its entry must go (a stale entry fails the test too), so
the list only shrinks.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator, Mapping
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "imaginebuild"

MAX_MODULE_LINES = 500
MAX_FUNCTION_LINES = 60

# Module path (relative to the repository root) → why it may be longer today.
KNOWN_LONG_MODULES: Mapping[str, str] = {}


def modules() -> list[Path]:
    """Every Python module of the package, sorted."""
    return sorted(PACKAGE.rglob("*.py"))


def shown(path: Path, package: Path = PACKAGE) -> str:
    """A module's path as the report shows it (`imaginebuild/engine/runner.py`)."""
    return path.relative_to(package.parent).as_posix()


def line_count(path: Path) -> int:
    """How many lines a module has."""
    return len(path.read_text(encoding="utf-8").splitlines())


def function_sizes(path: Path) -> Iterator[tuple[str, int, int]]:
    """(qualified name, first line, size in lines) of every function in a module."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))

    def walk(node: ast.AST, prefix: str) -> Iterator[tuple[str, int, int]]:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef):
                name = f"{prefix}{child.name}"
                size = (child.end_lineno or child.lineno) - child.lineno + 1
                yield name, child.lineno, size
                yield from walk(child, f"{name}.")
            elif isinstance(child, ast.ClassDef):
                yield from walk(child, f"{prefix}{child.name}.")
            else:
                yield from walk(child, prefix)

    yield from walk(tree, "")


def long_modules(
    paths: list[Path], allowed: Mapping[str, str], package: Path = PACKAGE
) -> list[str]:
    """Each module over the limit and not allowed, as `path: N lines (limit M)`."""
    return [
        f"{shown(path, package)}: {size} lines (limit {MAX_MODULE_LINES})"
        for path in paths
        if (size := line_count(path)) > MAX_MODULE_LINES and shown(path, package) not in allowed
    ]


def long_functions(paths: list[Path], package: Path = PACKAGE) -> list[str]:
    """Each function over the limit, as `path:line: name is N lines (limit M)`."""
    return [
        f"{shown(path, package)}:{line}: {name} is {size} lines (limit {MAX_FUNCTION_LINES})"
        for path in paths
        for name, line, size in function_sizes(path)
        if size > MAX_FUNCTION_LINES
    ]


def test_no_module_is_over_the_limit() -> None:
    offenders = long_modules(modules(), KNOWN_LONG_MODULES)
    assert not offenders, "modules to split along their seams:\n" + "\n".join(offenders)


def test_known_long_modules_are_still_long() -> None:
    sizes = {shown(path): line_count(path) for path in modules()}
    stale = [
        f"{name}: {sizes[name]} lines; remove its KNOWN_LONG_MODULES entry"
        if name in sizes
        else f"{name}: no such module; remove its KNOWN_LONG_MODULES entry"
        for name in sorted(KNOWN_LONG_MODULES)
        if sizes.get(name, 0) <= MAX_MODULE_LINES
    ]
    assert not stale, "stale allowances:\n" + "\n".join(stale)


def test_no_function_is_over_the_limit() -> None:
    offenders = long_functions(modules())
    assert not offenders, "functions to split along their seams:\n" + "\n".join(offenders)


def test_the_measure_finds_what_is_too_long(tmp_path: Path) -> None:
    # The checks above pass only when the measure finds nothing: show, on a module
    # written for the purpose, that it finds a long module, a long method and a long
    # nested function, and names each with its place and size.
    package = tmp_path / "imaginebuild"
    package.mkdir()
    sample = package / "_shape_sample.py"
    body = "\n".join(f"        x{i} = {i}" for i in range(70))
    filler = "\n".join(f"# line {i}" for i in range(500))
    sample_text = (
        "class A:\n    def long(self) -> None:\n" + body + "\n\n"
        "def outer() -> None:\n    def inner() -> None:\n" + body + "\n" + filler + "\n"
    )
    sample.write_text(sample_text, encoding="utf-8")
    sizes = {name: size for name, _, size in function_sizes(sample)}
    assert sizes == {"A.long": 71, "outer": 72, "outer.inner": 71}
    assert long_modules([sample], {}, package) == [
        "imaginebuild/_shape_sample.py: 645 lines (limit 500)"
    ]
    assert long_modules([sample], {"imaginebuild/_shape_sample.py": "why"}, package) == []
    assert long_functions([sample], package) == [
        "imaginebuild/_shape_sample.py:2: A.long is 71 lines (limit 60)",
        "imaginebuild/_shape_sample.py:74: outer is 72 lines (limit 60)",
        "imaginebuild/_shape_sample.py:75: outer.inner is 71 lines (limit 60)",
    ]
