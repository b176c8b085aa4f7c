"""The facade: a loaded mediafile with its lockfile, caches and the decisions about it.

    load(path) ─▶ Project ─┬─ plan()/status()/why()/show()  survey: the assessor decides
                           ├─ run()                   run: the no-op path, else engine.runner
                           ├─ checkout()/pull()/push() sync: lockfile ↔ local and remote cache
                           ├─ gc()/gc_remote()/clean() sync: garbage collection, orphans
                           ├─ takes()/pick()/accept()/adopt()  takes: no call
                           └─ prices()/refresh_prices() the price table; xAI's live prices
    wiring: what they share (DAG, project state, store, remote, assessor, materializer)

Layer 4: it wires the engine to one mediafile on disk; the CLI and the public API
build on it. May import: the shared vocabulary, `mediafile`, `store`, `providers`,
`remote`, `coordinator` and `engine`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from imaginebuild.model import InputPolicy
from imaginebuild.project.price_commands import PriceCommands
from imaginebuild.project.run import RunCommands
from imaginebuild.project.survey import SurveyCommands
from imaginebuild.project.sync import GcResult, SyncCommands
from imaginebuild.project.takes import TakeCommands

__all__ = ["GcResult", "Project", "load"]


class Project(SurveyCommands, RunCommands, SyncCommands, TakeCommands, PriceCommands):
    """One mediafile with its lockfile, cache and providers."""


def load(
    path: str | os.PathLike[str], *, policy: InputPolicy | None = None, **kwargs: Any
) -> Project:
    """Load and validate a mediafile; raises MediafileError with every problem found.

    `policy` says what inputs outside the project the user allows (default: the
    environment's IMAGINEBUILD_ALLOW_READ / IMAGINEBUILD_ALLOW_HTTP_LOOPBACK).
    """
    from imaginebuild.mediafile.load import load_mediafile

    if policy is None:
        policy = InputPolicy.from_env(kwargs.get("env") or os.environ)
    return Project(load_mediafile(Path(path), policy), **kwargs)
