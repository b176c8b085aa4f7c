"""Remote cache throughput: push and fetch of N blobs against SeaweedFS on loopback,
with one transfer at a time versus the default bound.

    python bench/bench_remote.py [--blobs 32] [--size 1000000] [--repeat 3]

Prints one line per (operation, jobs) with the median seconds and MB/s.
"""

from __future__ import annotations

import argparse
import hashlib
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from s3server import ACCESS_KEY, BUCKET, REGION, SECRET_KEY, start_s3

from imaginebuild.remote.cache import RemoteCache
from imaginebuild.store.cache import ActionEntry, Store


def make_entry(store: Store, scratch: Path, blobs: int, size: int) -> ActionEntry:
    """An entry of `blobs` distinct blobs of `size` bytes each."""
    refs = []
    for i in range(blobs):
        seed = hashlib.sha256(f"{uuid.uuid4()}-{i}".encode()).digest()
        src = scratch / f"b{i}"
        src.write_bytes((seed * (size // 32 + 1))[:size])
        refs.append(store.put_file(src, "image/png", move=True))
    key = hashlib.sha256(uuid.uuid4().bytes).hexdigest()
    entry = ActionEntry(key, tuple(refs))
    store.put_action(entry)
    return entry


def main() -> int:
    """Run the benchmark and print its table."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--blobs", type=int, default=32)
    parser.add_argument("--size", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        server = start_s3(folder / "server")
        env = {
            "AWS_ACCESS_KEY_ID": ACCESS_KEY,
            "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
            "AWS_ENDPOINT_URL_S3": server.endpoint,
            "AWS_REGION": REGION,
        }
        try:
            print(f"server: {server.name}; {args.blobs} blobs x {args.size} bytes")
            total_mb = args.blobs * args.size / 1e6
            for jobs in (1, 8):
                push_s, fetch_s = [], []
                for run in range(args.repeat):
                    url = f"s3://{BUCKET}/bench-{uuid.uuid4().hex[:8]}"
                    remote = RemoteCache.from_config(url, False, env, jobs=jobs)
                    assert remote is not None
                    source = Store(folder / f"src-{jobs}-{run}")
                    scratch = folder / f"scratch-{jobs}-{run}"
                    scratch.mkdir()
                    entry = make_entry(source, scratch, args.blobs, args.size)
                    started = time.perf_counter()
                    remote.push(entry, source)
                    push_s.append(time.perf_counter() - started)
                    started = time.perf_counter()
                    remote.fetch(entry, Store(folder / f"dst-{jobs}-{run}"))
                    fetch_s.append(time.perf_counter() - started)
                for name, times in (("push", push_s), ("fetch", fetch_s)):
                    median = statistics.median(times)
                    print(
                        f"{name:5} jobs={jobs}: {median:6.3f} s  {total_mb / median:7.1f} MB/s "
                        f"(runs: {', '.join(f'{t:.3f}' for t in times)})"
                    )
        finally:
            server.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
