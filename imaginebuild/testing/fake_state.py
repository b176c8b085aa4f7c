"""What the fake xAI server knows and has been told: its settings, the faults scripted for
it, and everything it received, billed, queued and served (read by tests, written by the
request handler). The HTTP server that serves this state is `fake_xai.FakeXai`."""

from __future__ import annotations

import hashlib
import json
import threading
import time
import uuid
from collections import defaultdict, deque
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TypedDict

from imaginebuild.testing.fake_faults import Fault, PriceTable, Route
from imaginebuild.testing.fake_ratelimit import RateLimits
from imaginebuild.testing.fake_records import (
    Bill,
    ImageOrder,
    LoggedRequest,
    ServedFile,
    VideoJob,
)

VIDEO_SUBMISSIONS = frozenset({Route.VIDEOS, Route.VIDEO_EDITS, Route.EXTENSIONS})


def latency_for(prompt: str, low: float, high: float | None = None, seed: str = "") -> float:
    """Seconds a request with `prompt` takes: `low`, or, when `high` is above it, a value
    in [low, high] drawn from sha256(seed, prompt) — the same for the same prompt and seed."""
    if high is None or high <= low:
        return low
    digest = hashlib.sha256(f"{seed}\0{prompt}".encode()).digest()
    return low + (high - low) * (int.from_bytes(digest[:8], "big") / 2**64)


class FakeSettings(TypedDict, total=False):
    """The keyword arguments of `FakeState` (and of `FakeXai` beside its host and port)."""

    api_key: str | None
    pending_polls: int
    job_latency: float
    job_latency_max: float | None
    image_latency: float
    image_latency_max: float | None
    latency_seed: str
    url_ttl: float
    image_format: str
    full_size: bool
    b64_data_uri: bool
    video_file: Path | None
    prices: PriceTable | None
    rate_limits: Mapping[str, int] | None
    no_deferred_models: frozenset[str]
    model_prices: Mapping[str, Mapping[str, object]] | None


class FakeState:
    """The fake's settings (plain attributes a test may change between requests), its
    scripted faults and its records, all behind one lock."""

    def __init__(
        self,
        *,
        api_key: str | None = None,
        pending_polls: int = 1,
        job_latency: float = 0.0,
        job_latency_max: float | None = None,
        image_latency: float = 0.0,
        image_latency_max: float | None = None,
        latency_seed: str = "",
        url_ttl: float = 600.0,
        image_format: str = "jpeg",
        full_size: bool = True,
        b64_data_uri: bool = False,
        video_file: Path | None = None,
        prices: PriceTable | None = None,
        rate_limits: Mapping[str, int] | None = None,
        no_deferred_models: frozenset[str] = frozenset(),
        model_prices: Mapping[str, Mapping[str, object]] | None = None,
    ) -> None:
        self.api_key = api_key
        self.no_deferred_models = no_deferred_models  # answer 400 to `deferred` for these
        self.model_prices = dict(model_prices or {})  # extra fields of the model endpoints
        self.rate_limits = RateLimits(rate_limits or {})
        self.pending_polls = pending_polls
        self.job_latency = job_latency
        self.job_latency_max = job_latency_max
        self.image_latency = image_latency
        self.image_latency_max = image_latency_max
        self.latency_seed = latency_seed
        self.url_ttl = url_ttl
        self.image_format = image_format
        self.full_size = full_size
        self.b64_data_uri = b64_data_uri
        self.video_file = video_file
        self.prices = prices or PriceTable()
        self.stopping = threading.Event()  # set when the server stops: hanging requests end
        self._lock = threading.Lock()
        self._log: list[LoggedRequest] = []
        self._bills: list[Bill] = []
        self._answers: list[tuple[Route, int, bytes]] = []
        self._faults: dict[Route, deque[Fault]] = defaultdict(deque)
        self._numbered: dict[int, Fault] = {}
        self._jobs: dict[str, VideoJob] = {}
        self._image_jobs: dict[str, tuple[ImageOrder, float, int]] = {}
        self._files: dict[str, ServedFile] = {}
        self._counter = 0
        self._media_cache: dict[tuple[object, ...], bytes] = {}

    @property
    def origin(self) -> str:
        """`http://HOST:PORT`, where result URLs live (the server serving this state knows)."""
        raise NotImplementedError

    # -- scripting and inspection -----------------------------------------------

    def inject(self, route: Route | str, *faults: Fault) -> None:
        """Queue faults for the next requests to `route`, in order."""
        with self._lock:
            self._faults[Route(route)].extend(faults)

    def inject_at(self, number: int, fault: Fault) -> None:
        """Make the `number`-th request (1-based, any route) meet `fault`."""
        with self._lock:
            self._numbered[number] = fault

    def clear_faults(self) -> None:
        """Drop every scripted fault not consumed yet (a test's next phase starts clean)."""
        with self._lock:
            self._faults.clear()
            self._numbered.clear()

    def received(self) -> int:
        """How many requests have arrived so far (a hanging one is logged only when it ends)."""
        with self._lock:
            return self._counter

    def pending_faults(self) -> int:
        """How many scripted faults have not been consumed yet."""
        with self._lock:
            return sum(len(q) for q in self._faults.values()) + len(self._numbered)

    @property
    def log(self) -> list[LoggedRequest]:
        """Every request received so far, in arrival order."""
        with self._lock:
            return list(self._log)

    def requests(self, route: Route | str | None = None) -> list[LoggedRequest]:
        """Logged requests, optionally only those to one route."""
        return [r for r in self.log if route is None or r.route == Route(route)]

    def submissions(self, route: Route | str | None = None) -> list[LoggedRequest]:
        """Video job submissions that were accepted (answered 200 with a request id)."""
        routes = VIDEO_SUBMISSIONS if route is None else {Route(route)}
        return [r for r in self.log if r.route in routes and r.status == 200]

    @property
    def bills(self) -> list[Bill]:
        """Every billed call so far."""
        with self._lock:
            return list(self._bills)

    def billed_ticks(self) -> int:
        """The total billed so far, in ticks."""
        return sum(b.ticks for b in self.bills)

    @property
    def answers(self) -> list[tuple[Route, int, bytes]]:
        """Every JSON answer sent so far: its route, status and body (for contract checks)."""
        with self._lock:
            return list(self._answers)

    def models_answer(self, which: str) -> bytes:
        """ListImageGenerationModelsResponse / ListVideoGenerationModelsResponse."""
        image = which.startswith("image")
        models = []
        for model, extra in sorted(self.model_prices.items()):
            if model.startswith("grok-imagine-image") != image:
                continue
            entry: dict[str, object] = {
                "id": model, "fingerprint": "fp_fake", "created": 1767225600,
                "object": "model", "owned_by": "xai", "version": "1.0.0",
                "input_modalities": ["text", "image"],
                "output_modalities": ["image" if image else "video"], "aliases": [],
            }  # fmt: skip
            if image:
                entry["max_prompt_length"] = 1024
            entry.update(extra)
            models.append(entry)
        return json.dumps({"models": models}).encode()

    def expire_urls(self) -> None:
        """Make every result URL issued so far expire now."""
        with self._lock:
            for entry in self._files.values():
                entry.expires_at = 0.0

    def lapse_urls(self) -> None:
        """Make every result URL issued so far expire now, as a temporary link lapses while
        its job is still known: the job's next poll answers with a fresh URL."""
        self.expire_urls()
        with self._lock:
            for job in self._jobs.values():
                job.file_name = None
            for order, _, _ in self._image_jobs.values():
                order.data = None

    def job_latency_for(self, prompt: str) -> float:
        """Seconds a video job with `prompt` stays pending at least."""
        return latency_for(prompt, self.job_latency, self.job_latency_max, self.latency_seed)

    def image_latency_for(self, prompt: str) -> float:
        """Seconds an image or edit request with `prompt` is held before its answer."""
        return latency_for(prompt, self.image_latency, self.image_latency_max, self.latency_seed)

    # -- bookkeeping by the request handler -------------------------------------

    def next_number(self) -> int:
        """Count an arriving request; its 1-based number."""
        with self._lock:
            self._counter += 1
            return self._counter

    def take_fault(self, number: int, route: Route) -> Fault | None:
        """The fault scripted for request `number` to `route`, consumed; None if none."""
        with self._lock:
            if number in self._numbered:
                return self._numbered.pop(number)
            queue = self._faults.get(route)
            return queue.popleft() if queue else None

    def record(self, entry: LoggedRequest) -> None:
        """Log a request."""
        with self._lock:
            self._log.append(entry)

    def record_answer(self, route: Route, status: int, payload: bytes) -> None:
        """Keep a JSON answer that was sent."""
        with self._lock:
            self._answers.append((route, status, payload))

    def bill(
        self, route: Route, ticks: int, request_id: str | None = None, prompt: str = ""
    ) -> None:
        """Bill a call."""
        with self._lock:
            self._bills.append(Bill(route, ticks, request_id, prompt))

    def add_job(self, job: VideoJob) -> None:
        """Keep a submitted video job under its request id."""
        with self._lock:
            self._jobs[job.request_id] = job

    def job(self, request_id: str) -> VideoJob | None:
        """The video job submitted under `request_id`, if any."""
        with self._lock:
            return self._jobs.get(request_id)

    def add_image_order(self, request_id: str, order: ImageOrder, ticks: int) -> None:
        """Keep a deferred image request, submitted now, to be polled under `request_id`."""
        with self._lock:
            self._image_jobs[request_id] = (order, time.time(), ticks)

    def image_order(self, request_id: str) -> tuple[ImageOrder, float, int] | None:
        """A deferred image request: its order, when it was submitted and what it billed."""
        with self._lock:
            return self._image_jobs.get(request_id)

    def add_file(
        self, suffix: str, content_type: str, data: bytes | None, path: Path | None
    ) -> str:
        """Serve `data` (or the file at `path`) under a fresh URL until `url_ttl` passes."""
        name = f"{uuid.uuid4().hex}{suffix}"
        with self._lock:
            self._files[name] = ServedFile(content_type, time.time() + self.url_ttl, data, path)
        return f"{self.origin}/files/{name}"

    def served_file(self, name: str) -> ServedFile | None:
        """The result file served under `name`, if any (expired or not)."""
        with self._lock:
            return self._files.get(name)

    def cached_media(self, key: tuple[object, ...], make: Callable[[], bytes]) -> bytes:
        """Media bytes rendered once per `key` (rendering is the fake's slowest step)."""
        with self._lock:
            found = self._media_cache.get(key)
        if found is None:
            found = make()
            with self._lock:
                self._media_cache[key] = found
        return found
