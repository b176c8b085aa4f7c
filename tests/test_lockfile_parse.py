"""Parsing a lockfile read as untrusted input: which output paths are refused, what
each refusal and each error says (the unit tests behind the mutation score)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from imaginebuild.errors import LockfileError
from imaginebuild.store.lockfile import parse_lockfile, read_lockfile

GIT_HINT = "restore it from git, or delete it: the cache will rebuild it without calls"


def entry(*paths: str) -> dict[str, Any]:
    outputs = [
        {"path": p, "sha256": "a" * 64, "bytes": 1, "media_type": "image/png"} for p in paths
    ]
    return {"key": "k" * 64, "fields": {}, "outputs": outputs, "record": {}}


def text(assets: dict[str, Any]) -> str:
    return json.dumps({"version": 1, "assets": assets})


@pytest.mark.parametrize(
    "path", ["", "/etc/passwd", "../x.png", "out/../../x.png", "..", "out\\x.png"]
)
def test_an_output_path_leaving_the_project_drops_the_entry_with_a_warning(path: str) -> None:
    warnings: list[str] = []
    found = parse_lockfile(
        text({"bad": entry(path), "good": entry("out/g.png")}), "L", warnings.append
    )
    assert list(found) == ["good"]  # the entries after a refused one are still read
    assert warnings == [f"L: assets.bad: ignored: output path {path!r} leaves the project"]


@pytest.mark.parametrize("path", ["out/ok.png", "out/..x.png", "a/b..c/d.png", "x..png"])
def test_paths_that_stay_inside_are_kept(path: str) -> None:
    warnings: list[str] = []
    found = parse_lockfile(text({"a": entry(path)}), "L", warnings.append)
    assert [o.path for o in found["a"].outputs] == [path] and warnings == []


def test_the_first_escaping_path_of_an_entry_is_named() -> None:
    warnings: list[str] = []
    parse_lockfile(text({"a": entry("ok.png", "../one", "../two")}), "L", warnings.append)
    assert warnings == ["L: assets.a: ignored: output path '../one' leaves the project"]


@pytest.mark.parametrize(
    ("body", "message", "hint"),
    [
        ("{", "L: not valid JSON (", GIT_HINT),
        ("[1]", "L: a lockfile is a JSON object, not list", GIT_HINT),
        ('{"version": 3, "assets": {}}', "L: lockfile version 3 is not 1 or 2",
         "it was written by another imaginebuild version; upgrade, or delete the file"),
        ('{"version": 1, "assets": []}', "L: 'assets' must be an object", GIT_HINT),
        ('{"version": 1, "assets": {"a": {"key": "k"}}}', "L: assets.a: malformed entry (",
         "restore it from git, or delete the entry"),
    ],
)  # fmt: skip
def test_each_malformed_lockfile_says_what_and_what_next(
    body: str, message: str, hint: str
) -> None:
    with pytest.raises(LockfileError) as caught:
        parse_lockfile(body, "L")
    assert caught.value.message.startswith(message)
    assert caught.value.hint == hint


def test_reading_passes_warnings_on_and_refuses_what_is_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "mediafile.lock"
    path.write_text(text({"a": entry("../x")}), encoding="utf-8")
    warnings: list[str] = []
    assert read_lockfile(path, warnings.append) == {}
    assert warnings == ["mediafile.lock: assets.a: ignored: output path '../x' leaves the project"]
    path.write_bytes(b'{"version": 1, "assets": {"\xff": 1}}')
    with pytest.raises(LockfileError) as caught:
        read_lockfile(path)
    assert caught.value.message.startswith(f"cannot read {path}: 'utf-8' codec can't decode")
    assert caught.value.hint == GIT_HINT


class SteppedClock:
    """A clock that reads the given times in turn (the last one from then on)."""

    def __init__(self, *times: float) -> None:
        self.times = list(times)

    def __call__(self) -> float:
        return self.times.pop(0) if len(self.times) > 1 else self.times[0]


def test_the_paced_writer_waits_ten_times_a_write_or_fifty_ms(tmp_path: Path) -> None:
    from imaginebuild.store.lockfile import LockEntry, PacedWriter

    path = tmp_path / "mediafile.lock"
    entries: dict[str, LockEntry] = {}
    writer = PacedWriter(path, entries, SteppedClock(0.0))
    writer.flush()
    assert not path.exists()  # nothing pending yet: nothing written
    # a write that takes 1 s: the next may come 10 s later (10 % of the time writing)
    slow = PacedWriter(path, entries, SteppedClock(0.0, 0.0, 1.0, 1.0))
    slow.changed()
    assert path.exists() and not slow.pending
    assert slow.due_in() == 10.0
    # an instant write: the floor of 50 ms
    fast = PacedWriter(tmp_path / "other.lock", entries, SteppedClock(0.0))
    fast.changed()
    assert fast.due_in() == 0.05


def test_a_pick_is_read_back_as_written() -> None:
    from imaginebuild.store.lockfile import LockPick

    picked = {**entry("out/a.png"), "pick": {"take": "0123456789ab", "made_under": "c" * 64}}
    body = json.dumps({"version": 2, "assets": {"a": picked, "b": entry("out/b.png")}})
    found = parse_lockfile(body, "L", lambda message: None)
    assert found["a"].pick == LockPick("0123456789ab", "c" * 64)
    assert found["b"].pick is None


def test_a_malformed_pick_is_a_located_error() -> None:
    picked = {**entry("out/a.png"), "pick": {"take": "../x", "made_under": "c" * 64}}
    with pytest.raises(LockfileError, match=r"L: assets\.a: malformed entry .*pick: take"):
        parse_lockfile(text({"a": picked}), "L", lambda message: None)


def test_an_input_hash_that_is_not_a_sha256_drops_the_entry_others_are_kept() -> None:
    inputs = [{"ref": "art/a.png", "sha256": "d" * 64}, {"ref": "art/b.png"}, "art/c.png", 7]
    good = {**entry("out/g.png"), "fields": {"inputs": inputs}}
    bad = {**entry("out/b.png"), "fields": {"inputs": [*inputs, {"sha256": "../x"}]}}
    warnings: list[str] = []
    found = parse_lockfile(text({"good": good, "bad": bad}), "L", warnings.append)
    assert list(found) == ["good"]
    assert warnings == ["L: assets.bad: ignored: input hash '../x' is not a sha256"]


def test_an_output_hash_that_is_not_a_sha256_is_named() -> None:
    bad = entry("out/a.png")
    bad["outputs"][0]["sha256"] = "../../x"
    warnings: list[str] = []
    assert parse_lockfile(text({"a": bad}), "L", warnings.append) == {}
    assert warnings == ["L: assets.a: ignored: output hash '../../x' is not a sha256"]


def test_a_pick_survives_a_round_trip_and_raises_the_version() -> None:
    from imaginebuild.store.lockfile import LockedOutput, LockEntry, LockPick, render_lockfile

    out = LockedOutput("out/a.png", "a" * 64, 1, "image/png")
    plain = LockEntry("b" * 64, {}, (out,))
    picked = LockEntry("c" * 64, {}, (out,), pick=LockPick("0123456789ab", "d" * 64))
    assert json.loads(render_lockfile({"a": plain}))["version"] == 1
    written = render_lockfile({"a": picked, "b": plain})
    data = json.loads(written)
    assert data["version"] == 2
    assert data["assets"]["a"]["pick"] == {"take": "0123456789ab", "made_under": "d" * 64}
    assert "pick" not in data["assets"]["b"]
    assert parse_lockfile(written, "L", lambda message: None)["a"].pick == picked.pick


@pytest.mark.parametrize(
    ("pick", "reason"),
    [
        (["0123456789ab"], "('a pick is an object')"),
        ({"take": "0123456789AB", "made_under": "d" * 64}, "pick: take '0123456789AB' is not"),
        ({"take": "0123456789ab", "made_under": "d" * 63}, "pick: made_under 'ddd"),
    ],
    ids=["not-an-object", "take-not-lowercase-hex", "key-too-short"],
)
def test_each_malformed_pick_says_what_is_wrong(pick: object, reason: str) -> None:
    body = text({"a": {**entry("out/a.png"), "pick": pick}})
    with pytest.raises(LockfileError) as caught:
        parse_lockfile(body, "L", lambda message: None)
    assert caught.value.message.startswith("L: assets.a: malformed entry (ValueError(")
    assert reason in caught.value.message
