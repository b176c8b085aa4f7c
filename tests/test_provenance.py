"""Provenance acceptance: `show --json` and the lockfile record where every output came
from, `why --json` names what changed, and earlier takes stay listed.

Most cases build with the local provider (no network, no key); the request ids
and billed costs of a real call are checked against the fake xAI server.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import textwrap
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from conftest import NOWHERE, run_cli, xai_env

from imaginebuild import __version__
from imaginebuild.money import usd_to_ticks
from imaginebuild.testing.fake_xai import FakeXai, Route

KEY = "xai-PROVENANCE-0123456789"

CHAIN = """
version: 1
provider: local
vars:
  style: stenciled street-art style
defaults:
  image: {resolution: 1k, aspect_ratio: "1:1"}
assets:
  base: {kind: image, prompt: "A skyline in a ${style}", count: 2}
  inked: {kind: edit, prompt: "Ink it, ${style}", inputs: ["base[1]"]}
"""

SHOW_KEYS = {
    "name", "kind", "key", "inputs", "model", "params", "prompt", "provider", "variant",
    "outputs", "record", "earlier_takes",
}  # fmt: skip
RECORD_KEYS = {
    "imaginebuild", "built_at", "provider", "model", "request_ids", "cost_usd",
    "cost_estimated", "estimate_usd", "calls",
}  # fmt: skip
CALL_KEYS = {
    "endpoint", "request_id", "x_request_id", "cost_usd", "retries", "started_at", "duration_s",
}  # fmt: skip
OUTPUT_KEYS = {"path", "sha256", "bytes", "media_type"}


def cli(folder: Path, *args: str, base_url: str = NOWHERE) -> Any:
    """`imaginebuild --json ARGS…` in-process in `folder` (a clean environment, the cache
    inside the project, the API on loopback only); returns (exit code, the JSON object,
    stderr)."""
    env = xai_env(base_url, key=KEY, IMAGINEBUILD_CACHE_DIR=str(folder / ".cache"))
    done = run_cli("--json", *args, cwd=folder, env=env)
    return done.code, json.loads(done.stdout), done.stderr


def sha256_of(path: Path) -> str:
    """The hex sha256 of a file."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


def edit(folder: Path, old: str, new: str) -> None:
    """Replace exactly one occurrence of `old` in the project's mediafile."""
    path = folder / "mediafile.yaml"
    text = path.read_text(encoding="utf-8")
    assert text.count(old) == 1, (old, text)
    path.write_text(text.replace(old, new), encoding="utf-8")


@pytest.fixture(scope="module")
def built_chain(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """CHAIN built once with the local provider (copy it before changing it)."""
    folder = tmp_path_factory.mktemp("chain") / "p"
    folder.mkdir()
    (folder / "mediafile.yaml").write_text(textwrap.dedent(CHAIN), encoding="utf-8")
    code, report, err = cli(folder, "run")
    assert code == 0, err
    assert {a["state"] for a in report["assets"]} == {"built"}
    return folder


@pytest.fixture
def chain(built_chain: Path, tmp_path: Path) -> Path:
    """A private copy of the built chain, cache included."""
    return Path(shutil.copytree(built_chain, tmp_path / "p", symlinks=True))


# ---------------------------------------------------------------- show


def test_show_json_has_the_documented_shape_and_true_hashes(chain: Path) -> None:
    code, shown, err = cli(chain, "show", "inked")
    assert code == 0, err
    assert set(shown) == SHOW_KEYS
    assert shown["name"] == "inked" and shown["kind"] == "edit" and shown["provider"] == "local"
    assert shown["prompt"] == "Ink it, stenciled street-art style"  # after interpolation
    # a single-image edit keeps its input's ratio: the default 1:1 does not reach it
    assert shown["params"] == {"aspect_ratio": "auto", "count": 1, "resolution": "1k"}
    assert shown["variant"] == 0 and shown["model"] == "grok-imagine-image"
    assert shown["inputs"] == [
        {"asset": "base", "ref": "base[1]", "sha256": sha256_of(chain / "out" / "base-1.png")}
    ]
    [output] = shown["outputs"]
    assert set(output) == OUTPUT_KEYS and output["path"] == "out/inked.png"
    assert output["sha256"] == sha256_of(chain / output["path"])
    assert output["bytes"] == (chain / output["path"]).stat().st_size
    assert output["media_type"] == "image/png"
    record = shown["record"]
    assert set(record) == RECORD_KEYS
    assert record["imaginebuild"] == __version__
    assert record["provider"] == "local" and record["model"] == "grok-imagine-image"
    datetime.fromisoformat(record["built_at"].replace("Z", "+00:00"))
    assert record["request_ids"] == []
    for call in record["calls"]:
        assert set(call) == CALL_KEYS
    assert shown["earlier_takes"] == []
    # the same record is in the lockfile entry, under the same key
    lock = json.loads((chain / "mediafile.lock").read_text(encoding="utf-8"))
    entry = lock["assets"]["inked"]
    assert entry["key"] == shown["key"]
    assert entry["record"] == record
    assert entry["outputs"] == shown["outputs"]
    assert {k: shown[k] for k in entry["fields"]} == entry["fields"]


def test_show_lists_earlier_takes_still_in_the_cache(chain: Path) -> None:
    _, first, _ = cli(chain, "show", "base")
    code, report, err = cli(chain, "run", "--force", "base")
    assert code == 0, err
    assert {a["name"]: a["state"] for a in report["assets"]}["base"] == "built"
    code, second, err = cli(chain, "show", "base")
    assert code == 0, err
    assert second["key"] == first["key"]  # a new take under the same key
    assert len(second["earlier_takes"]) == 1
    [take] = second["earlier_takes"]
    assert [o["sha256"] for o in take] == [o["sha256"] for o in first["outputs"]]
    assert all(set(o) >= {"sha256", "media_type"} for o in take)


def test_show_refuses_unknown_and_unbuilt_assets(chain: Path) -> None:
    code, data, _ = cli(chain, "show", "inkd")
    assert code == 2
    assert "inked" in json.dumps(data)  # did you mean
    edit(chain, "assets:\n", "assets:\n  fresh: {kind: image, prompt: new}\n")
    code, data, _ = cli(chain, "show", "fresh")
    assert code == 2
    assert "never been built" in json.dumps(data)


def test_show_of_an_xai_build_has_its_request_ids_and_billed_cost(tmp_path: Path) -> None:
    folder = tmp_path / "p"
    folder.mkdir()
    (folder / "mediafile.yaml").write_text(
        textwrap.dedent(
            """
            version: 1
            provider: xai
            providers:
              xai: {poll_interval: 0.01}
            assets:
              clip: {kind: video, prompt: a clip, duration: 2, resolution: 480p}
            """
        ),
        encoding="utf-8",
    )
    with FakeXai(pending_polls=1) as fake:
        code, report, err = cli(folder, "run", base_url=fake.base_url)
        assert code == 0, err
        [submitted] = fake.submissions(Route.VIDEOS)
        [bill] = fake.bills
    code, shown, err = cli(folder, "show", "clip")
    assert code == 0, err
    record = shown["record"]
    assert record["request_ids"] == [bill.request_id]
    assert record["request_ids"] == report["assets"][0]["request_ids"]
    assert usd_to_ticks(Decimal(record["cost_usd"])) == bill.ticks
    assert record["cost_estimated"] is False
    [call] = record["calls"]
    assert call["request_id"] == bill.request_id and call["endpoint"] == "/videos/generations"
    assert submitted.body["prompt"] == shown["prompt"]  # type: ignore[index]
    assert shown["params"] == {"aspect_ratio": "16:9", "duration": 2, "resolution": "480p"}


# ---------------------------------------------------------------- why


def _reasons(folder: Path, name: str) -> tuple[str, list[dict[str, Any]]]:
    code, data, err = cli(folder, "why", name)
    assert code == 0, err
    assert {"name", "state", "reason", "reasons", "key"} <= set(data)
    return data["state"], data["reasons"]


WHY_CASES = [
    pytest.param(
        "inked",
        ("Ink it, ${style}", "Ink it boldly, ${style}"),
        {"code": "prompt", "field": "prompt",
         "old": "Ink it, stenciled street-art style",
         "new": "Ink it boldly, stenciled street-art style"},
        id="prompt",
    ),
    pytest.param(
        "inked",
        ('inputs: ["base[1]"]}', 'inputs: ["base[1]"], resolution: 2k}'),
        {"code": "param", "field": "resolution", "old": "1k", "new": "2k"},
        id="param",
    ),
    pytest.param(
        "inked",
        ('inputs: ["base[1]"]}', 'inputs: ["base[1]"], variant: 2}'),
        {"code": "param", "field": "variant", "old": 0, "new": 2},
        id="variant",
    ),
    pytest.param(
        "inked",
        ('inputs: ["base[1]"]}', 'inputs: ["base[1]"], model: grok-imagine-image-quality}'),
        {"code": "param", "field": "model",
         "old": "grok-imagine-image", "new": "grok-imagine-image-quality"},
        id="model",
    ),
    pytest.param(
        "base",
        ("count: 2}", "count: 3}"),
        {"code": "param", "field": "count", "old": 2, "new": 3},
        id="count",
    ),
]  # fmt: skip


@pytest.mark.parametrize(("name", "change", "expected"), WHY_CASES)
def test_why_names_the_changed_field(
    chain: Path, name: str, change: tuple[str, str], expected: dict[str, Any]
) -> None:
    assert _reasons(chain, name) == ("up_to_date", [])
    edit(chain, *change)
    state, reasons = _reasons(chain, name)
    assert state == "stale"
    assert len(reasons) == 1, reasons
    assert {k: reasons[0].get(k) for k in expected} == expected
    assert reasons[0]["text"]


def test_why_names_the_upstream_output_that_changed(chain: Path) -> None:
    old = sha256_of(chain / "out" / "base-1.png")
    edit(chain, "A skyline in", "A harbour in")
    # before base is rebuilt, inked waits on it
    state, reasons = _reasons(chain, "inked")
    assert state == "stale"
    assert [(r["code"], r.get("asset")) for r in reasons] == [("upstream", "base")]
    code, _, err = cli(chain, "run", "base")
    assert code == 0, err
    new = sha256_of(chain / "out" / "base-1.png")
    assert new != old
    state, reasons = _reasons(chain, "inked")
    assert state == "stale"
    assert len(reasons) == 1, reasons
    [reason] = reasons
    assert reason["code"] == "input" and reason["field"] == "inputs"
    assert reason["asset"] == "base" and "base[1]" in reason["text"]
    assert (reason["old"], reason["new"]) == (old, new)


def test_why_of_an_asset_never_built(chain: Path) -> None:
    edit(chain, "assets:\n", "assets:\n  fresh: {kind: image, prompt: new}\n")
    state, reasons = _reasons(chain, "fresh")
    assert state == "never_built"
    assert [r["code"] for r in reasons] == ["never_built"]
