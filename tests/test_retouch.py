"""Hand retouches through the CLI: `run` and `checkout` never overwrite an output edited by hand.

An output whose bytes match neither the lockfile nor any blob of the cache stops
its asset with a message naming the file and the two ways on: `adopt NAME` makes
the edit the current take (dependants rebuild from it), `run --force NAME`
restores the generated one after keeping the edit as a take.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import CliResult, called, read_lock, sha256_of, states
from PIL import Image, ImageDraw

Cli = Callable[..., CliResult]


def retouch(path: Path) -> bytes:
    """Paint on a PNG output as a designer would; the new bytes."""
    image = Image.open(path).convert("RGB")
    ImageDraw.Draw(image).rectangle((10, 10, 60, 40), fill=(250, 0, 200))
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    path.write_bytes(buffer.getvalue())
    return buffer.getvalue()


@pytest.fixture
def retouched(cli: Cli, chain_dir: Path) -> Path:
    """The chain built, then out/base.png painted on by hand."""
    assert cli("run", cwd=chain_dir).code == 0
    retouch(chain_dir / "out" / "base.png")
    return chain_dir


def test_run_never_overwrites_a_retouch_and_names_the_file_and_both_ways_on(
    cli: Cli, retouched: Path
) -> None:
    edited = (retouched / "out" / "base.png").read_bytes()
    lock_before = (retouched / "mediafile.lock").read_bytes()
    done = cli("--json", "run", cwd=retouched)
    assert done.code == 1
    assert states(done.json) == {"base": "failed", "other": "up_to_date", "inked": "skipped",
                                 "framed": "skipped"}  # fmt: skip
    assert called(done.json) == set()
    assert "out/base.png retouched by hand" in done.stderr
    assert "imaginebuild adopt base" in done.stderr
    assert "imaginebuild run --force base" in done.stderr
    assert (retouched / "out" / "base.png").read_bytes() == edited
    assert (retouched / "mediafile.lock").read_bytes() == lock_before
    status = cli("--json", "status", cwd=retouched).json
    assert "retouched by hand" in next(a["reason"] for a in status["assets"]
                                       if a["name"] == "base")  # fmt: skip
    plan = cli("--json", "plan", cwd=retouched).json
    assert next(a["reason"] for a in plan["assets"] if a["name"] == "base").startswith("hold")


def test_checkout_never_overwrites_a_retouch(cli: Cli, retouched: Path) -> None:
    edited = (retouched / "out" / "base.png").read_bytes()
    done = cli("--json", "checkout", cwd=retouched)
    assert done.code == 1
    assert states(done.json)["base"] == "failed"
    assert "out/base.png retouched by hand" in done.stderr and "adopt base" in done.stderr
    assert (retouched / "out" / "base.png").read_bytes() == edited


def test_adopt_makes_the_retouch_the_current_take_and_dependants_rebuild_from_it(
    cli: Cli, retouched: Path
) -> None:
    generated = read_lock(retouched)["assets"]["base"]["outputs"][0]["sha256"]
    edited = sha256_of(retouched / "out" / "base.png")
    before = cli("--json", "takes", "base", cwd=retouched).json["takes"]
    adopted = cli("--json", "adopt", "base", cwd=retouched)
    assert adopted.code == 0, adopted.stderr
    assert states(adopted.json) == {"base": "adopted"}
    assert read_lock(retouched)["assets"]["base"]["outputs"][0]["sha256"] == edited
    shown = cli("--json", "show", "base", cwd=retouched).json
    assert shown["record"]["retouched"]["from_take"] == before[-1]["id"]
    assert shown["record"]["retouched"]["files"] == ["out/base.png"]
    takes = cli("--json", "takes", "base", cwd=retouched).json["takes"]
    assert takes[-1]["origin"] == "retouched" and takes[-1]["current"]
    assert generated in {o["sha256"] for t in takes for o in t["outputs"]}
    run = cli("--json", "run", cwd=retouched)
    assert run.code == 0, run.stderr
    assert states(run.json)["base"] == "up_to_date"
    assert {"inked", "framed"} <= called(run.json)
    inked_inputs = read_lock(retouched)["assets"]["inked"]["fields"]["inputs"]
    assert inked_inputs[0]["sha256"] == edited
    (retouched / "out" / "base.png").unlink()  # the adopted take is restored, not the generated
    again = cli("--json", "run", cwd=retouched)
    assert states(again.json)["base"] == "restored"
    assert sha256_of(retouched / "out" / "base.png") == edited


def test_force_restores_the_generated_one_and_keeps_the_retouch_as_a_take(
    cli: Cli, retouched: Path, tmp_path: Path
) -> None:
    generated = read_lock(retouched)["assets"]["base"]["outputs"][0]["sha256"]
    edited = (retouched / "out" / "base.png").read_bytes()
    forced = cli("--json", "run", "--force", "base", cwd=retouched)
    assert forced.code == 0, forced.stderr
    assert states(forced.json)["base"] == "restored"  # restored, not paid for again
    assert called(forced.json) == set()
    assert sha256_of(retouched / "out" / "base.png") == generated
    assert "kept as take" in forced.stderr
    export = tmp_path / "export"
    listed = cli("--json", "takes", "base", "--export", str(export), cwd=retouched)
    kept = [t for t in listed.json["takes"] if t["origin"] == "set_aside"]
    assert len(kept) == 1 and "retouched by hand" in kept[0]["reason"]
    number = kept[0]["number"]
    assert (export / f"base-take{number}.png").read_bytes() == edited
    assert cli("pick", "base", str(number), cwd=retouched).code == 0  # and it can come back
    assert (retouched / "out" / "base.png").read_bytes() == edited


def test_adopt_refuses_what_is_not_a_retouch_and_writes_nothing(cli: Cli, chain_dir: Path) -> None:
    assert cli("run", cwd=chain_dir).code == 0
    lock = (chain_dir / "mediafile.lock").read_bytes()
    same = cli("adopt", "base", cwd=chain_dir)
    assert same.code == 2 and "nothing to adopt" in same.stderr
    (chain_dir / "out" / "base.png").write_text("a note, not an image")
    wrong = cli("adopt", "base", cwd=chain_dir)
    assert wrong.code == 2 and "not image media" in wrong.stderr
    assert cli("adopt", "nosuch", cwd=chain_dir).code == 2
    assert (chain_dir / "mediafile.lock").read_bytes() == lock


def test_a_deleted_output_or_an_earlier_take_is_replaced_without_a_stop(
    cli: Cli, chain_dir: Path
) -> None:
    assert cli("run", cwd=chain_dir).code == 0
    first = (chain_dir / "out" / "base.png").read_bytes()
    assert cli("run", "--force", "base", cwd=chain_dir).code == 0
    current = sha256_of(chain_dir / "out" / "base.png")
    (chain_dir / "out" / "base.png").write_bytes(first)  # an earlier take: in the cache
    done = cli("--json", "run", cwd=chain_dir)
    assert done.code == 0, done.stderr
    assert states(done.json)["base"] == "restored"
    assert sha256_of(chain_dir / "out" / "base.png") == current
    (chain_dir / "out" / "base.png").unlink()
    assert states(cli("--json", "run", cwd=chain_dir).json)["base"] == "restored"
    assert json.loads((chain_dir / "mediafile.lock").read_text())["version"] == 1
