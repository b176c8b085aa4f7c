"""How the fake xAI server's answers go out on the wire: the threaded server, the status
line that logs its request, xAI's error body, and the body faults (truncated, slow,
trickled bodies and reset connections) that break an answer on purpose."""

from __future__ import annotations

import contextlib
import io
import json
import socket
import struct
from collections.abc import Mapping
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from uuid import uuid4

from imaginebuild.testing.fake_faults import Fault, FaultKind, Route
from imaginebuild.testing.fake_records import LoggedRequest
from imaginebuild.testing.fake_state import FakeState

_CHUNK = 64 * 1024

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


def error_body(status: int, message: str, code: str | None = None) -> bytes:
    """The xAI native error shape: `{"code": <gRPC status text>, "error": <message>}`."""
    return json.dumps(
        {"code": code or _GRPC_CODES.get(status, "Unknown"), "error": message}
    ).encode()


class FakeServer(ThreadingHTTPServer):
    """The threaded HTTP server; its handlers read and write `fake`."""

    daemon_threads = True
    allow_reuse_address = True
    fake: FakeState

    def handle_error(self, request: object, client_address: object) -> None:
        """Faults break connections on purpose; keep stderr quiet."""


class Replier(BaseHTTPRequestHandler):
    """Sends answers: each status line logs its request, each body meets its body fault."""

    protocol_version = "HTTP/1.1"
    server: FakeServer
    _body_fault: Fault | None = None
    _entry: LoggedRequest | None = None
    _current_route: Route = Route.UNKNOWN

    def log_message(self, format: str, *args: object) -> None:
        """Quiet: the fake keeps its own log."""

    @property
    def fake(self) -> FakeState:
        """The state of the fake this request reached."""
        return self.server.fake

    def _log_status(self, status: int | None) -> None:
        """Log the request once, as its status line goes out (so a client that has its
        answer always finds the request in the log)."""
        if self._entry is not None:
            self.fake.record(replace(self._entry, status=status))
            self._entry = None

    def send_response(self, code: int, message: str | None = None) -> None:
        """Log the request with its status, then start the answer (every answer carries an
        `x-request-id` header, as xAI's do)."""
        self._log_status(code)
        super().send_response(code, message)
        self.send_header("x-request-id", str(uuid4()))

    def _reset(self) -> None:
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connection.close()

    def _send_json(
        self, status: int, payload: bytes, extra: Mapping[str, str] | None = None
    ) -> int:
        self.fake.record_answer(self._current_route, status, payload)
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
                    if self.fake.stopping.wait(fault.seconds):
                        break
            self.wfile.flush()
        except OSError:
            self.close_connection = True
            return
        if sent < size:  # a clean close: the client sees a body shorter than announced
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_WR)
