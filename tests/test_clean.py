"""`imaginebuild clean`: outputs of assets the mediafile no longer declares, and only those.

Through the CLI on the chain fixture (local provider): rename an asset, and its old
output is an orphan `run` mentions and `clean --yes` removes; a file imaginebuild did
not write, or changed since, or now read as an input, is never touched.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path

from tests.conftest import CliResult, edit_yaml, output_hashes

Cli = Callable[..., CliResult]


def rename_other(project: Path) -> None:
    """Rename the asset `other` to `beacon` (same prompt): out/other.png is left behind."""
    edit_yaml(project / "mediafile.yaml", "  other:\n", "  beacon:\n")


def test_a_renamed_asset_leaves_an_orphan_run_mentions_and_clean_removes(
    cli: Cli, chain_dir: Path
) -> None:
    assert cli("run", cwd=chain_dir).code == 0
    rename_other(chain_dir)
    run = cli("--json", "run", cwd=chain_dir)
    assert run.code == 0, run.stderr
    assert "out/other.png" in run.stderr and "imaginebuild clean" in run.stderr
    assert any("out/other.png" in m for m in run.json["messages"])
    before = output_hashes(chain_dir)
    assert "out/other.png" in before and "out/beacon.png" in before

    dry = cli("clean", cwd=chain_dir)
    assert dry.code == 0, dry.stderr
    assert "would remove out/other.png" in dry.stdout and "(was other)" in dry.stdout
    assert "clean --yes" in dry.stderr
    assert output_hashes(chain_dir) == before  # a dry run by default

    done = cli("--json", "clean", "--yes", cwd=chain_dir)
    assert done.code == 0, done.stderr
    assert [r["path"] for r in done.json["removed"]] == ["out/other.png"]
    after = output_hashes(chain_dir)
    assert after == {p: h for p, h in before.items() if p != "out/other.png"}
    again = cli("--json", "run", cwd=chain_dir)
    assert again.code == 0 and again.json["messages"] == []
    assert cli("--json", "clean", "--yes", cwd=chain_dir).json["removed"] == []


def test_clean_never_touches_a_file_imaginebuild_did_not_write_as_it_is(
    cli: Cli, chain_dir: Path
) -> None:
    assert cli("run", cwd=chain_dir).code == 0
    (chain_dir / "out" / "notes.txt").write_text("the user's own file")
    rename_other(chain_dir)
    edit_yaml(chain_dir / "mediafile.yaml", "  base:\n", "  root:\n")
    edit_yaml(
        chain_dir / "mediafile.yaml", "inputs: [base, art/logo.png]", "inputs: [root, art/logo.png]"
    )
    assert cli("run", cwd=chain_dir).code == 0
    retouched = chain_dir / "out" / "other.png"
    retouched.write_bytes(retouched.read_bytes() + b"painted by hand")

    result = cli("--json", "clean", "--yes", cwd=chain_dir)
    assert result.code == 0, result.stderr
    assert [r["path"] for r in result.json["removed"]] == ["out/base.png"]
    assert [k["path"] for k in result.json["kept_changed"]] == ["out/other.png"]
    assert retouched.read_bytes().endswith(b"painted by hand")
    assert (chain_dir / "out" / "notes.txt").read_text() == "the user's own file"
    human = cli("clean", cwd=chain_dir)
    assert "kept out/other.png: edited since imaginebuild wrote it for other" in human.stdout


def test_an_orphan_read_as_an_input_again_is_not_removed(cli: Cli, chain_dir: Path) -> None:
    assert cli("run", cwd=chain_dir).code == 0
    rename_other(chain_dir)
    edit_yaml(chain_dir / "mediafile.yaml", "inputs: [inked]", "inputs: [inked, out/other.png]")
    edit_yaml(chain_dir / "mediafile.yaml", "in a gilded frame", "in a gilded frame by <IMAGE_1>")
    assert cli("run", cwd=chain_dir).code == 0
    result = cli("--json", "clean", "--yes", cwd=chain_dir)
    assert result.code == 0, result.stderr
    assert result.json["removed"] == []
    assert (chain_dir / "out" / "other.png").is_file()


def test_a_hostile_orphan_record_reaches_nothing_outside_the_project(
    cli: Cli, chain_dir: Path, tmp_path: Path
) -> None:
    assert cli("run", cwd=chain_dir).code == 0
    outside = tmp_path / "precious.txt"
    outside.write_bytes(b"outside the project")
    sha = hashlib.sha256(outside.read_bytes()).hexdigest()
    (chain_dir / "out" / "link").symlink_to(tmp_path, target_is_directory=True)
    (chain_dir / "out" / "alias.txt").symlink_to(outside)
    rows = [
        {"path": "../precious.txt", "sha256": sha, "asset": "x"},
        {"path": str(outside), "sha256": sha, "asset": "x"},
        {"path": "out/link/precious.txt", "sha256": sha, "asset": "x"},
        {"path": "out/alias.txt", "sha256": sha, "asset": "x"},
        {"path": "out/base.png", "sha256": "NOT-A-HASH", "asset": "x"},
    ]
    record = chain_dir / ".imaginebuild" / "orphans.json"
    record.write_text(json.dumps({"version": 1, "orphans": rows}))
    before = output_hashes(chain_dir)
    result = cli("--json", "clean", "--yes", cwd=chain_dir)
    assert result.code == 0, result.stderr
    assert result.json["removed"] == []
    assert outside.read_bytes() == b"outside the project"
    assert (chain_dir / "out" / "alias.txt").is_symlink()
    assert output_hashes(chain_dir) == before
