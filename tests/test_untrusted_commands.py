"""Each hostile entry against every command that reads it, from both sides of the guard.

`test_untrusted` attacks one command at a time; here each kind of hostile entry (a
lockfile output path leaving the project, a lockfile hash that climbs out of the
cache, a local action-cache entry that does the same) meets every command a user
would run on it: `run`, `checkout`, `status`, `show`, `report` and `gc` (of these,
`run` and `gc` read the action cache; the others must not be led by it either).
After each command, nothing outside the project and the cache changed (no write)
and the canary of the files the entry points at appears in nothing imaginebuild
wrote or printed (no read).
"""

from __future__ import annotations

import hashlib
import json

import pytest
from test_untrusted import CLIMB_TO_PRECIOUS, World, built, cli, world

__all__ = ["world"]  # the fixture, shared with test_untrusted

COMMANDS = {
    "run": ["run"],
    "checkout": ["checkout"],
    "status": ["status"],
    "show": ["show", "a"],
    "report": ["report", "-o", "site"],
    "gc": ["gc", "--yes", "--min-age", "0"],
}
PNG = b"\x89PNG"


def built_image(world: World) -> bytes:
    """The bytes `a` was built with, from the cache (the lockfile names their hash)."""
    sha = world.lock()["assets"]["a"]["outputs"][0]["sha256"]
    return (world.cache / "blobs" / sha[:2] / sha).read_bytes()


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_a_lockfile_output_path_outside_is_neither_read_nor_written(
    command: str, world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    built(world, capsys)
    good = (world.project / "out" / "a.png").read_bytes()
    secret = world.private_png.read_bytes()
    lock = world.lock()
    out = lock["assets"]["a"]["outputs"][0]
    out.update(path="../victim/private.png", sha256=hashlib.sha256(secret).hexdigest())
    out["bytes"] = len(secret)
    world.write_lock(lock)
    (world.project / "out" / "a.png").unlink()
    code, text = cli(*COMMANDS[command])
    assert code in (0, 1, 2), text  # never 70: a hostile entry is bad input, not a crash
    assert "output path '../victim/private.png' leaves the project" in text
    world.assert_untouched(text)
    if command == "run":  # the entry was ignored: `a` came back from its key, not the secret
        assert (world.project / "out" / "a.png").read_bytes() == good


@pytest.mark.parametrize("command", ["run", "report"])
def test_a_lockfile_hash_climbing_out_of_the_cache_is_neither_read_nor_written(
    command: str, world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    built(world, capsys)
    lock = world.lock()
    lock["assets"]["a"]["outputs"][0]["sha256"] = CLIMB_TO_PRECIOUS
    world.write_lock(lock)
    (world.project / "out" / "a.png").unlink()
    code, text = cli(*COMMANDS[command])
    assert code == 0, text
    assert "is not a sha256" in text
    world.assert_untouched(text)
    if command == "run":
        assert (world.project / "out" / "a.png").read_bytes().startswith(PNG)


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_an_action_cache_entry_climbing_out_is_neither_read_nor_written(
    command: str, world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    import diskcache

    built(world, capsys)
    good = built_image(world)
    key = world.lock()["assets"]["a"]["key"]
    entry = {
        "v": 1,
        "key": key,
        "outputs": [{"sha256": CLIMB_TO_PRECIOUS, "bytes": 9, "media_type": "image/png"}],
        "record": {},
        "takes": [],
    }
    with diskcache.Cache(str(world.cache / "actions")) as actions:
        actions.set(key, json.dumps(entry))
    world.lock_path.unlink()  # nothing but the poisoned entry says what `a` is
    (world.project / "out" / "a.png").unlink()
    code, text = cli(*COMMANDS[command])
    assert code in (0, 1, 2), text  # never 70: a hostile entry is bad input, not a crash
    world.assert_untouched(text)
    if command == "run":  # the entry was dropped, and said so: `a` was built again, the same
        assert f"dropped a malformed action cache entry ({key[:12]}…)" in text
        assert (world.project / "out" / "a.png").read_bytes() == good
