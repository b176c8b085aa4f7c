"""How the fake xAI server takes a request: it routes the path, logs the request, meets a
scripted fault, checks the bearer token, method, body and rate limit as xAI does, and hands
the request to its media endpoint."""

from __future__ import annotations

import json
import time

from imaginebuild.testing.fake_faults import Fault, FaultKind, Route
from imaginebuild.testing.fake_records import LoggedRequest
from imaginebuild.testing.fake_requests import Reply
from imaginebuild.testing.fake_routes import MediaRoutes
from imaginebuild.testing.fake_wire import error_body

_POST_ROUTES = {
    "/v1/images/generations": Route.IMAGES,
    "/v1/images/edits": Route.EDITS,
    "/v1/videos/generations": Route.VIDEOS,
    "/v1/videos/edits": Route.VIDEO_EDITS,
    "/v1/videos/extensions": Route.EXTENSIONS,
}
_EARLY_FAULTS = frozenset(
    {FaultKind.HTTP, FaultKind.UNAUTHORIZED, FaultKind.MALFORMED_JSON, FaultKind.RESET}
    | {FaultKind.HANG}
)
_BODY_FAULTS = frozenset({FaultKind.SLOW, FaultKind.TRICKLE, FaultKind.TRUNCATED})


class Handler(MediaRoutes):
    """One connection's requests to the fake, from the request line to the answer."""

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
        number = self.fake.next_number()
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
        self._entry = LoggedRequest(
            number, method, self.path, route, headers, auth is not None, body, None, time.time(),
            cut_short=short,
        )  # fmt: skip
        try:
            self._handle(number, method, route, arg, body, raw, auth)
        finally:
            self._log_status(None)  # a reset or a hang: nothing was answered

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
        fault = self.fake.take_fault(number, route)
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
            self.fake.stopping.wait(fault.seconds)
        self._reset()
        return None

    def _check_auth(self, auth: str | None) -> None:
        if auth is None or not auth.startswith("Bearer ") or not auth[7:].strip():
            raise Reply(401, "Invalid or missing bearer token")
        if self.fake.api_key is not None and auth[7:].strip() != self.fake.api_key:
            raise Reply(400, "Incorrect API key provided. Obtain one at console.x.ai.")
