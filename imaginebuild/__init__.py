"""imaginebuild: a build system for generated media.

The public API (everything else may change):

    import imaginebuild
    project = imaginebuild.load("mediafile.yaml")
    project.status(); project.plan(); project.run(options=imaginebuild.RunOptions(jobs=4))

Names are imported on first use, so `import imaginebuild` (and the CLI's
start-up) stays light.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from imaginebuild.version import __version__

__all__ = [
    "BudgetExceeded",
    "CommandResult",
    "Diagnostic",
    "ImaginebuildError",
    "Interrupted",
    "LockfileError",
    "LockfileWouldChange",
    "MediafileError",
    "OfflineCallNeeded",
    "PolicyError",
    "Project",
    "ProviderError",
    "RunOptions",
    "StoreError",
    "UsageError",
    "__version__",
    "load",
]

_HOMES = {
    "load": "imaginebuild.project",
    "Project": "imaginebuild.project",
    "RunOptions": "imaginebuild.engine.facts",
    "CommandResult": "imaginebuild.engine.results",
}

if TYPE_CHECKING:
    from imaginebuild.errors import (
        BudgetExceeded,
        Diagnostic,
        ImaginebuildError,
        Interrupted,
        LockfileError,
        LockfileWouldChange,
        MediafileError,
        OfflineCallNeeded,
        PolicyError,
        ProviderError,
        StoreError,
        UsageError,
    )
    from imaginebuild.engine.facts import RunOptions
    from imaginebuild.project import Project, load
    from imaginebuild.engine.results import CommandResult


def __getattr__(name: str) -> Any:
    """Import a public name from its module the first time it is used."""
    if name not in __all__:
        raise AttributeError(f"module 'imaginebuild' has no attribute {name!r}")
    module = importlib.import_module(_HOMES.get(name, "imaginebuild.errors"))
    value = getattr(module, name)
    globals()[name] = value
    return value
