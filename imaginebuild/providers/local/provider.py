"""The offline `local` provider: real PNG and MP4 for all seven kinds, deterministic from the key.

No network and no key: every picture and frame is drawn from a seed derived from
the request's action key (same key → same bytes; see `render.seed`), at the size
the media API would return (see `render.geometry`). Rendering runs in a worker
thread so the event loop stays free; outputs are written atomically into the
request's workdir.
"""

from __future__ import annotations

import asyncio
import os
import time

from imaginebuild.errors import CallInfo, InputError, ProviderError
from imaginebuild.providers.base import (
    CallRecord,
    GenerationRequest,
    GenerationResult,
    OutputFile,
    Phase,
    ProgressFn,
    ProviderContext,
    ignore_progress,
)
from imaginebuild.spelled import ProviderName


class LocalProvider:
    """Renders every kind offline with Pillow and PyAV; costs nothing, needs no key."""

    name = ProviderName.LOCAL

    def __init__(self, context: ProviderContext) -> None:
        self.context = context
        self.max_concurrency = context.settings.max_concurrency or os.cpu_count() or 1

    async def generate(
        self, request: GenerationRequest, progress: ProgressFn = ignore_progress
    ) -> GenerationResult:
        """Render the request's outputs into its workdir (in a worker thread)."""
        progress(Phase.RENDERING, request.kind.value)
        started_at, clock = time.time(), time.perf_counter()
        outputs = await asyncio.to_thread(render, request)
        call = CallRecord(
            endpoint=f"local:{request.kind.value}",
            model=request.model,
            request_id=None,
            cost_ticks=0,
            started_at=started_at,
            duration_s=time.perf_counter() - clock,
        )
        return GenerationResult(outputs=outputs, calls=(call,))

    async def aclose(self) -> None:
        """Nothing to release: the local provider holds no connections."""


def render(request: GenerationRequest) -> tuple[OutputFile, ...]:
    """Render a request synchronously; foreign errors become InputError/ProviderError."""
    from imaginebuild.providers.local import kinds  # Pillow and PyAV load only when rendering

    request.workdir.mkdir(parents=True, exist_ok=True)
    try:
        return kinds.render(request)
    except (InputError, ProviderError):
        raise
    except Exception as error:  # PyAV and Pillow raise many unrelated types on bad data
        info = CallInfo(asset=request.asset, endpoint=f"local:{request.kind.value}")
        raise ProviderError(
            f"local render of {request.asset!r} failed: {error}", info=info
        ) from error
