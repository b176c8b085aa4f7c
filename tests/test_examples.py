"""The catalog example builds offline, as the README tells a new user to try it."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

from conftest import CliResult, called, states

from imaginebuild.mediaprobe import probe

CATALOG = Path(__file__).resolve().parent.parent / "examples" / "catalog"


def test_the_catalog_example_builds_with_the_local_provider(
    tmp_path: Path, cli: Callable[..., CliResult]
) -> None:
    project = tmp_path / "catalog"
    shutil.copytree(
        CATALOG, project, ignore=shutil.ignore_patterns("out", ".imaginebuild", "*.lock")
    )
    built = cli("-C", str(project), "--json", "run", cwd=tmp_path)
    assert built.code == 0, built.stderr
    products, formats = ("aurora", "borealis", "comet"), ("wide", "tall")
    assert called(built.json) == {
        *(f"{family}-{p}" for family in ("hero", "still", "clip", "story") for p in products),
        *(f"spot-{p}-{f}" for p in products for f in formats),
    }
    clip, story = (
        probe(project / "out" / "clip-comet.mp4"),
        probe(project / "out" / "story-comet.mp4"),
    )
    assert (
        (story.duration_s or 0) > (clip.duration_s or 0) > 0
    )  # extend: the clip followed by its continuation
    again = cli("-C", str(project), "--json", "run", "story-*", cwd=tmp_path)
    assert set(states(again.json).values()) == {"up_to_date"}
