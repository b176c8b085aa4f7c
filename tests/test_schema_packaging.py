"""The published schema ships inside the wheel, byte for byte, and loads through the package."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

from imaginebuild.mediafile.schema import load_schema, schema_text

REPO = Path(__file__).resolve().parent.parent
SCHEMA = REPO / "schemas" / "mediafile.schema.json"


def _copy_sources(target: Path) -> None:
    """A copy of what a wheel build reads, so the build leaves the checkout untouched."""
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        if (REPO / name).exists():
            shutil.copy2(REPO / name, target / name)
    shutil.copytree(REPO / "schemas", target / "schemas")
    shutil.copytree(
        REPO / "imaginebuild",
        target / "imaginebuild",
        symlinks=True,  # keep data/mediafile.schema.json a link, as in git
        ignore=shutil.ignore_patterns("__pycache__"),
    )


def _can_build_offline() -> bool:
    """setuptools < 70.1 builds wheels only with the `wheel` package beside it."""
    import setuptools

    major, minor = (int(p) for p in setuptools.__version__.split(".")[:2])
    return (major, minor) >= (70, 1) or importlib.util.find_spec("wheel") is not None


def test_the_wheel_ships_the_schema(tmp_path: Path) -> None:
    assert _can_build_offline(), "install the `wheel` package (or setuptools>=70.1) to build"
    source = tmp_path / "src"
    source.mkdir()
    _copy_sources(source)
    assert (source / "imaginebuild" / "data" / "mediafile.schema.json").is_symlink()
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
         "-w", str(tmp_path / "dist"), str(source)],
        check=True, capture_output=True,
    )  # fmt: skip
    (wheel,) = (tmp_path / "dist").glob("imaginebuild-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        shipped = archive.read("imaginebuild/data/mediafile.schema.json")
    assert shipped == SCHEMA.read_bytes()


def test_the_package_loads_the_published_schema() -> None:
    assert schema_text() == SCHEMA.read_text(encoding="utf-8")
    schema = load_schema()
    assert schema["title"] == "imaginebuild mediafile"
    schema["title"] = "changed"
    assert load_schema()["title"] == "imaginebuild mediafile"  # each call gets a fresh dict
