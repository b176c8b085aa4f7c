"""What the fake xAI server keeps: the requests it received, the calls it billed, the
video jobs and image orders it is working on, and the result files it serves."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from imaginebuild.testing.fake_faults import FaultKind, Route


@dataclass(frozen=True)
class LoggedRequest:
    """One request the fake received (the Authorization value is never kept)."""

    number: int
    method: str
    path: str
    route: Route
    headers: Mapping[str, str]
    has_auth: bool
    body: object | None
    status: int | None = None  # what was answered; None for a reset or hang
    at: float = 0.0
    cut_short: bool = False  # the body ended before its Content-Length (the client died)


@dataclass(frozen=True)
class Bill:
    """One billed call."""

    route: Route
    ticks: int
    request_id: str | None = None
    prompt: str = ""  # what the billed request asked for (tests tell calls apart by it)


@dataclass
class VideoJob:
    """A submitted video job: what it makes, how it ends, and how often it was polled."""

    request_id: str
    route: Route
    model: str
    duration: int
    resolution: str
    aspect: str
    submitted_at: float
    ticks: int
    fate: FaultKind | None = None
    fate_message: str = ""
    polls: int = 0
    file_name: str | None = None
    prompt: str = ""
    size: tuple[int, int] | None = None  # the input clip's size an edit or extension keeps


@dataclass
class ImageOrder:
    """What an image request asked for (kept to serve a deferred request later)."""

    prompt: str
    model: str
    count: int
    resolution: str
    aspect: str
    response_format: str
    moderated: bool
    data: list[dict[str, object]] | None = None


@dataclass
class ServedFile:
    """A result file behind a URL: its bytes in memory or a file on disk, until it expires."""

    content_type: str
    expires_at: float
    data: bytes | None = None
    path: Path | None = None

    def size(self) -> int:
        """Its length in bytes."""
        return len(self.data) if self.data is not None else (self.path or Path()).stat().st_size
