"""mediafile.lock: deterministic, sorted rendering; round trips; clear refusals of bad files."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from imaginebuild.errors import LockfileError
from imaginebuild.provenance import Provenance
from imaginebuild.store.lockfile import (
    LOCKFILE_VERSION,
    LockedOutput,
    LockEntry,
    PacedWriter,
    parse_lockfile,
    read_lockfile,
    render_lockfile,
    write_lockfile,
)

names = st.from_regex(r"[A-Za-z_][A-Za-z0-9_-]{0,8}", fullmatch=True)
hexes = st.text(alphabet="0123456789abcdef", min_size=64, max_size=64)
outputs = st.builds(
    LockedOutput,
    path=st.from_regex(r"out/[a-z]{1,6}\.png", fullmatch=True),
    sha256=hexes,
    size=st.integers(0, 10**9),
    media_type=st.sampled_from(["image/png", "video/mp4"]),
)
entries = st.builds(
    LockEntry,
    key=hexes,
    fields=st.fixed_dictionaries(
        {"prompt": st.text(max_size=30), "variant": st.integers(0, 9), "kind": st.just("image")}
    ),
    outputs=st.lists(outputs, min_size=1, max_size=3).map(tuple),
    record=st.fixed_dictionaries({"cost_usd": st.sampled_from(["0", "0.02"])}).map(
        Provenance.from_json
    ),
)
locks = st.dictionaries(names, entries, max_size=5)


@given(locks)
def test_round_trip(lock: dict[str, LockEntry]) -> None:
    assert parse_lockfile(render_lockfile(lock), "mediafile.lock") == lock


@given(locks, st.randoms(use_true_random=False))
def test_rendering_is_sorted_and_independent_of_insertion_order(
    lock: dict[str, LockEntry], rnd: object
) -> None:
    items = list(lock.items())
    rnd.shuffle(items)  # type: ignore[attr-defined]
    text = render_lockfile(dict(items))
    assert text == render_lockfile(lock)
    assert text.endswith("\n")
    data = json.loads(text)
    assert list(data["assets"]) == sorted(lock)
    assert data["version"] == LOCKFILE_VERSION


def _entry(prompt: str = "A fox") -> LockEntry:
    return LockEntry(
        "a" * 64,
        {"prompt": prompt, "params": {"resolution": "1k", "count": 1}},
        (LockedOutput("out/fox.png", "b" * 64, 10, "image/png"),),
        Provenance.from_json({"cost_usd": "0.02"}),
    )


def test_one_asset_per_line_block_for_diffs() -> None:
    text = render_lockfile({"fox": _entry()})
    assert '  "assets": {\n    "fox": {\n' in text
    assert '"params": {\n          "count": 1,\n          "resolution": "1k"' in text


def test_write_is_atomic_and_skips_identical_content(tmp_path: Path) -> None:
    path = tmp_path / "mediafile.lock"
    write_lockfile(path, {"fox": _entry()})
    first = path.stat().st_mtime_ns
    os.utime(path, ns=(first - 10**9, first - 10**9))
    write_lockfile(path, {"fox": _entry()})
    assert path.stat().st_mtime_ns == first - 10**9  # unchanged content is not rewritten
    write_lockfile(path, {"fox": _entry("A grey fox")})
    assert read_lockfile(path) == {"fox": _entry("A grey fox")}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mediafile.lock"]


def test_a_missing_lockfile_is_empty(tmp_path: Path) -> None:
    assert read_lockfile(tmp_path / "mediafile.lock") == {}


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("{ torn", "not valid JSON"),
        ("[]", "a lockfile is a JSON object"),
        ('{"assets": {}}', "version None"),
        ('{"version": 3, "assets": {}}', "version 3 is not 1 or 2"),
        ('{"version": 1, "assets": []}', "'assets' must be an object"),
        ('{"version": 1, "assets": {"fox": {"outputs": []}}}', "assets.fox: malformed entry"),
        (
            '{"version": 1, "assets": {"fox": {"key": "k", "outputs": [{"path": "x"}]}}}',
            "assets.fox",
        ),
        ('{"version": 1, "assets": {"fox": 3}}', "assets.fox"),
    ],
)
def test_a_malformed_lockfile_is_a_lockfile_error_with_a_hint(
    tmp_path: Path, text: str, needle: str
) -> None:
    path = tmp_path / "mediafile.lock"
    path.write_text(text)
    with pytest.raises(LockfileError) as caught:
        read_lockfile(path)
    assert needle in caught.value.message
    assert caught.value.message.startswith("mediafile.lock")
    assert caught.value.exit_code == 2


def test_every_malformed_lockfile_error_has_a_hint(tmp_path: Path) -> None:
    path = tmp_path / "mediafile.lock"
    for text in ("{ torn", '{"version": 7}', '{"version": 1, "assets": {"a": {}}}'):
        path.write_text(text)
        with pytest.raises(LockfileError) as caught:
            read_lockfile(path)
        assert caught.value.hint, text


def test_a_lockfile_whose_assets_are_not_an_object_has_a_hint(tmp_path: Path) -> None:
    path = tmp_path / "mediafile.lock"
    path.write_text('{"version": 1, "assets": []}')
    with pytest.raises(LockfileError) as caught:
        read_lockfile(path)
    assert caught.value.hint


def test_an_undecodable_lockfile_is_a_lockfile_error(tmp_path: Path) -> None:
    path = tmp_path / "mediafile.lock"
    path.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(LockfileError, match=r"mediafile\.lock"):
        read_lockfile(path)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner),
    max_leaves=8,
)


@given(
    st.dictionaries(
        st.text(min_size=1, max_size=8),  # any name, quotes and non-ASCII included
        st.builds(
            LockEntry,
            key=hexes,
            fields=st.dictionaries(st.text(max_size=6), json_values, max_size=4),
            outputs=st.lists(outputs, max_size=2).map(tuple),
            record=st.dictionaries(st.text(max_size=6), json_values, max_size=4).map(
                Provenance.from_json
            ),
        ),
        max_size=4,
    )
)
def test_rendering_from_cached_entries_is_plain_sorted_json(
    locked: dict[str, LockEntry],
) -> None:
    reference = {"version": LOCKFILE_VERSION, "assets": {n: e.to_json() for n, e in locked.items()}}
    expected = json.dumps(reference, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    assert render_lockfile(locked) == expected
    assert render_lockfile(locked) == expected  # the second time from the cached entries


def test_paced_writer_writes_at_once_then_paces_and_flushes(tmp_path: Path) -> None:
    path = tmp_path / "mediafile.lock"
    now = [100.0]
    entry = LockEntry("a" * 64, {"kind": "image"}, (LockedOutput("out/a.png", "b" * 64, 1, "x"),))
    locked: dict[str, LockEntry] = {}
    writer = PacedWriter(path, locked, lambda: now[0], share=0.1, floor=0.5)
    locked["a"] = entry
    writer.changed()  # the first change is written at once
    assert set(read_lockfile(path)) == {"a"}
    assert not writer.pending
    locked["b"] = entry
    now[0] += 0.1
    writer.changed()  # too soon after the last write: left pending
    assert writer.pending
    assert set(read_lockfile(path)) == {"a"}
    assert writer.due_in() == pytest.approx(0.4)
    now[0] += 0.4
    locked["c"] = entry
    writer.changed()  # due: everything pending is written
    assert set(read_lockfile(path)) == {"a", "b", "c"}
    locked["d"] = entry
    writer.changed()
    writer.flush()  # the end of a run writes what is pending, due or not
    assert set(read_lockfile(path)) == {"a", "b", "c", "d"}
    assert not writer.pending
