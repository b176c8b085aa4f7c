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
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from types import FrameType, TracebackType
from typing import TYPE_CHECKING

from imaginebuild.testing.fake_faults import Fault, FaultKind, PriceTable, Route, parse_fault
from imaginebuild.testing.fake_handler import Handler
from imaginebuild.testing.fake_media import mp4_seconds, render_image, render_mp4, video_size
from imaginebuild.testing.fake_records import Bill, LoggedRequest
from imaginebuild.testing.fake_spec import image_size
from imaginebuild.testing.fake_state import FakeSettings, FakeState, latency_for
from imaginebuild.testing.fake_wire import FakeServer, error_body

if TYPE_CHECKING:
    from typing_extensions import Unpack


class FakeXai(FakeState):
    """A threaded HTTP server on 127.0.0.1 that imitates the xAI media API."""

    def __init__(
        self, *, host: str = "127.0.0.1", port: int = 0, **settings: Unpack[FakeSettings]
    ) -> None:
        super().__init__(**settings)
        self._server = FakeServer((host, port), Handler)
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
        self.stopping.set()
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
