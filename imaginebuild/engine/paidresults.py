"""Nothing paid for is thrown away: a billed call's outputs are kept by action key until
they are stored, and a later run stores a kept result instead of paying again.

The runner links a call's outputs into the cache's `paid/` area (`store.paid`) as
they arrive, stores them, and then drops the entry. When checking or storing
fails, the entry stays with the reason; the next run that needs the key takes
it from there without a call (`--force` discards it and pays for a new take).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from imaginebuild.providers.base import GenerationResult, OutputFile
from imaginebuild.store.paid import PaidResults


def keep_received(
    paid: PaidResults, key: str, result: GenerationResult, record: Mapping[str, Any]
) -> bool:
    """Link a paid result's outputs under `key` before anything can fail; False when
    the file system refused (the work files are then the only copy)."""
    try:
        paid.keep(key, [(o.path, o.media_type) for o in result.outputs], record, "not stored yet")
    except OSError:
        return False
    return True


def take_kept(
    paid: PaidResults, key: str, workdir: Path
) -> tuple[GenerationResult, Mapping[str, Any], str] | None:
    """A kept result of `key` as work files in `workdir` (links: the kept entry stays until
    the result is stored), its provenance record and why it was kept; None when there is
    none or it cannot be linked."""
    kept = paid.get(key)
    if kept is None:
        return None
    outputs = []
    try:
        for index, (path, media) in enumerate(zip(kept.files, kept.media_types, strict=True)):
            work = workdir / f"kept-{index}{path.suffix}"
            os.link(path, work)
            outputs.append(OutputFile(work, media))
    except OSError:
        for output in outputs:
            with contextlib.suppress(OSError):
                output.path.unlink()
        return None
    return GenerationResult(tuple(outputs)), kept.record, kept.reason
