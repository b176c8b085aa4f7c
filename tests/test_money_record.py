"""Every billed cent accounted for, one finding at a time: a bill is recorded before
anything else can fail, budgets keep billed money, paid results are never thrown
away, a key is paid once per run, and every report agrees with the ledger.

End to end through the in-process CLI against the fake xAI server over real HTTP on
127.0.0.1 (it bills $0.02 per 1k image and $0.05 per 480p video second).
"""

from __future__ import annotations

import json
import os
import textwrap
from pathlib import Path
from typing import Any

import pytest
from conftest import CliResult, run_cli, set_environment, xai_env

from imaginebuild.errors import StoreError
from imaginebuild.money import usd_to_ticks
from imaginebuild.providers.xai.provider import BACKOFF_ENV
from imaginebuild.store.cache import Store
from imaginebuild.store.ledger import Billing, Ledger, counted
from imaginebuild.testing.fake_faults import Fault, Route
from imaginebuild.testing.fake_xai import FakeXai

KEY = "xai-RECORD-KEY-0123456789abcdef"
IMAGE = usd_to_ticks("0.02")
CLIP = usd_to_ticks("0.05")  # one 480p second

HEADER = """
version: 1
provider: xai
providers:
  xai: {poll_interval: 0.01, max_retries: 2}
"""


pytestmark = pytest.mark.fake(pending_polls=0)


@pytest.fixture
def project(tmp_path: Path, fake: FakeXai, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty project folder; the in-process CLI points at the fake from it."""
    cache = str(tmp_path / "cache")
    set_environment(monkeypatch, xai_env(fake, key=KEY, IMAGINEBUILD_CACHE_DIR=cache))
    monkeypatch.setenv(BACKOFF_ENV, "0.001,0.002")
    folder = tmp_path / "p"
    folder.mkdir()
    monkeypatch.chdir(folder)
    return folder


@pytest.fixture
def cli() -> Any:
    """Run `imaginebuild ARGS…` in-process."""

    def run(*args: str) -> CliResult:
        done = run_cli(*args, cwd=Path.cwd(), env=os.environ)
        assert "Traceback" not in done.stderr, done.stderr
        return done

    return run


def write(folder: Path, assets: str, budget: str = "") -> None:
    """The project's mediafile: the header, an optional budget line and `assets`."""
    text = HEADER + budget + "\nassets:\n" + textwrap.indent(textwrap.dedent(assets).strip(), "  ")
    (folder / "mediafile.yaml").write_text(text.lstrip() + "\n", encoding="utf-8")


def ledger_total(folder: Path) -> int:
    """The ledger's total as `cost` counts it (each request id once)."""
    ledger = Ledger(folder / ".imaginebuild" / "ledger.jsonl")
    return sum(e.ticks for e in counted(ledger.all_entries()))


def lines(folder: Path) -> list[dict[str, Any]]:
    """The ledger's raw lines."""
    path = folder / ".imaginebuild" / "ledger.jsonl"
    if not path.exists():
        return []
    return [json.loads(raw) for raw in path.read_text().splitlines() if raw.strip()]


# ---------------------------------------------------------------- 1. record first


def test_an_image_answer_cut_off_after_billing_is_a_maybe_billed_line(
    project: Path, fake: FakeXai, cli: Any
) -> None:
    write(project, "a: {kind: image, prompt: one}")
    fake.inject(Route.IMAGES, Fault.truncated())
    done = cli("--json", "run")
    assert done.code == 1
    assert fake.billed_ticks() == IMAGE
    (line,) = lines(project)
    assert line["billing"] == Billing.MAYBE_BILLED.value and line["ticks"] == IMAGE
    assert line["estimated"] is True
    assert done.json["assets"][0]["cost_usd"] == "0.02"
    cost = cli("--json", "cost")
    assert cost.json["maybe_billed_usd"] == "0.02"


def test_a_maybe_billed_key_is_not_sent_again_without_force(
    project: Path, fake: FakeXai, cli: Any
) -> None:
    write(project, "a: {kind: image, prompt: one}")
    fake.inject(Route.IMAGES, Fault.truncated())
    cli("run")
    again = cli("--json", "run")
    assert again.code == 3
    assert again.json["assets"][0]["state"] == "skipped"
    assert "may have been billed" in again.json["assets"][0]["reason"]
    assert len(fake.requests(Route.IMAGES)) == 1
    forced = cli("--json", "run", "--force", "a")
    assert forced.code == 0 and forced.json["assets"][0]["state"] == "built"
    assert ledger_total(project) == fake.billed_ticks() == 2 * IMAGE
    assert cli("run").code == 0  # the billed line settled the key


def test_an_unwritable_ledger_loses_neither_the_result_nor_the_line(
    project: Path, fake: FakeXai, cli: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(project, "a: {kind: image, prompt: one}")
    real_append = Ledger.append

    def refuse(self: Ledger, entry: Any) -> bool:
        if self.path.name == "ledger.jsonl":
            raise StoreError(f"{self.path}: cannot append to the cost ledger: disk full")
        return real_append(self, entry)

    monkeypatch.setattr(Ledger, "append", refuse)
    done = cli("--json", "run")
    assert done.json["assets"][0]["state"] == "built"
    assert done.code == 1 and any("cost ledger not written" in m for m in done.json["messages"])
    assert (project / "out" / "a.png").is_file() or list(project.rglob("a.png"))
    monkeypatch.setattr(Ledger, "append", real_append)
    cost = cli("--json", "cost")
    assert usd_to_ticks(cost.json["total"]["usd"]) == fake.billed_ticks() == IMAGE
    write(project, "a: {kind: image, prompt: one}\nb: {kind: image, prompt: two}")
    assert cli("run").code == 0
    assert len(fake.requests(Route.IMAGES)) == 2
    assert not (project / ".imaginebuild" / "ledger-pending.jsonl").exists()
    assert len(lines(project)) == 2
    assert ledger_total(project) == fake.billed_ticks() == 2 * IMAGE


# ---------------------------------------------------------------- 2. budgets keep billed money


def test_a_billed_failure_keeps_its_reservation_and_the_budget_holds(
    project: Path, fake: FakeXai, cli: Any
) -> None:
    write(
        project,
        """
        a1: {kind: image, prompt: one}
        a2: {kind: image, prompt: two}
        a3: {kind: image, prompt: three}
        a4: {kind: image, prompt: four}
        """,
        budget="budget: {max_usd: 0.02}",
    )
    fake.inject(Route.IMAGES, *[Fault.truncated()] * 4)
    done = cli("--json", "run", "-k", "-j", "1")
    assert fake.billed_ticks() == IMAGE, "the lost answer's $0.02 was spent"
    assert ledger_total(project) == IMAGE
    assert done.code == 1
    assert any("per-run budget reached" in m for m in done.json["messages"])


def test_a_moderated_result_is_billed_in_the_asset_and_the_totals(
    project: Path, fake: FakeXai, cli: Any
) -> None:
    write(project, "a: {kind: image, prompt: one}\nb: {kind: image, prompt: two}")
    fake.inject(Route.IMAGES, Fault.moderation())
    done = cli("--json", "run", "-k", "-j", "1")
    costs = {a["name"]: a["cost_usd"] for a in done.json["assets"]}
    assert costs == {"a": "0.02", "b": "0.02"}
    assert usd_to_ticks(done.json["cost_usd"]) == ledger_total(project) == fake.billed_ticks()


# ---------------------------------------------------------------- 3. nothing paid for is lost


def test_a_store_write_that_fails_keeps_the_paid_result_for_the_next_run(
    project: Path, fake: FakeXai, cli: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(project, "a: {kind: image, prompt: one}")
    real_put = Store.put_file

    def full_disk(self: Store, src: Path, media_type: str, *, move: bool = False) -> Any:
        raise StoreError(f"cannot write to the cache at {self.folder}: [Errno 28] No space left")

    monkeypatch.setattr(Store, "put_file", full_disk)
    failed = cli("--json", "run")
    assert failed.code == 1 and failed.json["assets"][0]["cost_usd"] == "0.02"
    monkeypatch.setattr(Store, "put_file", real_put)
    done = cli("--json", "run")
    assert done.code == 0, done.stderr
    assert done.json["assets"][0]["state"] == "restored"
    assert len(fake.requests(Route.IMAGES)) == 1, "the rerun paid again"
    assert ledger_total(project) == fake.billed_ticks() == IMAGE
    assert not list((project.parent / "cache" / "paid").glob("[!.]*"))


def test_a_video_download_cut_off_on_two_runs_is_never_submitted_again(
    project: Path, fake: FakeXai, cli: Any
) -> None:
    write(project, "clip: {kind: video, prompt: waves, duration: 1, resolution: 480p}")
    for _ in range(2):
        fake.inject(Route.DOWNLOAD, *[Fault.truncated()] * 3)  # outlasts max_retries: 2
        assert cli("run").code == 1
    done = cli("--json", "run")
    assert done.code == 0 and done.json["assets"][0]["state"] == "built"
    assert len(fake.requests(Route.VIDEOS)) == 1
    assert ledger_total(project) == fake.billed_ticks() == CLIP


def test_an_image_download_cut_off_on_two_runs_is_never_submitted_again(
    project: Path, fake: FakeXai, cli: Any
) -> None:
    # Images are deferred jobs in the same journal as videos: a cut-off download keeps
    # the journaled job, and the next run fetches the result again without a new POST.
    write(project, "a: {kind: image, prompt: one}")
    for _ in range(2):
        fake.inject(Route.DOWNLOAD, *[Fault.truncated()] * 3)  # outlasts max_retries: 2
        assert cli("run").code == 1
        assert list((project / ".imaginebuild" / "journal").glob("*")), "the job was dropped"
    done = cli("--json", "run")
    assert done.code == 0 and done.json["assets"][0]["state"] == "built"
    assert len(fake.requests(Route.IMAGES)) == 1
    assert ledger_total(project) == fake.billed_ticks() == IMAGE


# ---------------------------------------------------------------- 4. a key is paid once per run


def test_assets_that_share_a_key_are_built_by_one_call(
    project: Path, fake: FakeXai, cli: Any
) -> None:
    write(
        project,
        """
        a: {kind: image, prompt: same}
        b: {kind: image, prompt: same}
        c: {kind: image, prompt: same}
        """,
    )
    done = cli("--json", "run")
    assert done.code == 0
    assert len(fake.requests(Route.IMAGES)) == 1
    states = sorted(a["state"] for a in done.json["assets"])
    assert states == ["built", "restored", "restored"]
    assert {a["key"] for a in done.json["assets"]} == {done.json["assets"][0]["key"]}
    assert usd_to_ticks(done.json["cost_usd"]) == ledger_total(project) == IMAGE


def test_forcing_shared_keys_pays_once(project: Path, fake: FakeXai, cli: Any) -> None:
    write(project, "a: {kind: image, prompt: same}\nb: {kind: image, prompt: same}")
    assert cli("run").code == 0
    assert cli("run", "--force").code == 0
    assert len(fake.requests(Route.IMAGES)) == 2
    assert ledger_total(project) == fake.billed_ticks()
