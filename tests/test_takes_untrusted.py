"""Each field of a take in the takes index is checked on the way in: a take whose field is not
as `imaginebuild` writes it is skipped with a warning that says which field and why, and the
rest of the index still lists; an index of an unknown format, or one that names another
asset, is ignored whole. The takes the index lost are still listed from the lockfile.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import CliResult
from test_takes import rolled

__all__ = ["rolled"]  # the fixture, shared with test_takes

Cli = Callable[..., CliResult]

# (what is done to the first take, the reason the warning gives)
BROKEN_TAKES: dict[str, tuple[Callable[[dict[str, Any]], object], str]] = {
    "not an object": (lambda t: "a take", "a take is an object"),
    "no outputs": (lambda t: t.update(outputs=[]), "a take names at least one output"),
    "an output not an object": (lambda t: t.update(outputs=[7]), "an output is an object"),
    "a negative size": (
        lambda t: t["outputs"][0].update(bytes=-1),
        "blob size '-1' is not a byte count",
    ),
    "a size that is a flag": (lambda t: t["outputs"][0].update(bytes=True), "is not a byte count"),
    "a media type with a path": (
        lambda t: t["outputs"][0].update(media_type="image/../png"),
        "is not one",
    ),
    "a record that is a list": (lambda t: t.update(record=[1]), "record and fields are objects"),
    "a time that is a number": (lambda t: t.update(made_at=5), "made_at and reason are texts"),
    "a reason that is a number": (lambda t: t.update(reason=5), "made_at and reason are texts"),
    "an id of other outputs": (lambda t: t.update(id="f" * 64), "does not match the outputs"),
}


def index_of(cache_dir: Path) -> Path:
    (index_file,) = cache_dir.glob("takes/*/base.json")
    return index_file


def listed_ids(cli: Cli, folder: Path) -> set[str]:
    done = cli("--json", "takes", "base", cwd=folder)
    assert done.code == 0, done.stderr
    return {t["id"] for t in done.json["takes"]}


@pytest.mark.parametrize("mistake", sorted(BROKEN_TAKES))
def test_a_take_with_a_broken_field_is_skipped_saying_why(
    cli: Cli, rolled: Path, cache_dir: Path, mistake: str
) -> None:
    index_file = index_of(cache_dir)
    data = json.loads(index_file.read_text())
    others = {t["id"] for t in data["takes"][1:]}
    break_it, reason = BROKEN_TAKES[mistake]
    changed = break_it(data["takes"][0])
    if changed is not None:
        data["takes"][0] = changed
    index_file.write_text(json.dumps(data))

    done = cli("--json", "takes", "base", cwd=rolled)
    assert done.code == 0, done.stderr
    assert done.stderr.count("takes of base: a take was skipped") == 1, done.stderr
    assert reason in done.stderr
    assert others <= {t["id"] for t in done.json["takes"]}  # the sound takes still list


@pytest.mark.parametrize(
    ("change", "warning"),
    [
        ({"v": 99}, "takes of base: index of an unknown format ignored"),
        ({"asset": "other"}, "takes of base: the index names another asset; ignored"),
    ],
)
def test_an_index_of_another_format_or_asset_is_ignored_whole(
    cli: Cli, rolled: Path, cache_dir: Path, change: dict[str, object], warning: str
) -> None:
    current = listed_ids(cli, rolled)
    index_file = index_of(cache_dir)
    data = json.loads(index_file.read_text())
    index_file.write_text(json.dumps({**data, **change}))

    done = cli("--json", "takes", "base", cwd=rolled)
    assert done.code == 0, done.stderr
    assert warning in done.stderr
    # what the lockfile and the action cache know is still listed: the current take
    locked = {t["id"] for t in done.json["takes"] if t["current"]}
    assert locked and locked <= current
