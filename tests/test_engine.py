"""The engine through the library: incremental runs, constructive traces, early cutoff, restores.

Provider calls are counted by state: `built` is a call, `restored` and
`up_to_date` are not. Every project renders offline with the local provider.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import called, edit_yaml, output_hashes, read_lock, sha256_of, states

from imaginebuild.engine.facts import RunOptions
from imaginebuild.project import Project

SKYLINE = ("london", "sketch", "clip", "clip_long", "teaser", "moodboard")
CHAIN = ("base", "inked", "framed", "other")

OpenProject = Callable[[Path], Project]


def _run(
    open_project: OpenProject, folder: Path, *targets: str, **options: object
) -> dict[str, str]:
    result = open_project(folder).run(targets, RunOptions(**options))  # type: ignore[arg-type]
    return states(result)


def test_example_builds_then_second_run_makes_no_call(
    project_dir: Path, open_project: OpenProject
) -> None:
    first = open_project(project_dir).run()
    assert first.exit_code == 0
    assert called(first) == set(SKYLINE)
    lock = read_lock(project_dir)
    assert sorted(lock["assets"]) == sorted(SKYLINE)
    for entry in lock["assets"].values():
        for out in entry["outputs"]:
            assert sha256_of(project_dir / out["path"]) == out["sha256"]

    second = open_project(project_dir).run()
    assert second.exit_code == 0
    assert states(second) == dict.fromkeys(SKYLINE, "up_to_date")
    assert second.cost_ticks == 0


def test_prompt_change_rebuilds_the_asset_and_its_descendants_only(
    project_dir: Path, open_project: OpenProject
) -> None:
    _run(open_project, project_dir)
    edit_yaml(project_dir / "mediafile.yaml", "as a pencil sketch", "as a charcoal sketch")
    result = _run(open_project, project_dir)
    assert {n for n, s in result.items() if s == "built"} == {
        "sketch", "clip", "clip_long", "moodboard"
    }  # fmt: skip
    assert result["london"] == result["teaser"] == "up_to_date"


def test_reverting_a_prompt_restores_the_earlier_bytes_without_a_call(
    project_dir: Path, open_project: OpenProject
) -> None:
    _run(open_project, project_dir)
    before = output_hashes(project_dir)
    mediafile = project_dir / "mediafile.yaml"
    edit_yaml(mediafile, "as the light fades", "as the sun rises")
    assert _run(open_project, project_dir)["clip"] == "built"
    assert output_hashes(project_dir)["out/clip.mp4"] != before["out/clip.mp4"]

    edit_yaml(mediafile, "as the sun rises", "as the light fades")
    reverted = _run(open_project, project_dir)
    assert reverted["clip"] == reverted["clip_long"] == "restored"
    assert not {n for n, s in reverted.items() if s == "built"}
    assert output_hashes(project_dir) == before


def test_bumping_variant_makes_a_new_take(chain_dir: Path, open_project: OpenProject) -> None:
    _run(open_project, chain_dir)
    before = sha256_of(chain_dir / "out" / "other.png")
    edit_yaml(
        chain_dir / "mediafile.yaml",
        "A lighthouse at dawn\n",
        "A lighthouse at dawn\n    variant: 1\n",
    )
    result = _run(open_project, chain_dir)
    assert result["other"] == "built"
    assert sha256_of(chain_dir / "out" / "other.png") != before
    assert read_lock(chain_dir)["assets"]["other"]["fields"]["variant"] == 1


def test_an_input_rebuilt_to_identical_bytes_cuts_off_its_dependants(
    project_dir: Path, open_project: OpenProject
) -> None:
    _run(open_project, project_dir)
    before = output_hashes(project_dir)
    project = open_project(project_dir)
    project.store.delete_action(project.lock_entries()["london"].key)  # forget it was built
    project.store.close()
    for out in (project_dir / "out").glob("london-*.png"):
        out.unlink()
    result = _run(open_project, project_dir)
    assert result["london"] == "built"  # a call was made: the local provider is deterministic
    assert {n for n, s in result.items() if s != "up_to_date"} == {"london"}
    assert output_hashes(project_dir) == before


def test_a_changed_input_file_rebuilds_its_readers(
    chain_dir: Path, open_project: OpenProject
) -> None:
    _run(open_project, chain_dir)
    logo = chain_dir / "art" / "logo.png"
    shutil.copy(chain_dir / "out" / "other.png", logo)
    result = _run(open_project, chain_dir)
    assert {n for n, s in result.items() if s == "built"} == {"inked", "framed"}


def test_deleted_outputs_come_back_from_the_cache_with_no_call(
    project_dir: Path, open_project: OpenProject
) -> None:
    _run(open_project, project_dir)
    before = output_hashes(project_dir)
    shutil.rmtree(project_dir / "out")
    checkout = open_project(project_dir).checkout()
    assert checkout.exit_code == 0
    assert states(checkout) == dict.fromkeys(SKYLINE, "restored")
    assert output_hashes(project_dir) == before

    shutil.rmtree(project_dir / "out")
    rerun = _run(open_project, project_dir)
    assert rerun == dict.fromkeys(SKYLINE, "restored")
    assert output_hashes(project_dir) == before


def test_a_deleted_lockfile_is_rebuilt_from_the_cache_with_no_call(
    chain_dir: Path, open_project: OpenProject
) -> None:
    _run(open_project, chain_dir)
    lock = (chain_dir / "mediafile.lock").read_bytes()
    (chain_dir / "mediafile.lock").unlink()
    shutil.rmtree(chain_dir / "out")
    assert _run(open_project, chain_dir) == dict.fromkeys(CHAIN, "restored")
    assert {k: v["outputs"] for k, v in read_lock(chain_dir)["assets"].items()} == {
        k: v["outputs"] for k, v in json.loads(lock)["assets"].items()
    }


def test_targets_build_only_themselves_and_their_ancestors(
    project_dir: Path, open_project: OpenProject
) -> None:
    result = _run(open_project, project_dir, "clip", "teaser")
    assert result == {"london": "built", "sketch": "built", "clip": "built", "teaser": "built"}
    assert sorted(read_lock(project_dir)["assets"]) == ["clip", "london", "sketch", "teaser"]
    assert not (project_dir / "out" / "clip_long.mp4").exists()


def test_a_modified_output_is_kept_then_restored_not_rebuilt_when_forced(
    chain_dir: Path, open_project: OpenProject
) -> None:
    _run(open_project, chain_dir)
    out = chain_dir / "out" / "framed.png"
    before = sha256_of(out)
    out.write_bytes(b"scribbled over")
    status = open_project(chain_dir).status()
    assert states(status)["framed"] == "stale"
    assert _run(open_project, chain_dir)["framed"] == "failed"  # a hand edit is never overwritten
    assert out.read_bytes() == b"scribbled over"
    assert _run(open_project, chain_dir, force=("framed",))["framed"] == "restored"
    assert sha256_of(out) == before


def test_a_corrupt_blob_is_dropped_and_rebuilt_never_served(
    chain_dir: Path, cache_dir: Path, open_project: OpenProject
) -> None:
    _run(open_project, chain_dir)
    good = read_lock(chain_dir)["assets"]["other"]["outputs"][0]["sha256"]
    blob = cache_dir / "blobs" / good[:2] / good
    assert blob.stat().st_mode & 0o222 == 0  # blobs are read-only (root ignores the bits)
    data = bytearray(blob.read_bytes())
    data[len(data) // 2] ^= 0xFF
    blob.chmod(0o644)
    blob.write_bytes(bytes(data))
    (chain_dir / "out" / "other.png").unlink()

    result = _run(open_project, chain_dir)
    assert result["other"] == "built"  # detected on restore, dropped, rebuilt
    assert sha256_of(chain_dir / "out" / "other.png") == good  # deterministic: the same bytes again
    assert sha256_of(blob) == good


def test_a_corrupt_blob_is_not_served_by_checkout(
    chain_dir: Path, cache_dir: Path, open_project: OpenProject
) -> None:
    _run(open_project, chain_dir)
    good = read_lock(chain_dir)["assets"]["base"]["outputs"][0]["sha256"]
    blob = cache_dir / "blobs" / good[:2] / good
    blob.chmod(0o644)
    blob.write_bytes(b"\x89PNG garbage")
    shutil.rmtree(chain_dir / "out")
    result = open_project(chain_dir).checkout()
    assert result.exit_code == 1
    assert states(result)["base"] == "failed"
    assert not (chain_dir / "out" / "base.png").exists()
    assert not blob.exists()  # dropped, so the next run rebuilds it


def test_a_garbage_action_entry_is_ignored_and_rebuilt(
    chain_dir: Path, cache_dir: Path, open_project: OpenProject
) -> None:
    _run(open_project, chain_dir)
    key = read_lock(chain_dir)["assets"]["other"]["key"]
    project = open_project(chain_dir)
    project.store._cache().set(key, "{not json")
    project.store.close()
    (chain_dir / "out" / "other.png").unlink()
    result = _run(open_project, chain_dir)
    assert result["other"] == "built"
    assert (chain_dir / "out" / "other.png").is_file()


def test_a_failed_step_fails_the_run_and_skips_its_dependants(
    chain_dir: Path, open_project: OpenProject
) -> None:
    (chain_dir / "art" / "logo.png").write_bytes(b"not an image at all")
    result = open_project(chain_dir).run((), RunOptions(jobs=1))
    assert result.exit_code == 1
    got = states(result)
    assert got["inked"] == "failed" and got["framed"] == "skipped"
    assert "logo.png" in (result.get("inked").error or "")


def test_keep_going_builds_the_independent_branch(
    chain_dir: Path, open_project: OpenProject
) -> None:
    (chain_dir / "art" / "logo.png").write_bytes(b"not an image at all")
    result = open_project(chain_dir).run((), RunOptions(keep_going=True))
    got = states(result)
    assert got == {"base": "built", "inked": "failed", "framed": "skipped", "other": "built"}
    assert sorted(read_lock(chain_dir)["assets"]) == ["base", "other"]


def test_status_says_failed_for_a_failed_asset_with_an_upstream_input(
    chain_dir: Path, open_project: OpenProject
) -> None:
    (chain_dir / "art" / "logo.png").write_bytes(b"not an image at all")
    open_project(chain_dir).run((), RunOptions(keep_going=True))
    assert open_project(chain_dir).status().get("inked").state == "failed"


def test_offline_restores_from_cache_and_refuses_calls(
    chain_dir: Path, open_project: OpenProject
) -> None:
    _run(open_project, chain_dir)
    shutil.rmtree(chain_dir / "out")
    assert _run(open_project, chain_dir, offline=True) == dict.fromkeys(CHAIN, "restored")
    edit_yaml(chain_dir / "mediafile.yaml", "A lighthouse at dawn", "A lighthouse at dusk")
    result = open_project(chain_dir).run((), RunOptions(offline=True))
    assert result.exit_code == 3
    assert states(result)["other"] == "skipped"


def test_plan_and_status_agree_with_the_run(chain_dir: Path, open_project: OpenProject) -> None:
    project = open_project(chain_dir)
    assert states(project.plan())["base"] == "never_built"
    assert not (chain_dir / "mediafile.lock").exists()
    assert not (chain_dir / "out").exists()
    _run(open_project, chain_dir)
    edit_yaml(chain_dir / "mediafile.yaml", "A red fox", "A grey fox")
    status = open_project(chain_dir).status()
    assert states(status) == {
        "base": "stale", "inked": "stale", "framed": "stale", "other": "up_to_date"
    }  # fmt: skip
    result = _run(open_project, chain_dir)
    assert {n for n, s in result.items() if s == "built"} == {"base", "inked", "framed"}


def test_plan_says_never_built_for_every_asset_of_a_fresh_project(
    chain_dir: Path, open_project: OpenProject
) -> None:
    assert states(open_project(chain_dir).plan()) == dict.fromkeys(CHAIN, "never_built")


def test_why_names_a_changed_prompt_and_param(chain_dir: Path, open_project: OpenProject) -> None:
    _run(open_project, chain_dir)
    mediafile = chain_dir / "mediafile.yaml"
    edit_yaml(mediafile, "A red fox", "A grey fox")
    edit_yaml(mediafile, 'aspect_ratio: "1:1"', 'aspect_ratio: "4:3"')
    reasons = open_project(chain_dir).why("base").reasons
    assert {r.field for r in reasons} == {"prompt", "aspect_ratio"}
    ratio = next(r for r in reasons if r.field == "aspect_ratio")
    assert (ratio.old, ratio.new) == ("1:1", "4:3")


def test_why_names_the_upstream_input(chain_dir: Path, open_project: OpenProject) -> None:
    _run(open_project, chain_dir)
    edit_yaml(chain_dir / "mediafile.yaml", "A red fox", "A grey fox")
    pending = open_project(chain_dir).why("inked").reasons
    assert [(r.code, r.asset) for r in pending] == [("upstream", "base")]
    _run(open_project, chain_dir, "base")
    changed = open_project(chain_dir).why("inked").reasons
    assert [(r.code, r.field, r.asset) for r in changed] == [("input", "inputs", "base")]


def test_why_names_own_changes_even_when_an_upstream_is_stale(
    chain_dir: Path, open_project: OpenProject
) -> None:
    _run(open_project, chain_dir)
    mediafile = chain_dir / "mediafile.yaml"
    edit_yaml(mediafile, "A red fox", "A grey fox")
    edit_yaml(mediafile, 'aspect_ratio: "1:1"', 'aspect_ratio: "4:3"')
    fields = {r.field for r in open_project(chain_dir).why("inked").reasons}
    assert "aspect_ratio" in fields


def test_why_names_a_variant_and_a_model_change(chain_dir: Path, open_project: OpenProject) -> None:
    _run(open_project, chain_dir)
    edit_yaml(
        chain_dir / "mediafile.yaml",
        "A lighthouse at dawn\n",
        "A lighthouse at dawn\n    variant: 2\n    model: grok-imagine-image-pro\n",
    )
    reasons = open_project(chain_dir).why("other").reasons
    assert {r.field for r in reasons} == {"variant", "model"}


def test_gc_drops_an_orphaned_take(
    chain_dir: Path, cache_dir: Path, open_project: OpenProject
) -> None:
    _run(open_project, chain_dir)
    old = read_lock(chain_dir)["assets"]["other"]["outputs"][0]["sha256"]
    edit_yaml(chain_dir / "mediafile.yaml", "A lighthouse at dawn", "A lighthouse at dusk")
    _run(open_project, chain_dir)
    dry = open_project(chain_dir).gc(dry_run=True, min_age=0)
    assert (len(dry.keys), len(dry.blobs)) == (1, 1)
    assert (cache_dir / "blobs" / old[:2] / old).exists()
    done = open_project(chain_dir).gc(min_age=0)
    assert (len(done.keys), len(done.blobs)) == (1, 1) and done.bytes == dry.bytes > 0
    assert not (cache_dir / "blobs" / old[:2] / old).exists()
    assert open_project(chain_dir).gc(dry_run=True).empty
    shutil.rmtree(chain_dir / "out")
    assert open_project(chain_dir).checkout().exit_code == 0


@pytest.mark.parametrize("force", [(), ("other",)])
def test_force_keeps_earlier_takes(
    chain_dir: Path, open_project: OpenProject, force: tuple[str, ...]
) -> None:
    _run(open_project, chain_dir)
    result = _run(open_project, chain_dir, force=force)
    expected = set(CHAIN) if not force else {"other"}
    assert {n for n, s in result.items() if s == "built"} == expected
    shown = open_project(chain_dir).show("other")
    assert len(shown["earlier_takes"]) == 1


def _drop_other(chain_dir: Path) -> None:
    edit_yaml(
        chain_dir / "mediafile.yaml",
        "  other:\n    kind: image\n    prompt: A lighthouse at dawn\n",
        "",
    )


def test_renaming_an_asset_costs_no_call(chain_dir: Path, open_project: OpenProject) -> None:
    _run(open_project, chain_dir)
    before = sha256_of(chain_dir / "out" / "other.png")
    edit_yaml(chain_dir / "mediafile.yaml", "  other:\n", "  lighthouse:\n")
    result = _run(open_project, chain_dir)
    assert result["lighthouse"] == "restored"
    assert sha256_of(chain_dir / "out" / "lighthouse.png") == before
    assert "other" not in read_lock(chain_dir)["assets"]  # a restore rewrites the lockfile


def test_a_removed_asset_leaves_the_lockfile_and_is_not_checked_out(
    chain_dir: Path, open_project: OpenProject
) -> None:
    _run(open_project, chain_dir)
    _drop_other(chain_dir)
    assert _run(open_project, chain_dir) == dict.fromkeys(CHAIN[:3], "up_to_date")
    shutil.rmtree(chain_dir / "out")
    open_project(chain_dir).checkout()
    assert not (chain_dir / "out" / "other.png").exists()
    assert "other" not in read_lock(chain_dir)["assets"]


def test_a_dependant_builds_from_committed_outputs_when_the_cache_is_empty(
    chain_dir: Path, cache_dir: Path, open_project: OpenProject
) -> None:
    _run(open_project, chain_dir)
    shutil.rmtree(cache_dir)  # a fresh CI machine: lockfile and out/ from git, no cache
    edit_yaml(chain_dir / "mediafile.yaml", "gilded frame", "silver frame")
    result = _run(open_project, chain_dir)
    assert result == {"base": "up_to_date", "other": "up_to_date", "inked": "up_to_date",
                      "framed": "built"}  # fmt: skip


def test_a_corrupt_upstream_blob_is_never_fed_to_a_call(
    chain_dir: Path, cache_dir: Path, open_project: OpenProject
) -> None:
    _run(open_project, chain_dir)
    good = read_lock(chain_dir)["assets"]["base"]["outputs"][0]["sha256"]
    blob = cache_dir / "blobs" / good[:2] / good
    data = bytearray(blob.read_bytes())
    data[len(data) // 2] ^= 0xFF
    blob.chmod(0o644)
    blob.write_bytes(bytes(data))
    edit_yaml(chain_dir / "mediafile.yaml", "bold outlines", "thin outlines")
    result = _run(open_project, chain_dir)
    # out/base.png still holds the good bytes, so nothing stands in the way of building inked
    assert result["inked"] == "built"
    assert not blob.exists()  # found corrupt when read, and dropped
