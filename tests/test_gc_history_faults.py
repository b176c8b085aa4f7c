"""`gc` when the lockfile's git history cannot be read whole: committed versions that are not
lockfiles are skipped with a warning naming the commit; a work tree whose history git cannot
give (git missing, a broken repository) stops gc before it drops anything, with a hint to
`--only-current`, which still works.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from conftest import CliResult, read_lock
from test_gc_history import git, repo, xai_env

from imaginebuild.testing.fake_xai import FakeXai

__all__ = ["repo"]  # the fixture, shared with test_gc_history

Cli = Callable[..., CliResult]


def build_and_commit(cli: Cli, folder: Path, fake: FakeXai) -> str:
    """Build the poster, commit the lockfile; the poster's blob hash."""
    done = cli("run", cwd=folder, env=xai_env(fake))
    assert done.code == 0, done.stderr
    git(folder, "add", "-A")
    git(folder, "commit", "-q", "-m", "poster")
    return str(read_lock(folder)["assets"]["poster"]["outputs"][0]["sha256"])


def blob_file(cache_dir: Path, sha: str) -> Path:
    return cache_dir / "blobs" / sha[:2] / sha


def test_committed_versions_that_are_not_lockfiles_are_skipped_with_a_warning(
    cli: Cli, repo: Path, fake: FakeXai, cache_dir: Path
) -> None:
    poster = build_and_commit(cli, repo, fake)
    good = (repo / "mediafile.lock").read_text()
    (repo / "mediafile.lock").write_text("<<<<<<< a merge conflict left in\n")
    git(repo, "commit", "-q", "-am", "a conflicted lockfile")
    (repo / "mediafile.lock").write_text('{"version": 1, "assets": ["poster"]}')
    git(repo, "add", "mediafile.lock")  # only staged: the index's version is read too
    (repo / "mediafile.lock").write_text(good)

    result = cli("--json", "gc", "--min-age", "0", "--yes", cwd=repo)
    assert result.code == 0, result.stderr
    assert "not a JSON lockfile; skipped" in result.stderr
    assert "mediafile.lock (the index): no 'assets' object; skipped" in result.stderr
    assert result.json["history_versions"] == 3  # two commits and the index, all read
    assert result.json["dropped_blobs"] == []
    assert blob_file(cache_dir, poster).is_file()


def test_gc_in_a_work_tree_without_git_stops_before_dropping_anything(
    cli: Cli, repo: Path, fake: FakeXai, cache_dir: Path, tmp_path: Path
) -> None:
    poster = build_and_commit(cli, repo, fake)
    (repo / "mediafile.lock").unlink()  # nothing current names the poster: only history does
    no_git = tmp_path / "bin-without-git"
    no_git.mkdir()

    stopped = cli("gc", "--min-age", "0", "--yes", cwd=repo, env={"PATH": str(no_git)})
    assert stopped.code == 1, stopped.stderr
    assert "is in a git work tree but the `git` command is not installed" in stopped.stderr
    assert "hint: install git, or pass --only-current" in stopped.stderr
    assert blob_file(cache_dir, poster).is_file()

    current = cli(
        "--json", "gc", "--min-age", "0", "--yes", "--only-current",
        cwd=repo, env={"PATH": str(no_git)},
    )  # fmt: skip
    assert current.code == 0, current.stderr
    assert [b["sha256"] for b in current.json["dropped_blobs"]] == [poster]
    assert not blob_file(cache_dir, poster).exists()


def test_a_repository_git_cannot_read_stops_gc_with_the_gits_reason(
    cli: Cli, repo: Path, fake: FakeXai, cache_dir: Path
) -> None:
    poster = build_and_commit(cli, repo, fake)
    (repo / "mediafile.lock").unlink()
    (repo / ".git" / "HEAD").write_text("not a ref\n")  # git no longer sees a repository here
    (repo / ".git" / "objects").rename(repo / ".git" / "objects-moved")

    stopped = cli("gc", "--min-age", "0", "--yes", cwd=repo)
    assert stopped.code == 1, stopped.stderr
    assert "cannot read the lockfile's git history: git rev-parse:" in stopped.stderr
    assert "hint: pass --only-current" in stopped.stderr
    assert blob_file(cache_dir, poster).is_file()
