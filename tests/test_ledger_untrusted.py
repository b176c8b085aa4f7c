"""The cost ledger read back is untrusted line by line: a line whose field has the wrong type
(ticks, retries, request id, duration, billing, time, a missing text) is skipped and counted,
never added to what `cost` reports; the sound line beside them still counts in full.
End to end: a real billed call against the fake xAI server, then `cost`.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from conftest import CliResult

from imaginebuild.testing.fake_xai import FakeXai

Cli = Callable[..., CliResult]

ONE_IMAGE = "version: 1\nprovider: xai\nassets:\n  poster: {kind: image, prompt: a lighthouse}\n"

# Each changes one field of a copy of the real line (a new request id, so only the type
# of the changed field can make the line unreadable).
BROKEN: dict[str, dict[str, Any]] = {
    "ticks as text": {"ticks": "2000000"},
    "retries as a flag": {"retries": True},
    "estimated as a number": {"estimated": 1},
    "request id as a number": {"request_id": 7},
    "duration as a flag": {"duration_s": False},
    "an unknown billing state": {"billing": "free"},
    "a time that is not one": {"time": "yesterday"},
    "a missing asset": {"asset": None},
    "another version": {"v": 2},
}


def test_ledger_lines_with_a_field_of_the_wrong_type_are_skipped_and_counted(
    cli: Cli, fake: FakeXai, tmp_path: Path
) -> None:
    (tmp_path / "mediafile.yaml").write_text(ONE_IMAGE)
    env = {"XAI_BASE_URL": fake.base_url, "XAI_API_KEY": "xai-TEST-ledger"}
    assert cli("run", cwd=tmp_path, env=env).code == 0
    ledger = tmp_path / ".imaginebuild" / "ledger.jsonl"
    (line,) = ledger.read_text().splitlines()
    real = json.loads(line)
    before = cli("--json", "cost", cwd=tmp_path)
    assert before.code == 0, before.stderr
    assert before.json["skipped_lines"] == 0

    with ledger.open("a") as out:
        for number, change in enumerate(BROKEN.values()):
            broken = {**real, "request_id": f"forged-{number}", **change}
            out.write(json.dumps({k: v for k, v in broken.items() if v is not None}) + "\n")

    after = cli("--json", "cost", cwd=tmp_path)
    assert after.code == 0, after.stderr
    assert after.json["skipped_lines"] == len(BROKEN)
    assert {k: v for k, v in after.json.items() if k != "skipped_lines"} == {
        k: v for k, v in before.json.items() if k != "skipped_lines"
    }  # the same totals: nothing of the broken lines counted
    text = cli("cost", cwd=tmp_path)
    assert f"warning: {len(BROKEN)} unreadable ledger line(s) skipped" in text.stderr
