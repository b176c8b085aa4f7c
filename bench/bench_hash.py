"""Hashing: imaginebuild's sha256 against hashlib and the I/O floor; no-op runs over big inputs.

Three parts, each a markdown table on stdout (`--json FILE` writes every figure):

1. **Throughput.** One file of `--size-mib` random bytes (1 GiB by default),
   read once to warm the page cache, then hashed `--repeat` times by each method
   in turn (round robin, so a neighbour's burst of load spreads over all of
   them). The baseline is `hashlib.sha256` fed by the cheapest Python read loop
   (`readinto` a reused 1 MiB buffer): the cost of the digest itself. The other
   rows: imaginebuild's `sha256_file` and a first `StatCache.sha256` (empty
   cache), `hashlib.file_digest`, plain reading without hashing (the I/O floor),
   coreutils `sha256sum`, blake3 when it is importable, and the candidate
   `sha256_file` variants. Each as s/GiB of wall and of CPU time (median, min)
   and as ratios to the baseline; imaginebuild passes when its minimum CPU
   time is within 10 % of the baseline's (CPU time is what a busy neighbour
   disturbs least).
2. **Share of a cold build.** The `bench/pipeline.py` pipeline of `--pipeline`
   assets built cold with the local provider (`run -j 2`) in a process whose
   `hashlib.sha256` counts the bytes it digests and the time spent in
   `update`; then the same bytes priced against the xai provider's latencies.
3. **No-op over big inputs.** A project of `--inputs` edit assets, each with a
   local PNG input of `--input-mib` MiB (a 16x16 picture followed by a private
   ancillary chunk of random bytes: a valid PNG that the local provider decodes
   and reads whole), built once; then `run` with nothing to do, and `run` after
   touching one input. Bytes read are the child's `rchar` (every byte returned
   by read(2), page cache included) from /proc/PID/io, read while it is a
   zombie, before it is reaped.

    python bench/bench_hash.py [--quick] [--repeat N] [--json FILE]

The input files' mtimes are set an hour back after they are written: files
hashed within two seconds of their last write are hashed again on the next run
(the stat cache's guard against racy writes), and inputs of a real project are
older than that. Big files live in a temp folder that is removed at the end.
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import importlib
import json
import os
import resource
import shutil
import statistics
import struct
import subprocess
import sys
import tempfile
import time
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import pipeline  # noqa: E402  (the bench folder is not a package)

from imaginebuild.store.hashing import StatCache, sha256_file  # noqa: E402

GIB = 1 << 30
MIB = 1 << 20
BUDGET = 1.10  # imaginebuild's first hash within 10 % of hashlib.sha256
BASELINE = "hashlib.sha256, readinto 1 MiB (baseline)"

# ----------------------------------------------------------------------------- part 1: throughput


def write_random(path: Path, size: int, *, chunk: int = 16 * MIB) -> None:
    """Fill `path` with `size` random bytes, written in chunks."""
    with path.open("wb") as out:
        left = size
        while left:
            n = min(chunk, left)
            out.write(os.urandom(n))
            left -= n


def read_floor(path: Path) -> str:
    """Read the whole file into a reused 1 MiB buffer and hash nothing: the I/O floor."""
    buf = bytearray(MIB)
    with path.open("rb", buffering=0) as f:
        while f.readinto(buf):
            pass
    return ""


def sha256_read(path: Path, chunk: int = MIB) -> str:
    """hashlib.sha256 over `f.read(chunk)`: a new bytes object per chunk (today's sha256_file)."""
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while data := f.read(chunk):
            digest.update(data)
    return digest.hexdigest()


def sha256_readinto(path: Path, chunk: int = MIB) -> str:
    """hashlib.sha256 over `readinto` a reused buffer (unbuffered file, no copies)."""
    digest = hashlib.sha256()
    buf = bytearray(chunk)
    view = memoryview(buf)
    with path.open("rb", buffering=0) as f:
        while n := f.readinto(buf):
            digest.update(view[:n])
    return digest.hexdigest()


def sha256_file_digest(path: Path) -> str:
    """hashlib.file_digest (Python 3.11+: readinto a reused 256 KiB buffer)."""
    file_digest = getattr(hashlib, "file_digest")  # noqa: B009  (absent before 3.11)
    with path.open("rb", buffering=0) as f:
        return str(file_digest(f, "sha256").hexdigest())


def stat_cache_first(path: Path) -> str:
    """A first StatCache.sha256 of the file: empty cache, nothing persisted."""
    return StatCache(None).sha256(path)


def coreutils_sha256sum(path: Path) -> str:
    """`sha256sum FILE` as a child process."""
    done = subprocess.run(["sha256sum", str(path)], capture_output=True, text=True, check=True)
    return done.stdout.split()[0]


def load_blake3() -> Any | None:
    """The blake3 module when it is importable (it is not a dependency of the project)."""
    try:
        return importlib.import_module("blake3")
    except ImportError:
        return None


def blake3_methods(module: Any) -> dict[str, Callable[[Path], str]]:
    """blake3 fed by the same readinto loop, and its own multithreaded mmap reader."""

    def single(path: Path) -> str:
        digest = module.blake3()
        buf = bytearray(MIB)
        view = memoryview(buf)
        with path.open("rb", buffering=0) as f:
            while n := f.readinto(buf):
                digest.update(view[:n])
        return str(digest.hexdigest())

    methods: dict[str, Callable[[Path], str]] = {"blake3, readinto 1 MiB (1 thread)": single}
    if hasattr(module.blake3, "update_mmap"):

        def threaded(path: Path) -> str:
            digest = module.blake3(max_threads=module.blake3.AUTO)
            digest.update_mmap(str(path))
            return str(digest.hexdigest())

        methods["blake3, update_mmap (all cores)"] = threaded
    return methods


@dataclass
class Row:
    """One method's timings over the same file."""

    method: str
    kind: str  # "sha256", "floor", "other" (another digest)
    samples: list[float]  # wall seconds
    cpu_samples: list[float]  # CPU seconds (user + system, this process and its children)
    median_s_per_gib: float = 0.0
    min_s_per_gib: float = 0.0
    cpu_median_s_per_gib: float = 0.0
    cpu_min_s_per_gib: float = 0.0
    ratio_median: float = 0.0  # wall medians
    ratio_cpu_min: float = 0.0  # CPU minima: what the verdict uses


def cpu_seconds() -> float:
    """CPU time of this process and its reaped children (sha256sum runs as one)."""
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + children.ru_utime + children.ru_stime


def throughput_methods() -> list[tuple[str, str, Callable[[Path], str]]]:
    """Every method of part 1 as (name, kind, function); the baseline first."""
    methods: list[tuple[str, str, Callable[[Path], str]]] = [
        (BASELINE, "sha256", sha256_readinto),
        ("imaginebuild sha256_file", "sha256", sha256_file),
        ("imaginebuild StatCache.sha256, first hash", "sha256", stat_cache_first),
        ("hashlib.sha256, read() 1 MiB", "sha256", sha256_read),
        ("coreutils sha256sum", "sha256", coreutils_sha256sum),
        ("plain read, no hashing (I/O floor)", "floor", read_floor),
    ]
    if hasattr(hashlib, "file_digest"):
        methods.insert(4, ("hashlib.file_digest", "sha256", sha256_file_digest))
    for chunk in (64 * 1024, 256 * 1024, 4 * MIB):
        label = f"{chunk // 1024} KiB" if chunk < MIB else f"{chunk // MIB} MiB"
        methods.append(
            (
                f"candidate: readinto {label}",
                "sha256",
                functools.partial(sha256_readinto, chunk=chunk),
            )
        )
    module = load_blake3()
    if module is not None:
        methods += [(name, "other", fn) for name, fn in blake3_methods(module).items()]
    return methods


def measure_throughput(path: Path, repeat: int) -> tuple[list[Row], bool]:
    """Time every method `repeat` times, round robin; check the digests agree.

    Both wall and CPU time are kept: on a shared machine a neighbour stretches
    the wall time of whichever method it overlaps, much less its CPU time.
    """
    read_floor(path)  # warm the page cache
    methods = throughput_methods()
    rows = [Row(name, kind, [], []) for name, kind, _ in methods]
    expected: str | None = None
    for _ in range(repeat):
        for row, (_, kind, fn) in zip(rows, methods, strict=True):
            began, began_cpu = time.perf_counter(), cpu_seconds()
            digest = fn(path)
            row.samples.append(time.perf_counter() - began)
            row.cpu_samples.append(cpu_seconds() - began_cpu)
            if kind == "sha256":
                expected = expected or digest
                if digest != expected:
                    raise SystemExit(f"{row.method} gave {digest}, others {expected}")
    gib = path.stat().st_size / GIB
    base = rows[0]
    base_median, base_cpu_min = statistics.median(base.samples), min(base.cpu_samples)
    for row in rows:
        row.median_s_per_gib = statistics.median(row.samples) / gib
        row.min_s_per_gib = min(row.samples) / gib
        row.cpu_median_s_per_gib = statistics.median(row.cpu_samples) / gib
        row.cpu_min_s_per_gib = min(row.cpu_samples) / gib
        row.ratio_median = statistics.median(row.samples) / base_median
        row.ratio_cpu_min = min(row.cpu_samples) / base_cpu_min
    ours = next(r for r in rows if r.method == "imaginebuild sha256_file")
    return rows, ours.ratio_cpu_min <= BUDGET


def print_throughput(rows: Sequence[Row], size: int, ok: bool, blake3_found: bool) -> None:
    """Part 1 as a markdown table."""
    print(f"### Hashing {size / GIB:.3g} GiB, warm page cache\n")
    print("s/GiB: wall median, wall min, CPU median, CPU min; ratios to the baseline.\n")
    print("| method | wall med | wall min | CPU med | CPU min | × base wall med | × base CPU min |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(
            f"| {r.method} | {r.median_s_per_gib:.3f} | {r.min_s_per_gib:.3f} "
            f"| {r.cpu_median_s_per_gib:.3f} | {r.cpu_min_s_per_gib:.3f} "
            f"| {r.ratio_median:.2f} | {r.ratio_cpu_min:.2f} |"
        )
    if not blake3_found:
        print("| blake3 | not installed | | | | | |")
    verdict = "yes" if ok else "NO"
    print(
        f"\nimaginebuild sha256_file within {BUDGET:.2f} × the baseline (CPU minima): {verdict}\n"
    )


# ----------------------------------------------------------------------------- part 2: cold build

# Run in a child: count what hashlib.sha256 digests during `imaginebuild run`.
COUNTING_DRIVER = r"""
import hashlib, json, sys, threading, time
_real = hashlib.sha256
_lock = threading.Lock()
_total = {"bytes": 0, "seconds": 0.0, "objects": 0}

class _Counting:
    def __init__(self, data=b"", **kwargs):
        self._h = _real(**kwargs)
        with _lock:
            _total["objects"] += 1
        if data:
            self.update(data)
    def update(self, data):
        began = time.perf_counter()
        self._h.update(data)
        spent = time.perf_counter() - began
        with _lock:
            _total["bytes"] += memoryview(data).nbytes
            _total["seconds"] += spent
    def digest(self): return self._h.digest()
    def hexdigest(self): return self._h.hexdigest()
    def copy(self):
        other = _Counting.__new__(_Counting); other._h = self._h.copy(); return other
    name = "sha256"; digest_size = 32; block_size = 64

hashlib.sha256 = _Counting
from imaginebuild.cli.app import main
code = main(sys.argv[2:])
with open(sys.argv[1], "w") as f:
    json.dump(_total, f)
sys.exit(code)
"""


@dataclass
class ColdBuild:
    """A cold local build of the pipeline and what it hashed."""

    assets: int
    wall_s: float
    output_bytes: int
    hashed_bytes: int
    hash_seconds: float
    hash_objects: int


def cold_build(work: Path, assets: int, env: Mapping[str, str]) -> ColdBuild:
    """Build the N-asset pipeline once with `run -j 2`, counting sha256 work."""
    project = work / f"pipeline-{assets}"
    project.mkdir()
    (project / "mediafile.yaml").write_text(pipeline.mediafile(assets))
    counts = work / "hash-counts.json"
    argv = [sys.executable, "-c", COUNTING_DRIVER, str(counts), "-q", "run", "-j", "2"]
    began = time.perf_counter()
    done = subprocess.run(argv, cwd=project, env=dict(env), capture_output=True, text=True)
    wall = time.perf_counter() - began
    if done.returncode != 0:
        raise SystemExit(f"cold build failed ({done.returncode}):\n{done.stderr[-3000:]}")
    total = json.loads(counts.read_text())
    out = sum(p.stat().st_size for p in (project / "out").rglob("*") if p.is_file())
    shutil.rmtree(project, ignore_errors=True)
    return ColdBuild(
        assets, wall, out, int(total["bytes"]), float(total["seconds"]), int(total["objects"])
    )


def print_cold(build: ColdBuild, s_per_gib: float, args: argparse.Namespace) -> dict[str, float]:
    """Part 2: hashing's share of the local build and, priced, of an xai build."""
    passes = build.hashed_bytes / build.output_bytes if build.output_bytes else 0.0
    priced = build.hashed_bytes / GIB * s_per_gib
    # The xai pipeline: half images (image, edit), half videos (animate, extend) per chain.
    image_s = passes * args.xai_image_mb * 1e6 / GIB * s_per_gib
    video_s = passes * args.xai_video_mb * 1e6 / GIB * s_per_gib
    xai_hash = image_s + video_s
    xai_wait = args.xai_image_s + args.xai_video_s
    figures = {
        "passes": passes,
        "local_share_measured": build.hash_seconds / build.wall_s,
        "local_share_priced": priced / build.wall_s,
        "xai_share": xai_hash / xai_wait,
    }
    print(f"### Hashing in a cold build ({build.assets}-asset pipeline)\n")
    print("| figure | value |")
    print("|---|---:|")
    print(f"| local provider, `run -j 2`, wall time | {build.wall_s:.2f} s |")
    print(f"| output bytes | {build.output_bytes / 1e6:.1f} MB |")
    print(f"| bytes through sha256 (every call) | {build.hashed_bytes / 1e6:.1f} MB |")
    print(f"| … per output byte | {passes:.2f} × |")
    print(f"| time inside sha256 update (summed over threads) | {build.hash_seconds:.3f} s |")
    print(f"| share of the wall time, measured | {figures['local_share_measured']:.2%} |")
    priced_share = figures["local_share_priced"]
    print(f"| share, priced at sha256_file's {s_per_gib:.3f} s/GiB | {priced_share:.2%} |")
    print(
        f"| xai: image {args.xai_image_mb:g} MB after {args.xai_image_s:g} s, video "
        f"{args.xai_video_mb:g} MB after {args.xai_video_s:g} s, hashed {passes:.2f} × each "
        f"| {xai_hash * 1000:.1f} ms per {xai_wait:g} s = {figures['xai_share']:.4%} |"
    )
    print()
    return figures


# ----------------------------------------------------------------------------- part 3: no-op


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def write_big_png(path: Path, size: int, shade: int) -> None:
    """A valid 16x16 PNG of exactly `size` bytes: a private ancillary chunk carries the bulk.

    The chunk `bnCh` (ancillary, private, safe to copy) follows IDAT and holds
    random bytes with their CRC, so decoders read it and skip it.
    """
    raw = b"".join(b"\0" + bytes((shade, 4 * y, 255 - shade)) * 16 for y in range(16))
    head = b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", struct.pack(">IIBBBBB", 16, 16, 8, 2, 0, 0, 0))
    head += _chunk(b"IDAT", zlib.compress(raw))
    tail = _chunk(b"IEND", b"")
    bulk = size - len(head) - len(tail) - 12
    if not 0 <= bulk < 1 << 31:
        raise SystemExit(f"cannot make a PNG of {size} bytes")
    with path.open("wb") as out:
        out.write(head + struct.pack(">I", bulk) + b"bnCh")
        crc, left = zlib.crc32(b"bnCh"), bulk
        while left:
            data = os.urandom(min(16 * MIB, left))
            crc = zlib.crc32(data, crc)
            out.write(data)
            left -= len(data)
        out.write(struct.pack(">I", crc) + tail)


@dataclass
class Measured:
    """One child process: wall time, bytes it read, exit code."""

    seconds: float
    rchar: int
    read_bytes: int
    returncode: int


def run_measured(argv: Sequence[str], cwd: Path, env: Mapping[str, str], log: Path) -> Measured:
    """Run `argv`; read its /proc/PID/io after it exits but before it is reaped."""
    with log.open("wb") as out:
        began = time.perf_counter()
        child = subprocess.Popen(argv, cwd=cwd, env=dict(env), stdout=out, stderr=out)
        os.waitid(os.P_PID, child.pid, os.WEXITED | os.WNOWAIT)
        seconds = time.perf_counter() - began
        io = dict(
            line.split(": ")
            for line in Path(f"/proc/{child.pid}/io").read_text().splitlines()
            if ": " in line
        )
        child.wait()
    return Measured(seconds, int(io["rchar"]), int(io["read_bytes"]), child.returncode)


def checked(measured: Measured, what: str, log: Path) -> Measured:
    """`measured`, or exit with the child's output when it failed."""
    if measured.returncode != 0:
        tail = log.read_text(errors="replace")[-3000:]
        raise SystemExit(f"{what} exited {measured.returncode}:\n{tail}")
    return measured


def noop_project(work: Path, count: int, size: int) -> Path:
    """A project of `count` edit assets, each on its own big PNG input."""
    project = work / "big-inputs"
    (project / "inputs").mkdir(parents=True)
    lines = ["version: 1", "provider: local", "assets:"]
    past = time.time() - 3600
    for i in range(count):
        png = project / "inputs" / f"big{i}.png"
        write_big_png(png, size, (37 * i) % 256)
        os.utime(png, (past, past))
        lines.append(
            f"  e{i}: {{kind: edit, prompt: 'big input {i}', inputs: [inputs/big{i}.png]}}"
        )
    (project / "mediafile.yaml").write_text("\n".join(lines) + "\n")
    return project


def measure_noop(
    work: Path, count: int, size: int, repeat: int, env: Mapping[str, str]
) -> list[tuple[str, Measured]]:
    """Build once, then time no-op runs and a run after touching one input."""
    project = noop_project(work, count, size)
    log = work / "noop.log"
    run = [sys.executable, "-m", "imaginebuild", "-q", "run", "-j", "2"]

    def measured(argv: Sequence[str], what: str) -> Measured:
        return checked(run_measured(argv, project, env, log), what, log)

    cases = [
        ("python -c pass", measured([sys.executable, "-c", "pass"], "python")),
        ("first build (hashes and decodes every input)", measured(run, "the build")),
    ]
    noops = sorted((measured(run, "a no-op run") for _ in range(repeat)), key=lambda m: m.seconds)
    cases.append((f"no-op run (median of {repeat})", noops[len(noops) // 2]))
    os.utime(project / "inputs" / "big0.png")  # same bytes, new mtime: rehash that one
    cases.append(("run after touching one input", measured(run, "the run after touch")))
    lock = json.loads((project / "mediafile.lock").read_text())
    if len(lock["assets"]) != count:
        raise SystemExit(f"the lockfile has {len(lock['assets'])} assets, expected {count}")
    shutil.rmtree(project, ignore_errors=True)
    return cases


def print_noop(cases: Sequence[tuple[str, Measured]], count: int, size: int) -> None:
    """Part 3 as a markdown table."""
    total = count * size
    print(f"### Runs over {count} inputs of {size / MIB:g} MiB ({total / GIB:.3g} GiB in all)\n")
    print("| case | wall s | rchar | read_bytes | rchar / inputs |")
    print("|---|---:|---:|---:|---:|")
    for name, m in cases:
        print(
            f"| {name} | {m.seconds:.3f} | {m.rchar / MIB:,.1f} MiB "
            f"| {m.read_bytes / MIB:,.1f} MiB | {m.rchar / total:.5f} |"
        )
    print()


# ----------------------------------------------------------------------------- main


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """The command line; `--quick` shrinks every size for iteration."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, for iteration")
    parser.add_argument("--size-mib", type=int, default=None, help="hashed file (default 1024)")
    parser.add_argument("--repeat", type=int, default=None, help="timed runs (default 5)")
    parser.add_argument("--pipeline", type=int, default=None, help="cold build assets (100)")
    parser.add_argument("--inputs", type=int, default=10, help="big inputs of the no-op part")
    parser.add_argument("--input-mib", type=int, default=None, help="each big input (1024)")
    parser.add_argument("--xai-image-s", type=float, default=8.0)
    parser.add_argument("--xai-video-s", type=float, default=45.0)
    parser.add_argument("--xai-image-mb", type=float, default=2.0)
    parser.add_argument("--xai-video-mb", type=float, default=15.0)
    parser.add_argument("--skip", action="append", default=[], choices=["build", "noop"])
    parser.add_argument("--tmp", type=Path, default=None, help="where the big files go")
    parser.add_argument("--json", type=Path, default=None, help="write every figure here")
    args = parser.parse_args(argv)
    quick = args.quick
    args.size_mib = args.size_mib or (64 if quick else 1024)
    args.repeat = args.repeat or (3 if quick else 5)
    args.pipeline = args.pipeline or (8 if quick else 100)
    args.input_mib = args.input_mib or (16 if quick else 1024)
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Run the three parts; exit 1 when imaginebuild's hash is over budget."""
    args = parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="bench-hash-", dir=args.tmp))
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONPYCACHEPREFIX": str(work / "pycache")}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    report: dict[str, Any] = {"size_bytes": args.size_mib * MIB, "repeat": args.repeat}
    try:
        big = work / "big.bin"
        write_random(big, args.size_mib * MIB)
        rows, ok = measure_throughput(big, args.repeat)
        big.unlink()
        blake3_found = load_blake3() is not None
        print_throughput(rows, args.size_mib * MIB, ok, blake3_found)
        report |= {"throughput": [asdict(r) for r in rows], "ok": ok, "blake3": blake3_found}
        if "build" not in args.skip:
            build = cold_build(work, args.pipeline, env)
            ours = next(r for r in rows if r.method == "imaginebuild sha256_file")
            figures = print_cold(build, ours.cpu_median_s_per_gib, args)
            report["cold_build"] = {**asdict(build), **figures}
        if "noop" not in args.skip:
            size = args.input_mib * MIB
            cases = measure_noop(work, args.inputs, size, args.repeat, env)
            print_noop(cases, args.inputs, size)
            report["noop"] = {
                "inputs": args.inputs,
                "input_bytes": size,
                "cases": [{"case": name, **asdict(m)} for name, m in cases],
            }
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if args.json:
        args.json.write_text(json.dumps(report, indent=1) + "\n")
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
