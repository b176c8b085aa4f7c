"""An action cache database that is not one (overwritten, or a disk's garbage): every step that
needs it fails with the reason, no output is half written, gc stops before it drops anything;
once the database is moved away the next run rebuilds and the cache works again (a run
with neither outputs nor lockfile restores from it).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from conftest import CliResult, output_hashes, states

Cli = Callable[..., CliResult]


def test_a_garbage_action_cache_fails_steps_with_the_reason_and_gc_drops_nothing(
    cli: Cli, chain_dir: Path, cache_dir: Path
) -> None:
    assert cli("run", cwd=chain_dir).code == 0
    built = output_hashes(chain_dir)
    blobs = sorted(p for p in (cache_dir / "blobs").rglob("*") if p.is_file())
    for part in (cache_dir / "actions").iterdir():  # the database and its journal files
        part.unlink()
    (cache_dir / "actions" / "cache.db").write_bytes(b"\x00garbage, not SQLite\n" * 4096)
    for path in (chain_dir / "out").iterdir():
        path.unlink()
    (chain_dir / "mediafile.lock").unlink()  # what to restore must come from the action cache

    run = cli("--json", "run", cwd=chain_dir)
    assert run.code == 1, run.stderr
    reason = f"cannot open the action cache in {cache_dir}: file is not a database"
    assert reason in run.stderr
    assert states(run.json) == {
        "base": "failed", "other": "failed", "inked": "skipped", "framed": "skipped",
    }  # fmt: skip
    assert output_hashes(chain_dir) == {}  # nothing half written into out/

    gc = cli("gc", "--min-age", "0", "--yes", "--only-current", cwd=chain_dir)
    assert gc.code == 1, gc.stderr
    assert f"error: {reason}" in gc.stderr
    assert sorted(p for p in (cache_dir / "blobs").rglob("*") if p.is_file()) == blobs

    (cache_dir / "actions").rename(cache_dir / "actions-garbage")
    again = cli("--json", "run", cwd=chain_dir)
    assert again.code == 0, again.stderr
    assert set(states(again.json).values()) == {"built"}
    assert output_hashes(chain_dir) == built  # the local provider renders the same bytes
    for path in (chain_dir / "out").iterdir():
        path.unlink()
    (chain_dir / "mediafile.lock").unlink()
    restored = cli("--json", "run", cwd=chain_dir)
    assert set(states(restored.json).values()) == {"restored"}
