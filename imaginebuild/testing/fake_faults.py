"""What the fake xAI server can be scripted with: its routes, faults and price table."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field


class Route(str, enum.Enum):
    """The endpoints of the fake, named for fault scripting and the request log."""

    IMAGES = "images"  # POST /v1/images/generations
    EDITS = "edits"  # POST /v1/images/edits
    VIDEOS = "videos"  # POST /v1/videos/generations
    VIDEO_EDITS = "video_edits"  # POST /v1/videos/edits
    EXTENSIONS = "extensions"  # POST /v1/videos/extensions
    POLL = "poll"  # GET /v1/videos/{request_id}
    IMAGE_POLL = "image_poll"  # GET /v1/images/{request_id} (deferred images)
    MODELS = "models"  # GET /v1/image-generation-models, /v1/video-generation-models
    DOWNLOAD = "download"  # GET /files/{name}  (result URLs; no auth, expiring)
    UNKNOWN = "unknown"


class FaultKind(str, enum.Enum):
    """What a scripted fault does (see `Fault`'s constructors)."""

    HTTP = "http"
    RESET = "reset"
    HANG = "hang"
    SLOW = "slow"
    TRICKLE = "trickle"
    TRUNCATED = "truncated"
    MALFORMED_JSON = "malformed_json"
    EXPIRED_URL = "expired_url"
    CORRUPT = "corrupt"
    WRONG_TYPE = "wrong_type"
    MODERATION = "moderation"
    BLOCKED = "blocked"
    JOB_FAILED = "job_failed"
    JOB_EXPIRED = "job_expired"
    UNKNOWN_JOB = "unknown_job"
    UNAUTHORIZED = "unauthorized"


@dataclass(frozen=True)
class Fault:
    """One scripted misbehaviour, consumed by one request."""

    kind: FaultKind
    status: int = 0
    retry_after: str | None = None
    seconds: float = 0.0
    message: str = ""

    @classmethod
    def http(cls, status: int, message: str = "", retry_after: str | None = None) -> Fault:
        """Answer with this status and an xAI error body (e.g. 500, 502, 503, 504, 400)."""
        return cls(FaultKind.HTTP, status=status, message=message, retry_after=retry_after)

    @classmethod
    def rate_limited(cls, retry_after: str | None = "1") -> Fault:
        """Answer 429 with this `Retry-After` (None: no header)."""
        return cls(FaultKind.HTTP, status=429, retry_after=retry_after)

    @classmethod
    def reset(cls) -> Fault:
        """Close the connection without an answer (a TCP reset)."""
        return cls(FaultKind.RESET)

    @classmethod
    def hang(cls, seconds: float = 3600.0) -> Fault:
        """Read the request and never answer (until the server stops or `seconds` pass)."""
        return cls(FaultKind.HANG, seconds=seconds)

    @classmethod
    def slow(cls, seconds: float = 0.2) -> Fault:
        """Send the answer's body in chunks with `seconds` between them."""
        return cls(FaultKind.SLOW, seconds=seconds)

    @classmethod
    def trickle(cls, seconds: float = 0.05) -> Fault:
        """Send the answer's body one byte at a time with `seconds` between bytes (a
        slow-loris server: always alive, never done)."""
        return cls(FaultKind.TRICKLE, seconds=seconds)

    @classmethod
    def truncated(cls) -> Fault:
        """Announce the full Content-Length, send half of the body, then close."""
        return cls(FaultKind.TRUNCATED)

    @classmethod
    def malformed_json(cls) -> Fault:
        """Answer 200 with a body that is not JSON."""
        return cls(FaultKind.MALFORMED_JSON)

    @classmethod
    def expired_url(cls) -> Fault:
        """On a download: the result URL has expired (404)."""
        return cls(FaultKind.EXPIRED_URL)

    @classmethod
    def corrupt(cls) -> Fault:
        """On a download: serve bytes that do not decode, under the right content type."""
        return cls(FaultKind.CORRUPT)

    @classmethod
    def wrong_type(cls) -> Fault:
        """On a download: serve the file as `text/html`."""
        return cls(FaultKind.WRONG_TYPE)

    @classmethod
    def moderation(cls) -> Fault:
        """Withhold the output: images get `respect_moderation: false`, a video job
        ends `done` with `respect_moderation: false` and no URL."""
        return cls(FaultKind.MODERATION)

    @classmethod
    def blocked(cls, reason: str = "prompt violates the content policy") -> Fault:
        """On an image route: answer 200 with a `block_reason` and no images."""
        return cls(FaultKind.BLOCKED, message=reason)

    @classmethod
    def job_failed(
        cls, code: str = "internal_error", message: str = "video generation failed"
    ) -> Fault:
        """The video job ends with status `failed` and this error."""
        return cls(FaultKind.JOB_FAILED, status=0, message=f"{code}\n{message}")

    @classmethod
    def job_expired(cls) -> Fault:
        """The video job reports status `expired`."""
        return cls(FaultKind.JOB_EXPIRED)

    @classmethod
    def unknown_job(cls) -> Fault:
        """On a poll: 404, the server does not know the request id."""
        return cls(FaultKind.UNKNOWN_JOB)

    @classmethod
    def unauthorized(cls) -> Fault:
        """Answer 401 as for a missing or invalid token."""
        return cls(FaultKind.UNAUTHORIZED)


@dataclass(frozen=True)
class PriceTable:
    """What the fake bills, in ticks (1 USD = 1e10 ticks); injectable for comparisons."""

    image_ticks: int = 200_000_000  # $0.02 per output image
    input_image_ticks: int = 20_000_000  # $0.002 per input image of an edit
    video_ticks_per_second: Mapping[str, int] = field(
        default_factory=lambda: {"480p": 500_000_000, "720p": 700_000_000}
    )
    video_input_image_ticks: int = 20_000_000  # $0.002 per first-frame or reference image
    video_input_second_ticks: int = 100_000_000  # $0.01 per second of a video to edit

    def images(self, count: int, inputs: int = 0) -> int:
        """Ticks for `count` output images made from `inputs` input images."""
        return count * self.image_ticks + inputs * self.input_image_ticks

    def video(
        self, seconds: int, resolution: str, input_images: int = 0, input_seconds: int = 0
    ) -> int:
        """Ticks for `seconds` of video at `resolution`, plus its inputs' fees."""
        rate = self.video_ticks_per_second.get(resolution, self.video_ticks_per_second["480p"])
        fees = input_images * self.video_input_image_ticks
        return seconds * rate + fees + input_seconds * self.video_input_second_ticks


def parse_fault(spec: str) -> tuple[Route, Fault]:
    """Parse `ROUTE=KIND[:ARG]` from the command line into a route and a fault."""
    route_name, sep, rest = spec.partition("=")
    if not sep:
        raise ValueError(f"expected ROUTE=SPEC, got {spec!r}")
    route = Route(route_name.strip())
    kind_name, _, arg = rest.partition(":")
    if kind_name == "rate_limited":
        return route, Fault.rate_limited(arg or "1")
    kind = FaultKind(kind_name.strip())
    if kind is FaultKind.HTTP:
        return route, Fault.http(int(arg))
    if kind is FaultKind.SLOW:
        return route, Fault.slow(float(arg or "0.2"))
    if kind is FaultKind.TRICKLE:
        return route, Fault.trickle(float(arg or "0.05"))
    if kind is FaultKind.HANG:
        return route, Fault.hang(float(arg or "3600"))
    return route, Fault(kind)
