"""Atomic writes tested as atomicity: a reader hammers each file while it is rewritten.

Each test rewrites one file many times with contents of very different sizes
while a reader thread reads it in a tight loop; every read must be one of the
versions written (or, for the append-only ledger, a whole-line prefix of it).
The writer waits until the reader has read since the last rewrite, so reads and
writes interleave by construction, and the test asserts the reader overlapped
every rewrite before it trusts a count of zero torn reads.
"""

from __future__ import annotations

import hashlib
import threading
import uuid
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from conftest import wait_for_state

from imaginebuild.provenance import Provenance
from imaginebuild.store import settled
from imaginebuild.store.cache import ActionEntry, BlobRef, Store
from imaginebuild.store.ledger import Ledger, LedgerEntry
from imaginebuild.store.lockfile import (
    LockedOutput,
    LockEntry,
    PacedWriter,
    render_lockfile,
    write_lockfile,
)

REWRITES = 40
MISSING = b"<missing>"


@dataclass
class Reader:
    """A thread reading with `read` until stopped; keeps what it saw that `valid` rejects."""

    read: Callable[[], bytes]
    valid: Callable[[bytes], bool]
    reads: int = 0
    torn: list[bytes] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def loop(self) -> None:
        while not self.stop.is_set():
            data = self.read()
            if not self.valid(data):
                self.torn.append(data[:120])
            self.reads += 1


@dataclass(frozen=True)
class Hammered:
    """What a hammering saw: reads made, torn reads, rewrites done."""

    reads: int
    torn: list[bytes]
    rewrites: int


def hammer(
    read: Callable[[], bytes], valid: Callable[[bytes], bool], rewrite: Callable[[int], None]
) -> Hammered:
    """Call `rewrite(i)` REWRITES times while a reader thread reads in a loop."""
    reader = Reader(read, valid)
    thread = threading.Thread(target=reader.loop, daemon=True)
    thread.start()
    try:
        for i in range(REWRITES):
            before = reader.reads
            wait_for_state(lambda: reader.reads > before, "a read since the last rewrite")  # noqa: B023
            rewrite(i)
    finally:
        reader.stop.set()
        thread.join()
    return Hammered(reader.reads, reader.torn, REWRITES)


def assert_atomic(seen: Hammered) -> None:
    """Zero torn reads, from a reader that really overlapped the rewrites."""
    assert seen.reads > seen.rewrites, "harness: the reader did not keep up with the writer"
    assert seen.torn == [], f"{len(seen.torn)} torn reads in {seen.reads}, first: {seen.torn[0]!r}"


def read_or_missing(path: Path) -> Callable[[], bytes]:
    """A raw reader of `path` (a missing file reads as MISSING, itself a torn read)."""

    def read() -> bytes:
        try:
            return path.read_bytes()
        except FileNotFoundError:
            return MISSING

    return read


def one_of(versions: Collection[bytes]) -> Callable[[bytes], bool]:
    """Valid reads are exactly the versions written."""
    return lambda data: data in versions


def lock_entries(count: int, tag: str) -> dict[str, LockEntry]:
    """`count` lockfile entries; `tag` makes the versions differ."""
    return {
        f"asset{i:05d}": LockEntry(
            key=hashlib.sha256(f"{tag}{i}".encode()).hexdigest(),
            fields={"prompt": f"{tag} prompt {i}", "kind": "image"},
            outputs=(
                LockedOutput(
                    f"out/asset{i}.png",
                    hashlib.sha256(f"o{tag}{i}".encode()).hexdigest(),
                    1000 + i,
                    "image/png",
                ),
            ),
            record=Provenance.from_json({"cost_usd": "0.02"}),
        )
        for i in range(count)
    }


# Two versions far apart in size: a reader that catches a rewrite half-way sees a length
# (or a prefix) that neither version has.
SMALL, LARGE = lock_entries(3, "small"), lock_entries(1000, "large")


def test_lockfile_rewrites_are_never_seen_torn(tmp_path: Path) -> None:
    path = tmp_path / "mediafile.lock"
    versions = [SMALL, LARGE]
    write_lockfile(path, versions[1])
    texts = {render_lockfile(v).encode() for v in versions}
    seen = hammer(
        read_or_missing(path), one_of(texts), lambda i: write_lockfile(path, versions[i % 2])
    )
    assert_atomic(seen)


def test_the_paced_lockfile_writer_never_leaves_a_torn_lockfile(tmp_path: Path) -> None:
    path = tmp_path / "mediafile.lock"
    entries: dict[str, LockEntry] = dict(SMALL)
    now = [0.0]
    writer = PacedWriter(path, entries, clock=lambda: now[0])
    valid = {render_lockfile(entries).encode()}
    writer.changed()  # the first write is due at once
    big = list(LARGE.items())

    def step(i: int) -> None:  # a finished step: one more entry, or a large batch
        entries.update(big[i * 50 : (i + 1) * 50] if i % 2 else big[i : i + 1])
        valid.add(render_lockfile(entries).encode())
        now[0] += 1.0  # the pacing interval has passed: this change is written at once
        writer.changed()

    seen = hammer(read_or_missing(path), one_of(valid), step)
    writer.flush()
    assert_atomic(seen)
    assert path.read_bytes() == render_lockfile(entries).encode()


def ledger_entry(i: int) -> LedgerEntry:
    """A ledger entry whose size varies with `i` (long request ids every few lines)."""
    return LedgerEntry(
        time="2026-11-24T10:15:02.481Z", run_id="r1", asset=f"a{i}", key=f"key-{i}",
        provider="xai", model="grok-imagine-image", endpoint="/v1/images/generations",
        request_id=f"req-{i}-" + "x" * (3000 * (i % 3)), ticks=i, estimated=False,
        retries=0, duration_s=1.0,
    )  # fmt: skip


def test_ledger_appends_are_never_read_as_a_torn_entry(tmp_path: Path) -> None:
    """The ledger is append-only: a reader may catch part of one `write` in the bytes
    (the OS does not make a multi-page write atomic to readers), so the guarantee is
    the reader's: it returns a prefix of the appended entries and never counts an
    append in progress as an unreadable line."""
    ledger = Ledger(tmp_path / "ledger.jsonl")
    appended = [ledger_entry(i) for i in range(REWRITES)]

    def read() -> bytes:
        reader = Ledger(ledger.path)
        got = reader.entries()
        if reader.skipped == 0 and got == appended[: len(got)]:
            return b"ok"
        return f"{len(got)} entries, {reader.skipped} skipped".encode()

    seen = hammer(read, lambda data: data == b"ok", lambda i: ledger.append(appended[i]))
    assert_atomic(seen)
    assert ledger.entries() == appended


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    """An empty local cache."""
    yield Store(tmp_path / "cache")


def test_action_entry_rewrites_are_never_seen_torn(store: Store, tmp_path: Path) -> None:
    def blob(size: int) -> BlobRef:
        src = tmp_path / f"src-{uuid.uuid4().hex}"
        src.write_bytes(hashlib.sha256(str(size).encode()).digest() * (size // 32 + 1))
        return store.put_file(src, "image/png", move=True)

    key = "a" * 64
    entries = [
        ActionEntry(
            key=key,
            outputs=(blob(100),),
            record=Provenance.from_json({"asset": "x", "prompt": "p"}),
        ),
        ActionEntry(
            key=key,
            outputs=tuple(blob(200 + i) for i in range(20)),
            record=Provenance.from_json({"asset": "x", "prompt": "p" * 20_000}),
        ),
    ]
    store.put_action(entries[0])
    reader_store = Store(store.folder)  # another handle, as another process would have
    encoded = {repr(e).encode() for e in entries}

    def read() -> bytes:
        return repr(reader_store.get_action(key)).encode()

    seen = hammer(read, one_of(encoded), lambda i: store.put_action(entries[(i + 1) % 2]))
    assert_atomic(seen)


def test_the_settled_snapshot_is_never_seen_torn(tmp_path: Path) -> None:
    mediafile = tmp_path / "mediafile.yaml"
    mediafile.write_text("version: 1\n")
    (tmp_path / ".imaginebuild").mkdir()
    path = settled.snapshot_path(mediafile)
    files = {tmp_path / "mediafile.yaml": "0" * 64}
    few = [settled.SettledAsset("a", "image", "k" * 64, ("out/a.png",))]
    many = [
        settled.SettledAsset(f"a{i}", "image", f"{i:064d}", (f"out/a{i}.png",)) for i in range(1000)
    ]
    versions = [few, many]
    valid: set[bytes] = set()
    for assets in versions:
        settled.write(mediafile, "stamp", files, assets)
        valid.add(path.read_bytes())
    seen = hammer(
        read_or_missing(path), one_of(valid),
        lambda i: settled.write(mediafile, "stamp", files, versions[i % 2]),
    )  # fmt: skip
    assert_atomic(seen)
