"""Where a project keeps its state: every path under `.imaginebuild/`, spelled once.

    <project>/.imaginebuild/
        lock                    the project lock (one writing process at a time)
        statcache.json          file digests by (size, mtime, inode)
        failures.json           the last failure per asset
        orphans.json            outputs of assets the mediafile no longer declares
        ledger.jsonl            the cost ledger
        journal/                in-flight provider jobs, for resuming
        settled-<mediafile>.json  the last up-to-date verdict (the no-op fast path)
        validated               the schema stamp of the last valid mediafile text
        report/                 the default folder of `imaginebuild report`
        cache/                  the local cache, unless IMAGINEBUILD_CACHE_DIR says otherwise

What belongs to the user rather than to a project:

    <user cache>/               IMAGINEBUILD_CACHE_DIR, else $XDG_CACHE_HOME/imaginebuild,
                                else ~/.cache/imaginebuild (the embedded coordinator)
    <user config>/prices.json   IMAGINEBUILD_CONFIG_DIR, else $XDG_CONFIG_HOME/imaginebuild,
                                else ~/.config/imaginebuild (the user's price figures)

A mediafile is known in that state by its absolute path and the digest of its
text (`absolute`, `text_digest`): the loader and the settled snapshot must agree
on both.

Part of the shared vocabulary: paths and names only, no I/O.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

STATE_DIR = ".imaginebuild"


@dataclass(frozen=True)
class StateLayout:
    """The state folder of the project in `root` and the name of each file in it."""

    root: Path

    @classmethod
    def of_mediafile(cls, mediafile: Path) -> StateLayout:
        """The layout of the project a mediafile belongs to (its folder)."""
        return cls(mediafile.parent)

    @property
    def folder(self) -> Path:
        """`<root>/.imaginebuild`."""
        return self.root / STATE_DIR

    @property
    def lock(self) -> Path:
        """The project lock file."""
        return self.folder / "lock"

    @property
    def stat_cache(self) -> Path:
        """The stat cache (shared by the full decision and the no-op fast path)."""
        return self.folder / "statcache.json"

    @property
    def failures(self) -> Path:
        """Asset name → the action key its last failure had."""
        return self.folder / "failures.json"

    @property
    def orphans(self) -> Path:
        """Outputs of pruned lockfile entries, for `imaginebuild clean`."""
        return self.folder / "orphans.json"

    @property
    def ledger(self) -> Path:
        """The append-only cost ledger."""
        return self.folder / "ledger.jsonl"

    @property
    def journal(self) -> Path:
        """The folder of in-flight provider jobs."""
        return self.folder / "journal"

    @property
    def validated(self) -> Path:
        """The schema stamp of the last mediafile text found valid."""
        return self.folder / "validated"

    @property
    def report(self) -> Path:
        """The default output folder of `imaginebuild report`."""
        return self.folder / "report"

    @property
    def default_cache(self) -> Path:
        """The local cache when IMAGINEBUILD_CACHE_DIR is not set."""
        return self.folder / "cache"

    def settled(self, mediafile_name: str) -> Path:
        """The settled snapshot of one mediafile of the project folder."""
        return self.folder / f"settled-{mediafile_name}.json"


def absolute(path: Path) -> Path:
    """The absolute form the project uses for its mediafile (symlinks not followed)."""
    return Path(os.path.abspath(path))  # noqa: PTH100 -- resolve() would follow symlinks


def text_digest(text: str) -> str:
    """The sha256 of a mediafile's text (what its parse depends on, BOM or not)."""
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def _user_dir(env: Mapping[str, str], own: str, xdg: str, fallback: str) -> Path:
    if env.get(own):
        return Path(env[own]).expanduser().resolve()
    base = Path(env[xdg]).expanduser() if env.get(xdg) else Path.home() / fallback
    return base.resolve() / "imaginebuild"


def user_cache_dir(env: Mapping[str, str]) -> Path:
    """The user's imaginebuild cache folder (shared by every project)."""
    return _user_dir(env, "IMAGINEBUILD_CACHE_DIR", "XDG_CACHE_HOME", ".cache")


def user_config_dir(env: Mapping[str, str]) -> Path:
    """The user's imaginebuild settings folder."""
    return _user_dir(env, "IMAGINEBUILD_CONFIG_DIR", "XDG_CONFIG_HOME", ".config")


def user_prices_path(env: Mapping[str, str]) -> Path:
    """The user's price file (`imaginebuild prices --refresh` writes it)."""
    return user_config_dir(env) / "prices.json"
