"""A fake xAI media API on loopback: real HTTP, real PNG/MP4 bytes, scripted faults.

It speaks the REST contract of the Grok Imagine endpoints — the same paths, JSON
fields, error bodies and async video jobs — so a client can be rehearsed without
a key and without paying. Every request is logged and every call is billed in
`cost_in_usd_ticks`, so tests assert on what the server saw.

In tests::

    with FakeXai(pending_polls=1) as fake:
        fake.inject(Route.IMAGES, Fault.rate_limited(retry_after="0"))
        ...  # point a client at fake.base_url ("http://127.0.0.1:PORT/v1")
        assert len(fake.submissions()) == 1
        assert fake.billed_ticks() == 200_000_000

From a shell::

    python -m imaginebuild.testing.fake_xai [--port N] [options]

    --host H            address to bind (default 127.0.0.1)
    --port N            port (default 0: a free one; the URL is printed on stdout)
    --api-key KEY       accept only this bearer token (a wrong one gets 400, as xAI does);
                        by default any bearer token is accepted, a missing one gets 401
    --pending-polls N   polls answered "pending" (202) before a video job is done (default 1)
    --job-latency S     seconds a video job stays pending at least (default 0)
    --job-latency-max S with it, each job's latency is drawn from [job-latency, S] by its prompt
    --image-latency S   seconds an image or edit request is held before its answer (default 0)
    --image-latency-max S  likewise: each request's latency drawn from [image-latency, S]
    --latency-seed TEXT mixed into those draws (the same prompt and seed: the same latency)
    --url-ttl S         seconds a result URL stays downloadable (default 600)
    --image-format F    png, jpeg (default, like the real API) or webp
    --small             render images/videos scaled down (default: their true pixel size,
                        which imaginebuild checks)
    --b64-data-uri      send b64_json values as data URIs (default: plain base64)
    --video-file PATH   serve this MP4 file for every finished video job (streamed from disk)
    --rate-limit MODEL=N  answer 429 to submissions of MODEL above N per second, across every
                        client, as the API's per-team limits do (repeatable; a token bucket
                        of N tokens refilled at N per second)
    --fault ROUTE=SPEC  queue a fault (repeatable); ROUTE is images, edits, videos,
                        video_edits, extensions, poll or download; SPEC is one of
                        http:CODE, rate_limited[:SECONDS], reset, hang, slow[:SECONDS],
                        trickle[:SECONDS],
                        truncated, malformed_json, expired_url, corrupt, wrong_type,
                        moderation, blocked, job_failed, job_expired, unknown_job,
                        unauthorized

Faults are consumed in order, one per matching request: `inject(route, *faults)`
queues them for a route, `inject_at(n, fault)` for the n-th request (1-based).
A fault on a submission route answers instead of the server (nothing is billed)
except `moderation`, `job_failed` and `job_expired`, which decide how the job
submitted by that request ends.

Latencies are deterministic per prompt (`latency_for`), so a benchmark knows
in advance how long every request will take and can compute its schedule's
lower bound.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import hashlib
import io
import json
import signal
import socket
import struct
import sys
import threading
import time
import uuid
from collections import defaultdict, deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any

from imaginebuild.testing.fake_faults import Fault, FaultKind, PriceTable, Route, parse_fault
from imaginebuild.testing.fake_media import (
    color_for,
    mp4_seconds,
    render_image,
    render_mp4,
    scaled,
    video_size,
)
from imaginebuild.testing.fake_requests import (
    Reply,
    check_fields,
    clip_spec,
    enum_field,
    generation_spec,
    image_shape,
    int_field,
    media_object,
    require_prompt,
)
from imaginebuild.testing.fake_spec import (
    IMAGE_ASPECTS,
    IMAGE_RESOLUTIONS,
    image_size,
    nearest_aspect,
)

TICKS_PER_USD = 10_000_000_000
_CHUNK = 64 * 1024


_POST_ROUTES = {
    "/v1/images/generations": Route.IMAGES,
    "/v1/images/edits": Route.EDITS,
    "/v1/videos/generations": Route.VIDEOS,
    "/v1/videos/edits": Route.VIDEO_EDITS,
    "/v1/videos/extensions": Route.EXTENSIONS,
}
VIDEO_SUBMISSIONS = frozenset({Route.VIDEOS, Route.VIDEO_EDITS, Route.EXTENSIONS})

_JOB_FATES = frozenset({FaultKind.MODERATION, FaultKind.JOB_FAILED, FaultKind.JOB_EXPIRED})
_EARLY_FAULTS = frozenset(
    {FaultKind.HTTP, FaultKind.UNAUTHORIZED, FaultKind.MALFORMED_JSON, FaultKind.RESET}
    | {FaultKind.HANG}
)
_BODY_FAULTS = frozenset({FaultKind.SLOW, FaultKind.TRICKLE, FaultKind.TRUNCATED})


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
class _Job:
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
class _ImageOrder:
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
class _File:
    content_type: str
    expires_at: float
    data: bytes | None = None
    path: Path | None = None

    def size(self) -> int:
        return len(self.data) if self.data is not None else (self.path or Path()).stat().st_size


_GRPC_CODES = {
    400: "Client specified an invalid argument",
    401: "The request does not have valid authentication credentials",
    403: "The caller does not have permission to execute the specified operation",
    404: "Some requested entity was not found",
    405: "Method not allowed",
    415: "Unsupported media type",
    422: "Client specified an invalid argument",
    429: "Some resource has been exhausted",
    500: "Internal error",
    502: "Bad gateway",
    503: "The service is currently unavailable",
    504: "Deadline expired before operation could complete",
}


def latency_for(prompt: str, low: float, high: float | None = None, seed: str = "") -> float:
    """Seconds a request with `prompt` takes: `low`, or, when `high` is above it, a value
    in [low, high] drawn from sha256(seed, prompt) — the same for the same prompt and seed."""
    if high is None or high <= low:
        return low
    digest = hashlib.sha256(f"{seed}\0{prompt}".encode()).digest()
    return low + (high - low) * (int.from_bytes(digest[:8], "big") / 2**64)


def error_body(status: int, message: str, code: str | None = None) -> bytes:
    """The xAI native error shape: `{"code": <gRPC status text>, "error": <message>}`."""
    return json.dumps(
        {"code": code or _GRPC_CODES.get(status, "Unknown"), "error": message}
    ).encode()


class FakeXai:
    """A threaded HTTP server on 127.0.0.1 that imitates the xAI media API."""

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
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
        self.rate_limits = _RateLimits(rate_limits or {})
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
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._log: list[LoggedRequest] = []
        self._bills: list[Bill] = []
        self._answers: list[tuple[Route, int, bytes]] = []
        self._faults: dict[Route, deque[Fault]] = defaultdict(deque)
        self._numbered: dict[int, Fault] = {}
        self._jobs: dict[str, _Job] = {}
        self._image_jobs: dict[str, tuple[_ImageOrder, float, int]] = {}
        self._files: dict[str, _File] = {}
        self._counter = 0
        self._media_cache: dict[tuple[object, ...], bytes] = {}
        self._server = _Server((host, port), _Handler)
        self._server.fake = self
        self._thread: threading.Thread | None = None

    # -- lifecycle ---------------------------------------------------------------

    @property
    def port(self) -> int:
        """The TCP port the server listens on."""
        return int(self._server.server_address[1])

    @property
    def origin(self) -> str:
        """`http://127.0.0.1:PORT` (result URLs live here)."""
        host = str(self._server.server_address[0])
        return f"http://{host}:{self.port}"

    @property
    def base_url(self) -> str:
        """The API base URL to configure a client with (`…/v1`)."""
        return f"{self.origin}/v1"

    def start(self) -> FakeXai:
        """Serve in a daemon thread; returns self."""
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and release the port (hanging requests are let go)."""
        self._stopping.set()
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> FakeXai:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

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

    # -- internals used by the handler ----------------------------------------

    def job_latency_for(self, prompt: str) -> float:
        """Seconds a video job with `prompt` stays pending at least."""
        return latency_for(prompt, self.job_latency, self.job_latency_max, self.latency_seed)

    def image_latency_for(self, prompt: str) -> float:
        """Seconds an image or edit request with `prompt` is held before its answer."""
        return latency_for(prompt, self.image_latency, self.image_latency_max, self.latency_seed)

    def _next_number(self) -> int:
        with self._lock:
            self._counter += 1
            return self._counter

    def _take_fault(self, number: int, route: Route) -> Fault | None:
        with self._lock:
            if number in self._numbered:
                return self._numbered.pop(number)
            queue = self._faults.get(route)
            return queue.popleft() if queue else None

    def _record(self, entry: LoggedRequest) -> None:
        with self._lock:
            self._log.append(entry)

    def _answered(self, route: Route, status: int, payload: bytes) -> None:
        with self._lock:
            self._answers.append((route, status, payload))

    @property
    def answers(self) -> list[tuple[Route, int, bytes]]:
        """Every JSON answer sent so far: its route, status and body (for contract checks)."""
        with self._lock:
            return list(self._answers)

    def _bill(
        self, route: Route, ticks: int, request_id: str | None = None, prompt: str = ""
    ) -> None:
        with self._lock:
            self._bills.append(Bill(route, ticks, request_id, prompt))

    def _add_file(
        self, suffix: str, content_type: str, data: bytes | None, path: Path | None
    ) -> str:
        name = f"{uuid.uuid4().hex}{suffix}"
        with self._lock:
            self._files[name] = _File(content_type, time.time() + self.url_ttl, data, path)
        return f"{self.origin}/files/{name}"

    def _cached(self, key: tuple[object, ...], make: Any) -> bytes:
        with self._lock:
            found = self._media_cache.get(key)
        if found is None:
            found = make()
            with self._lock:
                self._media_cache[key] = found
        return found


class _RateLimits:
    """Per-model token buckets shared by every client: N tokens, refilled at N per second."""

    def __init__(self, rates: Mapping[str, int]) -> None:
        self.rates = dict(rates)
        self._tokens = {model: float(n) for model, n in self.rates.items()}
        self._at = {model: time.monotonic() for model in self.rates}
        self._lock = threading.Lock()
        self.refused = 0  # submissions answered 429 so far

    def admit(self, model: str) -> bool:
        """Take a token for `model` (always True for a model without a limit)."""
        rate = self.rates.get(model)
        if rate is None:
            return True
        with self._lock:
            now = time.monotonic()
            tokens = min(float(rate), self._tokens[model] + (now - self._at[model]) * rate)
            self._at[model] = now
            if tokens < 1.0:
                self._tokens[model] = tokens
                self.refused += 1
                return False
            self._tokens[model] = tokens - 1.0
            return True


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    fake: FakeXai

    def handle_error(self, request: object, client_address: object) -> None:
        """Faults break connections on purpose; keep stderr quiet."""


# -- validation (pure) -----------------------------------------------------------


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server
    _body_fault: Fault | None = None
    _entry: LoggedRequest | None = None
    _current_route: Route = Route.UNKNOWN

    def log_message(self, format: str, *args: object) -> None:
        """Quiet: the fake keeps its own log."""

    # Entry points --------------------------------------------------------------

    def do_GET(self) -> None:
        """Polls and result downloads."""
        self._dispatch("GET")

    def do_POST(self) -> None:
        """Submissions of every kind."""
        self._dispatch("POST")

    def do_PUT(self) -> None:
        """Unsupported: 405."""
        self._dispatch("PUT")

    def do_DELETE(self) -> None:
        """Unsupported: 405."""
        self._dispatch("DELETE")

    # Plumbing ------------------------------------------------------------------

    @property
    def fake(self) -> FakeXai:
        return self.server.fake

    def _route(self, method: str) -> tuple[Route, str]:
        path = self.path.split("?", 1)[0]
        if path.startswith("/files/"):
            return Route.DOWNLOAD, path.removeprefix("/files/")
        if path in ("/v1/image-generation-models", "/v1/video-generation-models"):
            return Route.MODELS, path.removeprefix("/v1/")
        if path.startswith("/v1/images/") and path.count("/") == 3:
            tail = path.removeprefix("/v1/images/")
            if tail not in {"generations", "edits"}:
                return Route.IMAGE_POLL, tail
        if path.startswith("/v1/videos/") and path.count("/") == 3:
            tail = path.removeprefix("/v1/videos/")
            if tail not in {"generations", "edits", "extensions"}:
                return Route.POLL, tail
        return _POST_ROUTES.get(path, Route.UNKNOWN), ""

    def _dispatch(self, method: str) -> None:
        number = self.fake._next_number()
        route, arg = self._route(method)
        self._current_route = route
        raw = self._read_body()
        body: object | None = None
        if raw:
            try:
                body = json.loads(raw)
            except ValueError:
                body = raw.decode("utf-8", "replace")
        headers = {k.lower(): v for k, v in self.headers.items() if k.lower() != "authorization"}
        auth = self.headers.get("Authorization")
        short = len(raw) < int(self.headers.get("Content-Length") or 0)
        self._entry: LoggedRequest | None = LoggedRequest(
            number, method, self.path, route, headers, auth is not None, body, None, time.time(),
            cut_short=short,
        )  # fmt: skip
        try:
            self._handle(number, method, route, arg, body, raw, auth)
        finally:
            self._log_status(None)  # a reset or a hang: nothing was answered

    def _log_status(self, status: int | None) -> None:
        """Log the request once, as its status line goes out (so a client that has its
        answer always finds the request in the log)."""
        if self._entry is not None:
            self.fake._record(replace(self._entry, status=status))
            self._entry = None

    def send_response(self, code: int, message: str | None = None) -> None:
        """Log the request with its status, then start the answer (every answer carries an
        `x-request-id` header, as xAI's do)."""
        self._log_status(code)
        super().send_response(code, message)
        self.send_header("x-request-id", str(uuid.uuid4()))

    def _read_body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _handle(
        self,
        number: int,
        method: str,
        route: Route,
        arg: str,
        body: object | None,
        raw: bytes,
        auth: str | None,
    ) -> int | None:
        fault = self.fake._take_fault(number, route)
        if fault is not None and fault.kind in _EARLY_FAULTS:
            return self._early_fault(fault)
        self._body_fault = fault if fault is not None and fault.kind in _BODY_FAULTS else None
        try:
            if route is Route.DOWNLOAD:
                if method != "GET":
                    raise Reply(405, "method not allowed")
                return self._download(arg, fault)
            self._check_auth(auth)
            if route in (Route.POLL, Route.IMAGE_POLL, Route.MODELS):
                if method != "GET":
                    raise Reply(405, "method not allowed")
                if route is Route.MODELS:
                    return self._send_json(200, self.fake.models_answer(arg))
                if route is Route.IMAGE_POLL:
                    return self._poll_images(arg, fault)
                return self._poll(arg, fault)
            if route is Route.UNKNOWN:
                raise Reply(404, f"no route for {method} {self.path}")
            if method != "POST":
                raise Reply(405, "method not allowed")
            content_type = (self.headers.get("Content-Type") or "").split(";")[0].strip()
            if content_type != "application/json" or not raw:
                raise Reply(415, "expected a JSON body with Content-Type: application/json")
            if not isinstance(body, dict):
                raise Reply(400, "the body must be a JSON object")
            image = route in (Route.IMAGES, Route.EDITS)
            default = "grok-imagine-image" if image else "grok-imagine-video"
            if not self.fake.rate_limits.admit(str(body.get("model") or default)):
                raise Reply(429, "Rate limit exceeded for this model (requests per second)")
            if route in (Route.IMAGES, Route.EDITS):
                return self._images(route, body, fault)
            return self._submit(route, body, fault)
        except Reply as reply:
            return self._send_json(
                reply.status, error_body(reply.status, reply.message, reply.code)
            )

    def _early_fault(self, fault: Fault) -> int | None:
        """Answer a fault that replaces the whole reply (None: no status was sent)."""
        kind = fault.kind
        if kind is FaultKind.HTTP:
            extra = {"Retry-After": fault.retry_after} if fault.retry_after is not None else {}
            message = fault.message or f"simulated {fault.status}"
            return self._send_json(fault.status, error_body(fault.status, message), extra)
        if kind is FaultKind.UNAUTHORIZED:
            return self._send_json(401, error_body(401, "Invalid or missing bearer token"))
        if kind is FaultKind.MALFORMED_JSON:
            return self._send(200, b'{"data": [ {"url": ', "application/json")
        if kind is FaultKind.HANG:
            self.fake._stopping.wait(fault.seconds)
        self._reset()
        return None

    def _reset(self) -> None:
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connection.close()

    def _check_auth(self, auth: str | None) -> None:
        if auth is None or not auth.startswith("Bearer ") or not auth[7:].strip():
            raise Reply(401, "Invalid or missing bearer token")
        if self.fake.api_key is not None and auth[7:].strip() != self.fake.api_key:
            raise Reply(400, "Incorrect API key provided. Obtain one at console.x.ai.")

    def _send_json(
        self, status: int, payload: bytes, extra: Mapping[str, str] | None = None
    ) -> int:
        self.fake._answered(self._current_route, status, payload)
        return self._send(status, payload, "application/json", extra)

    def _send(
        self,
        status: int,
        payload: bytes,
        content_type: str,
        extra: Mapping[str, str] | None = None,
    ) -> int:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(payload)))
        for name, value in (extra or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self._write_body(io.BytesIO(payload), len(payload))
        return status

    def _write_body(self, source: io.BufferedIOBase | io.BytesIO, size: int) -> None:
        fault = self._body_fault
        limit = size // 2 if fault is not None and fault.kind is FaultKind.TRUNCATED else size
        sent = 0
        paced = fault is not None and fault.kind in (FaultKind.SLOW, FaultKind.TRICKLE)
        step = 1 if fault is not None and fault.kind is FaultKind.TRICKLE else _CHUNK
        try:
            while sent < limit:
                chunk = source.read(min(step, limit - sent))
                if not chunk:
                    break
                self.wfile.write(chunk)
                sent += len(chunk)
                if paced:
                    assert fault is not None
                    self.wfile.flush()
                    if self.fake._stopping.wait(fault.seconds):
                        break
            self.wfile.flush()
        except OSError:
            self.close_connection = True
            return
        if sent < size:  # a clean close: the client sees a body shorter than announced
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_WR)

    # Routes ----------------------------------------------------------------------

    def _images(self, route: Route, body: dict[str, Any], fault: Fault | None) -> int:
        check_fields(route, body)
        require_prompt(body)
        count = int_field(body, "n", 1, 10, 1)
        response_format = enum_field(body, "response_format", ("url", "b64_json"), "url")
        aspect = enum_field(body, "aspect_ratio", IMAGE_ASPECTS, "auto")
        resolution = enum_field(body, "resolution", IMAGE_RESOLUTIONS, "1k")
        inputs = 0
        if route is Route.EDITS:
            if ("image" in body) == ("images" in body):
                raise Reply(400, "exactly one of `image` or `images` is required")
            if "image" in body:
                # EditImageRequest: a single edit auto-detects the ratio from its input.
                shape = image_shape(media_object(body["image"], "image", "image"))
                aspect = nearest_aspect(*shape, IMAGE_ASPECTS) if shape else "1:1"
                inputs = 1
            else:
                images = body["images"]
                if not isinstance(images, list) or not 1 <= len(images) <= 3:
                    raise Reply(400, "`images` must be a list of 1 to 3 images")
                for index, item in enumerate(images):
                    media_object(item, "image", f"images[{index}]")
                inputs = len(images)
        if fault is not None and fault.kind is FaultKind.BLOCKED:
            raise Reply(400, f"Generated image rejected by content moderation: {fault.message}")
        order = _ImageOrder(
            str(body["prompt"]), str(body.get("model") or "grok-imagine-image"), count,
            resolution, aspect, response_format,
            fault is not None and fault.kind is FaultKind.MODERATION,
        )  # fmt: skip
        ticks = self.fake.prices.images(count, inputs)
        if body.get("deferred") is True:
            return self._defer_images(route, order, ticks)
        delay = self.fake.image_latency_for(order.prompt)
        if delay > 0 and self.fake._stopping.wait(delay):
            return self._send_json(503, error_body(503, "the server is stopping"))
        self.fake._bill(route, ticks, prompt=order.prompt)
        payload = {"data": self._image_data(order), "usage": {"cost_in_usd_ticks": ticks}}
        return self._send_json(200, json.dumps(payload).encode())

    def _defer_images(self, route: Route, order: _ImageOrder, ticks: int) -> int:
        """`deferred: true`: answer a request id at once; GET /v1/images/{id} polls it."""
        if order.model in self.fake.no_deferred_models:
            raise Reply(400, f"Argument not supported for model {order.model}: deferred")
        if order.response_format != "url":
            raise Reply(400, 'deferred requests support only response_format "url"')
        request_id = str(uuid.uuid4())
        with self.fake._lock:
            self.fake._image_jobs[request_id] = (order, time.time(), ticks)
        self.fake._bill(route, ticks, request_id, order.prompt)
        return self._send_json(200, json.dumps({"request_id": request_id}).encode())

    def _poll_images(self, request_id: str, fault: Fault | None) -> int:
        """GetDeferredImageResponse: 202 while pending, 200 with `data` once done."""
        with self.fake._lock:
            job = self.fake._image_jobs.get(request_id)
        if job is None or (fault is not None and fault.kind is FaultKind.UNKNOWN_JOB):
            raise Reply(404, f"no such request: {request_id}")
        order, submitted_at, ticks = job
        if time.time() - submitted_at < self.fake.image_latency_for(order.prompt):
            return self._send(202, b"", "application/json")
        if order.data is None:
            order.data = self._image_data(order)
        done = {
            "request_id": request_id,
            "status": "done",
            "data": order.data,
            "usage": {"cost_in_usd_ticks": ticks},
        }
        return self._send_json(200, json.dumps(done).encode())

    def _image_data(self, order: _ImageOrder) -> list[dict[str, object]]:
        return [self._image_entry(order, index) for index in range(order.count)]

    def _image_entry(self, order: _ImageOrder, index: int) -> dict[str, object]:
        """One GeneratedImage: bytes or a URL; neither when moderation withheld it."""
        fmt = self.fake.image_format
        mime = {"jpeg": "image/jpeg", "webp": "image/webp"}.get(fmt, "image/png")
        entry: dict[str, object] = {"url": None, "b64_json": None, "mime_type": mime}
        if order.moderated:
            return entry
        size = scaled(image_size(order.resolution, order.aspect), self.fake.full_size, 128)
        color = color_for(f"{order.prompt}|{index}")
        data = self.fake._cached(("img", size, color, fmt), lambda: render_image(size, color, fmt))
        if order.response_format == "b64_json":
            encoded = base64.b64encode(data).decode()
            entry["b64_json"] = (
                f"data:{mime};base64,{encoded}" if self.fake.b64_data_uri else encoded
            )
        else:
            entry["url"] = self.fake._add_file(f".{fmt}", mime, data, None)
        return entry

    def _submit(self, route: Route, body: dict[str, Any], fault: Fault | None) -> int:
        check_fields(route, body)
        require_prompt(body)
        model = str(body.get("model") or "grok-imagine-video")
        video = route is Route.VIDEOS
        spec = generation_spec(body, model) if video else clip_spec(route, body)
        request_id = str(uuid.uuid4())
        images = len(body.get("reference_images") or []) + (1 if "image" in body else 0)
        ticks = self.fake.prices.video(spec.billed_s, spec.resolution, images, spec.input_s)
        job = _Job(request_id, route, model, spec.duration, spec.resolution, spec.aspect,
                   time.time(), ticks, size=spec.size)  # fmt: skip
        job.prompt = str(body["prompt"])
        if fault is not None and fault.kind in _JOB_FATES:
            job.fate, job.fate_message = fault.kind, fault.message
        with self.fake._lock:
            self.fake._jobs[request_id] = job
        self.fake._bill(route, ticks, request_id, job.prompt)
        return self._send_json(200, json.dumps({"request_id": request_id}).encode())

    def _poll(self, request_id: str, fault: Fault | None) -> int:
        with self.fake._lock:
            job = self.fake._jobs.get(request_id)
        if job is None or (fault is not None and fault.kind is FaultKind.UNKNOWN_JOB):
            raise Reply(404, f"no such request: {request_id}")
        fate = job.fate
        if fault is not None and fault.kind in _JOB_FATES:
            fate, job.fate_message = fault.kind, fault.message
        else:
            job.polls += 1
            ready = time.time() - job.submitted_at >= self.fake.job_latency_for(job.prompt)
            if job.file_name is None and (job.polls <= self.fake.pending_polls or not ready):
                if job.polls % 2:
                    return self._send(202, b"", "application/json")
                progress = min(99, 10 * job.polls)
                pending = json.dumps({"status": "pending", "progress": progress}).encode()
                return self._send_json(202, pending)
        base: dict[str, object] = {"model": job.model, "usage": {"cost_in_usd_ticks": job.ticks}}
        if fate is FaultKind.JOB_EXPIRED:
            return self._send_json(200, json.dumps({"status": "expired", **base}).encode())
        if fate is FaultKind.JOB_FAILED:
            code, _, message = job.fate_message.partition("\n")
            # VideoResponse when failed: `model`, `progress` and `video` are omitted.
            failed = {"status": "failed", "error": {"code": code, "message": message}}
            return self._send_json(200, json.dumps(failed).encode())
        if fate is FaultKind.MODERATION:
            video: dict[str, object] = {"url": "", "duration": 0, "respect_moderation": False}
        else:
            video = {
                "url": self._job_url(job),
                "duration": job.duration,
                "respect_moderation": True,
            }
        done = {"status": "done", "video": video, "progress": 100, **base}
        return self._send_json(200, json.dumps(done).encode())

    def _job_url(self, job: _Job) -> str:
        if job.file_name is None:
            if self.fake.video_file is not None:
                url = self.fake._add_file(".mp4", "video/mp4", None, self.fake.video_file)
            else:
                size = job.size or scaled(
                    video_size(job.resolution, job.aspect), self.fake.full_size, 160
                )
                data = self.fake._cached(
                    ("mp4", size, job.duration),  # an extension: input + added seconds
                    lambda: render_mp4(size, job.duration, (40, 90, 160)),
                )
                url = self.fake._add_file(".mp4", "video/mp4", data, None)
            job.file_name = url.rsplit("/", 1)[1]
        return f"{self.fake.origin}/files/{job.file_name}"

    def _download(self, name: str, fault: Fault | None) -> int:
        with self.fake._lock:
            entry = self.fake._files.get(name)
        kind = fault.kind if fault is not None else None
        if entry is None or kind is FaultKind.EXPIRED_URL or entry.expires_at < time.time():
            return self._send(404, b"<Error><Code>NoSuchKey</Code></Error>", "application/xml")
        content_type = "text/html" if kind is FaultKind.WRONG_TYPE else entry.content_type
        if kind is FaultKind.CORRUPT:
            garbage = b"\x00not media\x00" * 64
            return self._send(200, garbage, content_type)
        size = entry.size()
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(size))
        self.end_headers()
        if entry.data is not None:
            self._write_body(io.BytesIO(entry.data), size)
        elif entry.path is not None:
            with entry.path.open("rb") as source:
                self._write_body(source, size)
        return 200


# -- command line ---------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    """Run the fake until interrupted; prints its base URL on the first line of stdout."""
    parser = argparse.ArgumentParser(prog="python -m imaginebuild.testing.fake_xai")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--api-key", default=None)
    parser.add_argument("--pending-polls", type=int, default=1)
    parser.add_argument("--job-latency", type=float, default=0.0)
    parser.add_argument("--job-latency-max", type=float, default=None)
    parser.add_argument("--image-latency", type=float, default=0.0)
    parser.add_argument("--image-latency-max", type=float, default=None)
    parser.add_argument("--latency-seed", default="")
    parser.add_argument("--url-ttl", type=float, default=600.0)
    parser.add_argument("--image-format", choices=("png", "jpeg", "webp"), default="jpeg")
    parser.add_argument("--small", action="store_true")
    parser.add_argument("--b64-data-uri", action="store_true")
    parser.add_argument("--video-file", type=Path, default=None)
    parser.add_argument("--fault", action="append", default=[], metavar="ROUTE=SPEC")
    parser.add_argument("--rate-limit", action="append", default=[], metavar="MODEL=N")
    args = parser.parse_args(argv)
    rate_limits = {}
    for item in args.rate_limit:
        model, _, number = item.partition("=")
        if not model or not number.isdigit() or int(number) < 1:
            parser.error(f"--rate-limit {item!r}: use MODEL=N with N >= 1")
        rate_limits[model] = int(number)
    try:
        faults = [parse_fault(spec) for spec in args.fault]
    except ValueError as exc:
        parser.error(str(exc))
    fake = FakeXai(
        host=args.host,
        port=args.port,
        api_key=args.api_key,
        pending_polls=args.pending_polls,
        job_latency=args.job_latency,
        job_latency_max=args.job_latency_max,
        image_latency=args.image_latency,
        image_latency_max=args.image_latency_max,
        latency_seed=args.latency_seed,
        url_ttl=args.url_ttl,
        image_format=args.image_format,
        full_size=not args.small,
        b64_data_uri=args.b64_data_uri,
        video_file=args.video_file,
        rate_limits=rate_limits,
    )
    for route, fault in faults:
        fake.inject(route, fault)
    done = threading.Event()

    def stop(signum: int, frame: FrameType | None) -> None:
        done.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    with fake:
        print(fake.base_url, flush=True)
        done.wait()
    return 0


__all__ = [
    "Bill",
    "FakeXai",
    "Fault",
    "FaultKind",
    "LoggedRequest",
    "PriceTable",
    "Route",
    "error_body",
    "image_size",
    "latency_for",
    "main",
    "mp4_seconds",
    "parse_fault",
    "render_image",
    "render_mp4",
    "video_size",
]


if __name__ == "__main__":
    sys.exit(main())
