"""The provider interface: one request in, output files plus call records out.

The engine hands a provider a `GenerationRequest` whose inputs are already local,
hashed files, and a private `workdir` on the cache's filesystem. The provider
writes its outputs into `workdir` (any names), returns them in order, and says
what each HTTP call cost. The engine verifies, hashes and stores the files;
a provider never touches the cache, the lockfile or `output_dir`.
"""

from __future__ import annotations

import enum
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from imaginebuild.model import Kind, ProviderSettings
from imaginebuild.money import Billing
from imaginebuild.spelled import ProviderName


class Phase(str, enum.Enum):
    """What a step is doing right now, for progress displays."""

    CALLING = "calling"
    POLLING = "polling"
    DOWNLOADING = "downloading"
    RENDERING = "rendering"


ProgressFn = Callable[[Phase, str], None]


def ignore_progress(phase: Phase, detail: str) -> None:
    """A progress callback that drops every report."""


@dataclass(frozen=True)
class InputFile:
    """One input of a request, already on local disk and hashed.

    `url` is the original `https://…` reference when the input came from one,
    so a provider may pass the URL on instead of uploading the bytes.
    """

    path: Path
    sha256: str
    media_type: str  # "image/png", "image/jpeg", "image/webp", "video/mp4"
    url: str | None = None


@dataclass(frozen=True)
class GenerationRequest:
    """Everything a provider needs for one asset's call."""

    asset: str
    kind: Kind
    key: str  # the action key: providers that are deterministic seed from it
    prompt: str
    model: str
    params: Mapping[str, object]  # resolution / aspect_ratio / count / duration, per kind
    inputs: tuple[InputFile, ...]
    workdir: Path  # an empty folder for the outputs, on the cache's filesystem
    # Which take of this key the call makes: 0 for the first, n for the n-th re-roll
    # (`--force`). Deterministic providers mix it into their seed so a re-roll differs.
    roll: int = 0
    # Team coordinator hook (issue 19): awaited with the model before every request that may
    # bill (each POST attempt); it waits for the team's submission slot. None: no team limits.
    gate: Callable[[str], Awaitable[None]] | None = None
    # Record-first hook: called with a call's record the moment an answer shows that it
    # was, or may have been, billed -- before the provider decodes, checks or downloads
    # anything -- so the engine writes the ledger line while nothing else can fail yet.
    # A call reported here is not reported again by its request id. None: nobody listens.
    on_billed: Callable[[CallRecord], None] | None = None


@dataclass(frozen=True)
class CallRecord:
    """One billed HTTP call (or one local render) made for a request."""

    endpoint: str
    model: str
    request_id: str | None = None
    cost_ticks: int | None = None  # as the API reported it; None when it reported none
    retries: int = 0
    started_at: float = 0.0  # Unix time
    duration_s: float = 0.0
    http: Mapping[str, float] = field(default_factory=dict)  # timing breakdown in seconds
    billing: Billing = Billing.BILLED  # MAYBE_BILLED: the answer was lost after the POST
    http_request_id: str | None = None  # the API's `x-request-id` of the submitting call


@dataclass(frozen=True)
class OutputFile:
    """One file a provider wrote into the request's workdir."""

    path: Path
    media_type: str


@dataclass(frozen=True)
class GenerationResult:
    """What a provider made for one request, in output order."""

    outputs: tuple[OutputFile, ...]
    calls: tuple[CallRecord, ...] = ()

    @property
    def request_ids(self) -> tuple[str, ...]:
        """Request ids of every call, in call order."""
        return tuple(c.request_id for c in self.calls if c.request_id)

    @property
    def reported_ticks(self) -> int | None:
        """The billed total the API reported, or None if no call reported a cost."""
        costs = [c.cost_ticks for c in self.calls if c.cost_ticks is not None]
        return sum(costs) if costs else None


@dataclass(frozen=True)
class ProviderContext:
    """What a provider may know of the run it serves."""

    settings: ProviderSettings
    state_dir: Path  # the project's `.imaginebuild/` (its journal: StateLayout.journal)
    env: Mapping[str, str]
    retry_expired: bool = False  # resubmit jobs whose results expired (costs money again)


class Provider(Protocol):
    """A backend that turns a request into media files."""

    name: ProviderName
    max_concurrency: int

    async def generate(
        self, request: GenerationRequest, progress: ProgressFn = ignore_progress
    ) -> GenerationResult:
        """Make the request's outputs in `request.workdir`, or raise a ProviderError."""
        ...

    async def aclose(self) -> None:
        """Release connections and other resources at the end of a run."""
        ...
