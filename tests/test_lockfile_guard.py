"""The lockfile's path guard from the side it guards: reads.

A hostile lockfile names an output outside the project, with the right hash and
size of a file that is really there. No command may read that file: `status`
must not vouch for it, `report` must not copy it, `show` must not describe it as
the asset's output; each says the entry was ignored.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path

import pytest

from imaginebuild.testing.fake_media import render_image
from tests.conftest import CliResult

Cli = Callable[..., CliResult]


@pytest.fixture
def hostile(cli: Cli, chain_dir: Path, tmp_path: Path) -> tuple[Path, bytes]:
    """The built chain project whose lockfile points `other` at a secret beside it."""
    assert cli("run", cwd=chain_dir).code == 0
    secret = render_image((48, 48), (1, 2, 3), "png") + b"SECRET-OUTSIDE-THE-PROJECT"
    (tmp_path / "secret.png").write_bytes(secret)
    lock = json.loads((chain_dir / "mediafile.lock").read_text())
    out = lock["assets"]["other"]["outputs"][0]
    out.update(path="../secret.png", sha256=hashlib.sha256(secret).hexdigest(), bytes=len(secret))
    (chain_dir / "mediafile.lock").write_text(json.dumps(lock))
    return chain_dir, secret


def test_status_does_not_vouch_for_a_file_outside_the_project(
    cli: Cli, hostile: tuple[Path, bytes]
) -> None:
    project, _ = hostile
    result = cli("--json", "status", cwd=project)
    assert result.code == 0, result.stderr
    assert "assets.other: ignored: output path '../secret.png' leaves the project" in (
        result.stderr
    )
    states = {a["name"]: a["state"] for a in result.json["assets"]}
    assert states["other"] == "never_built"


def test_report_copies_nothing_from_outside_the_project(
    cli: Cli, hostile: tuple[Path, bytes], tmp_path: Path
) -> None:
    project, secret = hostile
    folder = tmp_path / "report"
    result = cli("report", "-o", str(folder), cwd=project)
    assert result.code == 0, result.stderr
    assert "leaves the project" in result.stderr
    copied = [p for p in folder.rglob("*") if p.is_file() and secret in p.read_bytes()]
    assert copied == []
    assert "secret.png" not in "".join(
        p.read_text(errors="replace") for p in folder.rglob("*.html")
    )


def test_show_does_not_describe_a_file_outside_the_project(
    cli: Cli, hostile: tuple[Path, bytes]
) -> None:
    project, _ = hostile
    result = cli("show", "other", cwd=project)
    assert "leaves the project" in result.stderr
    assert "secret.png" not in result.stdout + result.stderr.replace(
        "output path '../secret.png' leaves the project", ""
    )
