"""Which coordinator a process uses: read from the environment only, never from a mediafile.

    IMAGINEBUILD_COORDINATOR   unset        embedded, `<user cache>/coordinator.sqlite3`
                               sqlite:PATH  embedded, in that file
                               redis://…    Redis (also rediss://, unix://), for many machines
    IMAGINEBUILD_TEAM          the team id namespacing the Redis keys (default "default")
    IMAGINEBUILD_COORDINATOR_TTL  seconds a silent runner stays alive (default 60)

The user cache is `IMAGINEBUILD_CACHE_DIR` when set (a cache shared by every
project), else `$XDG_CACHE_HOME/imaginebuild`, else `~/.cache/imaginebuild`.
A pull request edits the mediafile, not the environment of the machines that run
it, and the caps live in the coordinator itself: it cannot raise them.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from imaginebuild.coordinator.base import DEFAULT_TTL_S, Coordinator
from imaginebuild.errors import UsageError
from imaginebuild.layout import user_cache_dir

ENV_COORDINATOR = "IMAGINEBUILD_COORDINATOR"
ENV_TEAM = "IMAGINEBUILD_TEAM"
ENV_TTL = "IMAGINEBUILD_COORDINATOR_TTL"


def ttl_s(env: Mapping[str, str]) -> float:
    """The runner TTL in seconds (`IMAGINEBUILD_COORDINATOR_TTL`, default 60)."""
    text = env.get(ENV_TTL, "").strip()
    if not text:
        return DEFAULT_TTL_S
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0.1 <= value <= 86_400:
        raise UsageError(f"{ENV_TTL}={text!r} must be a number of seconds from 0.1 to 86400")
    return value


def team_id(env: Mapping[str, str]) -> str:
    """The team id (`IMAGINEBUILD_TEAM`), letters, digits, `-`, `_` and `.` only."""
    team = env.get(ENV_TEAM, "").strip() or "default"
    if not all(c.isalnum() or c in "-_." for c in team) or len(team) > 64:
        raise UsageError(f"{ENV_TEAM}={team!r}: use up to 64 letters, digits, '-', '_' or '.'")
    return team


_SCHEMES = ("redis://", "rediss://", "unix://", "sqlite:")


def check_settings(env: Mapping[str, str]) -> None:
    """Refuse a malformed coordinator setting (UsageError, exit 2) before a run starts any
    step, without connecting to anything: the TTL, the team id and the URL's kind."""
    ttl_s(env)
    team_id(env)
    spec = env.get(ENV_COORDINATOR, "").strip()
    if spec and not spec.startswith(_SCHEMES):
        raise _not_a_coordinator(spec)


def _not_a_coordinator(spec: str) -> UsageError:
    return UsageError(
        f"{ENV_COORDINATOR}={spec!r} is not a coordinator",
        hint="use redis://HOST:6379/0 for a team, sqlite:PATH for a file, or leave it unset",
    )


def open_coordinator(env: Mapping[str, str]) -> Coordinator:
    """The coordinator the environment names; CoordinatorUnavailable if it cannot be opened.

    The Redis client and the rate-limit library are imported only here, only for a
    Redis URL.
    """
    spec = env.get(ENV_COORDINATOR, "").strip()
    team = team_id(env)
    if spec.startswith(("redis://", "rediss://", "unix://")):
        from imaginebuild.coordinator.redisteam import RedisCoordinator

        return RedisCoordinator(spec, team=team)
    from imaginebuild.coordinator.embedded import EmbeddedCoordinator

    if not spec:
        return EmbeddedCoordinator(user_cache_dir(env) / "coordinator.sqlite3", team=team)
    if spec.startswith("sqlite:"):
        path = spec.removeprefix("sqlite:").removeprefix("//")
        return EmbeddedCoordinator(Path(path).expanduser().resolve(), team=team)
    raise _not_a_coordinator(spec)
