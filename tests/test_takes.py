"""Takes through the CLI: every re-roll is kept, listed, exported, picked; rejected takes wait.

Re-rolls run on the local provider (a `--force` seeds a new roll, so its take
differs, as a real one would). Rejected takes run against the fake xAI server
answering with images the output check refuses: the paid result is kept, a rerun
pays nothing, `accept` promotes it, `run --force` pays for a new take on purpose.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import CliResult, called, edit_yaml, read_lock, sha256_of, states
from reliability_support import cli as xai_cli
from reliability_support import make_project

from imaginebuild.mediaprobe import probe
from imaginebuild.testing.fake_xai import FakeXai, Route

Cli = Callable[..., CliResult]


def takes_of(cli: Cli, folder: Path, name: str, *extra: str) -> list[dict[str, Any]]:
    """`takes NAME --json`'s list (the test fails unless the command succeeds)."""
    done = cli("--json", "takes", name, *extra, cwd=folder)
    assert done.code == 0, done.stderr
    found: list[dict[str, Any]] = done.json["takes"]
    return found


def locked_sha(folder: Path, name: str, index: int = 0) -> str:
    """The sha256 the lockfile records for an asset's output."""
    return str(read_lock(folder)["assets"][name]["outputs"][index]["sha256"])


@pytest.fixture
def rolled(cli: Cli, chain_dir: Path) -> Path:
    """The chain built, then `base` re-rolled twice: three takes of base."""
    assert cli("run", cwd=chain_dir).code == 0
    for _ in range(2):
        done = cli("--json", "run", "--force", "base", cwd=chain_dir)
        assert done.code == 0, done.stderr
        assert "base" in called(done.json)
    return chain_dir


# ---------------------------------------------------------------------- listing and export


def test_every_forced_reroll_is_a_take_listed_with_when_cost_and_which_is_current(
    cli: Cli, rolled: Path
) -> None:
    takes = takes_of(cli, rolled, "base")
    assert [t["number"] for t in takes] == [1, 2, 3]
    assert len({t["id"] for t in takes}) == 3, "a re-roll made the same media"
    assert [t["current"] for t in takes] == [False, False, True]
    assert takes[-1]["outputs"][0]["sha256"] == locked_sha(rolled, "base")
    for take in takes:
        assert take["origin"] == "built"
        assert take["made_at"] and take["cost_usd"] is not None
        assert "request_ids" in take and take["available"]
    text = cli("takes", "base", cwd=rolled)
    assert text.code == 0
    assert "current" in text.stdout and takes[0]["id"] in text.stdout


def test_export_writes_a_viewable_copy_of_every_output_of_every_take(
    cli: Cli, make_project: Callable[[str], Path], tmp_path: Path
) -> None:
    folder = make_project("skyline")
    assert cli("run", "london", cwd=folder).code == 0  # count: 2
    assert cli("run", "--force", "london", cwd=folder).code == 0
    export = tmp_path / "export"
    done = cli("--json", "takes", "london", "--export", str(export), cwd=folder)
    assert done.code == 0, done.stderr
    names = sorted(p.name for p in export.iterdir())
    assert names == [f"london-take{t}-{i}.png" for t in (1, 2) for i in (0, 1)]
    takes = done.json["takes"]
    for number, take in enumerate(takes, start=1):
        for i, out in enumerate(take["outputs"]):
            path = export / f"london-take{number}-{i}.png"
            assert sha256_of(path) == out["sha256"]
            assert probe(path).media_type == "image/png"


def test_a_video_gets_takes_through_force_and_variant(
    cli: Cli, make_project: Callable[[str], Path], tmp_path: Path
) -> None:
    folder = make_project("skyline")
    assert cli("run", "teaser", cwd=folder).code == 0
    assert "teaser" in called(cli("--json", "run", "--force", "teaser", cwd=folder).json)
    edit_yaml(folder / "mediafile.yaml", "    duration: 1\n  moodboard", "    duration: 1\n"
              "    variant: 1\n  moodboard")  # fmt: skip
    assert "teaser" in called(cli("--json", "run", "teaser", cwd=folder).json)
    takes = takes_of(cli, folder, "teaser", "--export", str(tmp_path / "x"))
    assert len({t["id"] for t in takes}) == 3
    assert [t["variant"] for t in takes] == [0, 0, 1]
    for number in (1, 2, 3):
        assert probe(tmp_path / "x" / f"teaser-take{number}.mp4").media_type == "video/mp4"


def test_a_variant_changed_back_and_forth_restores_without_a_call_and_keeps_both_takes(
    cli: Cli, chain_dir: Path
) -> None:
    mediafile = chain_dir / "mediafile.yaml"
    assert cli("run", cwd=chain_dir).code == 0
    first = locked_sha(chain_dir, "base")
    edit_yaml(mediafile, "A red fox in the snow\n", "A red fox in the snow\n    variant: 1\n")
    assert "base" in called(cli("--json", "run", cwd=chain_dir).json)
    edit_yaml(mediafile, "    variant: 1\n", "")
    back = cli("--json", "run", cwd=chain_dir)
    assert states(back.json)["base"] == "restored"
    assert locked_sha(chain_dir, "base") == first
    takes = takes_of(cli, chain_dir, "base")
    assert [t["variant"] for t in takes] == [0, 1]
    assert [t["current"] for t in takes] == [True, False]


def test_the_takes_index_is_untrusted_a_bad_entry_is_skipped_with_a_warning(
    cli: Cli, rolled: Path, cache_dir: Path
) -> None:
    (index_file,) = cache_dir.glob("takes/*/base.json")
    data = json.loads(index_file.read_text())
    data["takes"][0]["outputs"][0]["sha256"] = "../../etc/passwd"
    data["takes"][1]["key"] = "A" * 64  # hashes are lowercase hex
    index_file.write_text(json.dumps(data))
    done = cli("--json", "takes", "base", cwd=rolled)
    assert done.code == 0, done.stderr
    assert done.stderr.count("a take was skipped") == 2
    listed = done.json["takes"]
    assert all(re.fullmatch("[0-9a-f]{64}", t["key"]) for t in listed)
    assert all(re.fullmatch("[0-9a-f]{64}", o["sha256"]) for t in listed for o in t["outputs"])
    # What the index lost, the action cache still knows (without the index's details).
    assert {t["id"] for t in listed} == {t["id"] for t in data["takes"]}
    index_file.write_text("{ torn")
    assert cli("takes", "base", cwd=rolled).code == 0  # the lockfile's take is still listed


def test_hostile_values_in_the_takes_index_are_shown_inert_and_never_crash(
    cli: Cli, rolled: Path, cache_dir: Path, tmp_path: Path
) -> None:
    (index_file,) = cache_dir.glob("takes/*/base.json")
    data = json.loads(index_file.read_text())
    data["takes"][0]["origin"] = "\x1b[31mbogus"  # an unknown origin, with an escape
    data["takes"][2]["record"]["request_ids"] = 7  # not a list
    data["takes"][2]["record"]["cost_usd"] = ["1e999"]  # a list, not a decimal text
    index_file.write_text(json.dumps(data))
    for args in (("--json", "takes", "base"), ("takes", "base")):
        done = cli(*args, cwd=rolled)
        assert done.code == 0, done.stderr
        assert "\x1b" not in done.stderr + done.stdout
        assert re.search(r"origin '.*x1b\[31mbogus' is not one", done.stderr)
    (latest,) = [t for t in takes_of(cli, rolled, "base") if t["id"] == data["takes"][2]["id"]]
    assert latest["request_ids"] == [] and latest["cost_usd"] == "0"
    # An index that names the wrong media type for a blob cannot make export write
    # bytes of one kind under another's name.
    data = json.loads(index_file.read_text())
    data["takes"][2]["outputs"][0]["media_type"] = "video/mp4"
    index_file.write_text(json.dumps(data))
    export = tmp_path / "export"
    lied = cli("takes", "base", "--export", str(export), cwd=rolled)
    assert lied.code != 0 and "does not hold the media type" in lied.stderr
    assert not list(export.glob("*.mp4"))
    index_file.write_bytes(b" " * (5 << 20))  # larger than any index is: not read whole
    done = cli("--json", "takes", "base", cwd=rolled)
    assert done.code == 0 and "unreadable index ignored" in done.stderr


# ---------------------------------------------------------------------- pick


def test_pick_makes_a_take_current_without_a_call_and_the_lockfile_records_it(
    cli: Cli, rolled: Path
) -> None:
    first = takes_of(cli, rolled, "base")[0]
    picked = cli("--json", "pick", "base", "1", cwd=rolled)
    assert picked.code == 0, picked.stderr
    assert states(picked.json) == {"base": "picked"}
    assert sha256_of(rolled / "out" / "base.png") == first["outputs"][0]["sha256"]
    lock = read_lock(rolled)
    assert lock["version"] == 2
    assert lock["assets"]["base"]["pick"] == {"take": first["id"], "made_under": first["key"]}
    assert lock["assets"]["base"]["outputs"][0]["sha256"] == first["outputs"][0]["sha256"]
    status = cli("--json", "status", cwd=rolled).json
    assert states(status)["base"] == "up_to_date"
    assert states(status)["inked"] == "stale"  # its input changed: it follows the pick
    again = cli("--json", "run", cwd=rolled)
    assert states(again.json)["base"] == "up_to_date"
    assert "base" not in called(again.json)
    take_rows = takes_of(cli, rolled, "base")
    assert (take_rows[0]["current"], take_rows[0]["picked"]) == (True, True)


def test_pick_accepts_a_take_id_prefix_and_refuses_what_it_cannot_pick(
    cli: Cli, rolled: Path
) -> None:
    second = takes_of(cli, rolled, "base")[1]
    lock_before = (rolled / "mediafile.lock").read_bytes()
    for wanted, needle in (("9", "no take '9'"), ("zz", "not a take number"),
                           ("0000", "no take")):  # fmt: skip
        bad = cli("pick", "base", wanted, cwd=rolled)
        assert bad.code == 2 and needle in bad.stderr, bad.stderr
    assert cli("pick", "nosuch", "1", cwd=rolled).code == 2
    assert (rolled / "mediafile.lock").read_bytes() == lock_before
    assert cli("pick", "base", second["id"][:6], cwd=rolled).code == 0
    assert sha256_of(rolled / "out" / "base.png") == second["outputs"][0]["sha256"]


def test_a_take_of_another_prompt_cannot_be_picked(cli: Cli, rolled: Path) -> None:
    edit_yaml(rolled / "mediafile.yaml", "A red fox in the snow", "A grey fox in the snow")
    assert cli("run", cwd=rolled).code == 0
    refused = cli("pick", "base", "1", cwd=rolled)
    assert refused.code == 2
    assert "made from another request" in refused.stderr and "prompt changed" in refused.stderr


def test_status_says_the_pick_no_longer_applies_when_the_prompt_changes(
    cli: Cli, rolled: Path
) -> None:
    assert cli("pick", "base", "2", cwd=rolled).code == 0
    edit_yaml(rolled / "mediafile.yaml", "A red fox in the snow", "A red fox in the rain")
    base = next(a for a in cli("--json", "status", cwd=rolled).json["assets"]
                if a["name"] == "base")  # fmt: skip
    assert base["state"] == "stale"
    assert "no longer applies" in base["reason"] and "prompt changed" in base["reason"]
    assert cli("run", cwd=rolled).code == 0
    lock = read_lock(rolled)
    assert "pick" not in lock["assets"]["base"] and lock["version"] == 1


def test_a_lockfile_without_picks_reads_as_before_and_keeps_its_bytes(
    cli: Cli, chain_dir: Path
) -> None:
    assert cli("run", cwd=chain_dir).code == 0
    before = (chain_dir / "mediafile.lock").read_bytes()
    assert json.loads(before)["version"] == 1 and b'"pick"' not in before
    (chain_dir / "out" / "framed.png").unlink()
    assert cli("checkout", cwd=chain_dir).code == 0
    assert cli("run", "--force", "other", cwd=chain_dir).code == 0
    lock = json.loads((chain_dir / "mediafile.lock").read_bytes())
    assert lock["version"] == 1 and all("pick" not in e for e in lock["assets"].values())
    (chain_dir / "mediafile.lock").write_bytes(before)
    assert cli("checkout", cwd=chain_dir).code == 0
    assert (chain_dir / "mediafile.lock").read_bytes() == before


def test_a_teammate_and_ci_get_the_picked_take_from_the_lockfile(
    cli: Cli, rolled: Path, tmp_path: Path
) -> None:
    remote = tmp_path / "remote"
    remote.mkdir()
    env = {"IMAGINEBUILD_REMOTE": remote.as_uri()}
    assert cli("push", cwd=rolled, env=env).code == 0
    first = takes_of(cli, rolled, "base")[0]
    assert cli("pick", "base", "1", cwd=rolled, env=env).code == 0
    assert cli("run", cwd=rolled, env=env).code == 0  # inked and framed follow the pick
    assert cli("push", cwd=rolled, env=env).code == 0
    teammate = tmp_path / "teammate"
    teammate.mkdir()
    for name in ("mediafile.yaml", "mediafile.lock", "art"):
        source = rolled / name
        if source.is_dir():
            import shutil

            shutil.copytree(source, teammate / name)
        else:
            (teammate / name).write_bytes(source.read_bytes())
    ci_env = {**env, "IMAGINEBUILD_CACHE_DIR": str(tmp_path / "ci-cache")}
    built = cli("--json", "run", cwd=teammate, env=ci_env)
    assert built.code == 0, built.stderr
    assert called(built.json) == set(), "the teammate paid for media the team had"
    assert sha256_of(teammate / "out" / "base.png") == first["outputs"][0]["sha256"]
    assert (teammate / "mediafile.lock").read_bytes() == (rolled / "mediafile.lock").read_bytes()


def test_gc_never_drops_a_picked_take(cli: Cli, rolled: Path) -> None:
    mediafile = rolled / "mediafile.yaml"
    first = takes_of(cli, rolled, "base")[0]
    assert cli("pick", "base", "1", cwd=rolled).code == 0
    edit_yaml(mediafile, "A red fox in the snow\n", "A red fox in the snow\n    variant: 1\n")
    assert cli("run", cwd=rolled).code == 0  # the lockfile no longer names the pick
    gc = cli("--json", "gc", "--yes", "--min-age", "0", cwd=rolled)  # young blobs may go
    assert gc.code == 0 and gc.json["blobs"] > 0, "gc had nothing to drop: the test proves nothing"
    edit_yaml(mediafile, "    variant: 1\n", "")
    back = cli("--json", "run", cwd=rolled)
    assert back.code == 0, back.stderr
    assert states(back.json)["base"] == "restored"
    assert sha256_of(rolled / "out" / "base.png") == first["outputs"][0]["sha256"]


# ---------------------------------------------------------------------- the report


def test_the_report_shows_an_assets_takes_side_by_side(cli: Cli, rolled: Path) -> None:
    done = cli("--json", "report", cwd=rolled)
    assert done.code == 0, done.stderr
    page = Path(done.json["report"]).read_text(encoding="utf-8")
    takes = takes_of(cli, rolled, "base")
    section = page[page.index('id="asset-base"') :]
    section = section[: section.index("</article>")]
    assert 'class="takes"' in section
    for take in takes:
        assert f"media/{take['outputs'][0]['sha256']}.png" in section
    assert "take 3 · current" in section


# ---------------------------------------------------------------------- rejected takes

ONE_STILL = """
version: 1
provider: xai
providers:
  xai: {poll_interval: 0.01, max_retries: 0}
assets:
  still: {kind: image, prompt: a still, resolution: 1k, aspect_ratio: "16:9"}
"""


@pytest.fixture
def thumbnails() -> Iterator[FakeXai]:
    """A fake that answers with thumbnails: every image fails the 1k output check."""
    with FakeXai(pending_polls=0, full_size=False) as server:
        yield server


def test_a_result_that_fails_the_check_is_kept_and_a_rerun_does_not_pay_again(
    thumbnails: FakeXai, tmp_path: Path
) -> None:
    proj = make_project(tmp_path / "p", thumbnails, ONE_STILL)
    first = xai_cli(proj, "--json", "run")
    assert first.returncode == 1, first.stderr
    assert "kept as rejected take" in first.stderr and "accept still" in first.stderr
    assert len(thumbnails.submissions(Route.IMAGES)) == 1
    again = xai_cli(proj, "--json", "run")
    assert again.returncode == 1
    assert len(thumbnails.submissions(Route.IMAGES)) == 1, "the rejected key was paid again"
    assert "rejected take — accept or --force" in again.stderr
    for command in ("status", "plan"):
        shown = xai_cli(proj, "--json", command)
        (asset,) = json.loads(shown.stdout)["assets"]
        assert "rejected take — accept or --force" in asset["reason"], command
    assert json.loads(xai_cli(proj, "--json", "plan").stdout)["estimate_usd"] == "0"
    (take,) = json.loads(xai_cli(proj, "--json", "takes", "still").stdout)["takes"]
    assert take["origin"] == "rejected" and "not a 1k image" in take["reason"]
    assert take["cost_usd"] not in (None, "0") and take["available"]  # paid, and kept
    assert not (proj.out / "still.png").exists()


def test_accept_promotes_the_rejected_take_without_a_call(
    thumbnails: FakeXai, tmp_path: Path
) -> None:
    proj = make_project(tmp_path / "p", thumbnails, ONE_STILL)
    assert xai_cli(proj, "run").returncode == 1
    requests = len(thumbnails.log)  # the submission and the download of its image
    accepted = xai_cli(proj, "--json", "accept", "still")
    assert accepted.returncode == 0, accepted.stderr
    assert len(thumbnails.log) == requests, "accept made a call"
    (take,) = json.loads(xai_cli(proj, "--json", "takes", "still").stdout)["takes"]
    assert take["origin"] == "accepted" and take["current"]
    assert sha256_of(proj.out / "still.png") == take["outputs"][0]["sha256"]
    shown = json.loads(xai_cli(proj, "--json", "show", "still").stdout)
    assert "not a 1k image" in shown["record"]["accepted_despite_check"]
    done = xai_cli(proj, "--json", "run")
    assert done.returncode == 0 and json.loads(done.stdout)["assets"][0]["state"] == "up_to_date"
    assert len(thumbnails.submissions(Route.IMAGES)) == 1
    again = xai_cli(proj, "accept", "still")
    assert again.returncode == 2 and "no rejected take" in again.stderr


TWO_STILLS = (
    ONE_STILL
    + "  twin: {kind: image, prompt: a still, resolution: 1k, "
    + ('aspect_ratio: "16:9"}\n')
)


def test_a_rejected_key_is_paid_once_per_run_and_kept_once(
    thumbnails: FakeXai, tmp_path: Path
) -> None:
    proj = make_project(tmp_path / "p", thumbnails, TWO_STILLS)
    first = xai_cli(proj, "--json", "run")
    assert first.returncode == 1, first.stderr
    assert len(thumbnails.submissions(Route.IMAGES)) == 1, "one key, paid twice in a run"
    assert {a["state"] for a in json.loads(first.stdout)["assets"]} == {"failed"}
    assert "not paid for again" in first.stderr
    assert not list(proj.cache.glob("paid/*")), "the rejected result was kept twice"
    rejected = [
        (name, t) for name in ("still", "twin")
        for t in json.loads(xai_cli(proj, "--json", "takes", name).stdout)["takes"]
    ]  # fmt: skip
    assert [t["origin"] for _, t in rejected] == ["rejected"]
    [(owner, _)] = rejected
    other = "twin" if owner == "still" else "still"
    again = xai_cli(proj, "--json", "run")  # a later run: the key was paid, for either asset
    assert len(thumbnails.submissions(Route.IMAGES)) == 1, "the twin paid again for the key"
    assert f"accept {owner}" in again.stderr
    assert xai_cli(proj, "accept", owner).returncode == 0
    done = xai_cli(proj, "--json", "run")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["assets"][["still", "twin"].index(other)]["state"] == "restored"
    assert len(thumbnails.submissions(Route.IMAGES)) == 1


def test_run_force_pays_for_a_new_take_on_purpose(thumbnails: FakeXai, tmp_path: Path) -> None:
    proj = make_project(tmp_path / "p", thumbnails, ONE_STILL)
    assert xai_cli(proj, "run").returncode == 1
    thumbnails.full_size = True  # the next answer passes the check
    forced = xai_cli(proj, "--json", "run", "--force", "still")
    assert forced.returncode == 0, forced.stderr
    assert len(thumbnails.submissions(Route.IMAGES)) == 2
    takes = json.loads(xai_cli(proj, "--json", "takes", "still").stdout)["takes"]
    assert [t["origin"] for t in takes] == ["rejected", "built"]
    assert [t["current"] for t in takes] == [False, True]
    assert xai_cli(proj, "run").returncode == 0
    assert len(thumbnails.submissions(Route.IMAGES)) == 2


def test_a_malformed_pick_in_the_lockfile_is_a_located_error(cli: Cli, rolled: Path) -> None:
    assert cli("pick", "base", "1", cwd=rolled).code == 0
    lock = read_lock(rolled)
    lock["assets"]["base"]["pick"]["take"] = "../../x"
    (rolled / "mediafile.lock").write_text(json.dumps(lock, indent=2, sort_keys=True) + "\n")
    done = cli("status", cwd=rolled)
    assert done.code == 2
    assert "mediafile.lock: assets.base: malformed entry" in done.stderr
    assert "is not a take id" in done.stderr
