"""Build leases as data: what a lease object says, who holds it, and when it really ends.

A lease names its holder (an owner string, plus the host, process id and the
process's start time), so a run on the same host can tell that the holder is
dead (no such process, or the pid now belongs to another process) and take the
lease over at once instead of waiting out its lifetime. Whatever `expires` a
lease object claims, it ends at most `MAX_LEASE_S` after the object was written:
a hostile lease of `expires: 1e18` blocks nobody for longer than that.
"""

from __future__ import annotations

import json
import math
import os
import socket
from dataclasses import dataclass
from pathlib import Path

LEASE_FORMAT_VERSION = 1
MAX_LEASE_S = 3600.0  # no lease outlives this, counted from when its object was written
_LEASE_CAP = 4096  # a lease object is a few hundred bytes


@dataclass(frozen=True)
class Lease:
    """One lease object as read from the remote (untrusted until `ends_at` says so)."""

    owner: str
    expires: float
    host: str | None = None
    pid: int | None = None
    started: int | None = None  # the holder process's start time in clock ticks (Linux)

    def ends_at(self, written_at: float) -> float:
        """When the lease really ends: its `expires`, capped `MAX_LEASE_S` after writing."""
        return min(self.expires, written_at + MAX_LEASE_S)

    def holder_is_dead_here(self) -> bool:
        """Whether the holder ran on this host and its process is gone (or its pid was
        reused by a process started at another time)."""
        if self.host != socket.gethostname() or self.pid is None or self.pid <= 0:
            return False
        if not _alive(self.pid):
            return True
        now_started = process_started(self.pid)
        return self.started is not None and now_started is not None and now_started != self.started


def encode(owner: str, expires: float) -> bytes:
    """The lease object this process writes: it names its holder in full."""
    pid = os.getpid()
    doc = {
        "v": LEASE_FORMAT_VERSION,
        "owner": owner,
        "expires": expires,
        "host": socket.gethostname(),
        "pid": pid,
        "started": process_started(pid),
    }
    return json.dumps(doc).encode("utf-8")


def parse(raw: bytes | None) -> Lease | None:
    """The lease in `raw`, or None when it is missing, oversized or malformed (expired)."""
    if raw is None or len(raw) > _LEASE_CAP:
        return None
    try:
        doc = json.loads(raw.decode("utf-8"))
        expires = float(doc["expires"])
        if not isinstance(doc, dict) or math.isnan(expires):
            return None
        pid, started, host = doc.get("pid"), doc.get("started"), doc.get("host")
        return Lease(
            owner=str(doc["owner"])[:200],
            expires=expires,
            host=host if isinstance(host, str) else None,
            pid=pid if isinstance(pid, int) and not isinstance(pid, bool) else None,
            started=started if isinstance(started, int) and not isinstance(started, bool) else None,
        )
    except (UnicodeDecodeError, ValueError, KeyError, TypeError, OverflowError, RecursionError):
        return None


def process_started(pid: int) -> int | None:
    """A process's start time in clock ticks since boot (Linux /proc), None elsewhere."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses: split after its last ')'.
    fields = stat[stat.rfind(")") + 2 :].split()
    try:
        return int(fields[19])  # field 22 of the whole line: starttime
    except (IndexError, ValueError):
        return None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
