"""Where a team round's makespan goes: the timeline `bench_team.py --timeline` prints.

Every time is in seconds from the moment the runners were started (one wall
clock for all: the fake's request log, the coordinator's grant log (Redis server
time, same machine) and the runners' process ends). Per runner: when its
coordinator session opened (its runner id carries the time, taken at its first
paid call), its first and last submission slot, how many slots it took, how
many build leases it found held (and waited on), and when it ended. Then the
submission stream against the ideal one (the first submission, then one every
1/rate s), its widest gaps, and the tail after the last submission.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from imaginebuild.coordinator.base import Grant
from imaginebuild.testing.fake_xai import LoggedRequest, Route

SUBMISSIONS = (Route.IMAGES, Route.VIDEOS)


@dataclass(frozen=True)
class RunnerTimes:
    """One runner process, as its parent saw it."""

    pid: int
    started: float  # wall clock
    ended: float
    lease_waits: int  # "… is building KEY; waiting for its push" lines


def summary(
    t0: float,
    runners: Sequence[RunnerTimes],
    grants: Sequence[Grant],
    log: Sequence[LoggedRequest],
    rates: Mapping[str, int],
    startup_s: float,
) -> list[str]:
    """The timeline's lines (see the module docstring)."""
    lines = [f"timeline (s from start; `python -m imaginebuild --version` takes {startup_s:.2f})"]
    lines.append("| runner | session open | first slot | last slot | slots | lease waits | end |")
    lines.append("|---|---:|---:|---:|---:|---:|---:|")
    for r in runners:
        mine = [g for g in grants if g.runner.split(":")[-2] == str(r.pid)]
        opened = int(mine[0].runner.split(":")[-1]) / 1e3 - t0 if mine else float("nan")
        first = mine[0].time_ns / 1e9 - t0 if mine else float("nan")
        last = mine[-1].time_ns / 1e9 - t0 if mine else float("nan")
        lines.append(
            f"| {r.pid} | {opened:.2f} | {first:.2f} | {last:.2f} | {len(mine)} "
            f"| {r.lease_waits} | {r.ended - t0:.2f} |"
        )
    end = max(r.ended for r in runners) - t0
    for route, model in zip(SUBMISSIONS, rates, strict=True):
        lines += stream(t0, [e for e in log if e.route == route and e.status in (200, 429)],
                        model, rates[model], grants)  # fmt: skip
    subs = [e.at - t0 for e in log if e.route in SUBMISSIONS and e.status == 200]
    downloads = [e.at - t0 for e in log if e.route == Route.DOWNLOAD]
    polls = sum(1 for e in log if e.route in (Route.POLL, Route.IMAGE_POLL))
    refused = [e for e in log if e.route in SUBMISSIONS and e.status == 429]
    if refused:
        lines.append("429s: " + ", ".join(f"{e.route.value} at {e.at - t0:.2f}" for e in refused))
    if subs:
        lines.append(
            f"last submission {max(subs):.2f}, last download "
            f"{max(downloads, default=float('nan')):.2f}, last runner end {end:.2f} "
            f"(tail {end - max(subs):.2f}); {polls} polls"
        )
    return lines


def stream(
    t0: float, arrivals: Sequence[LoggedRequest], model: str, rate: int, grants: Sequence[Grant]
) -> list[str]:
    """One model's submissions (answered 200) against the ideal stream from its first one;
    each arrival, 429s included, paired with the grant it used (both in order)."""
    tried = sorted(e.at - t0 for e in arrivals)
    at = sorted(e.at - t0 for e in arrivals if e.status == 200)
    if not at:
        return []
    granted = sorted(g.time_ns / 1e9 - t0 for g in grants if g.model == model)
    ideal_last = at[0] + (len(at) - 1) / rate
    gaps = sorted(((b - a, a) for a, b in itertools.pairwise(at)), reverse=True)[:5]
    late = [a - g for a, g in zip(tried, granted, strict=False)]
    per_s = [sum(1 for a in at if int(a) == s) for s in range(int(at[-1]) + 1)]
    return [
        f"{model}: {len(at)} submissions, first {at[0]:.2f}, last {at[-1]:.2f} "
        f"(ideal at {rate}/s: {ideal_last:.2f}, {at[-1] - ideal_last:+.2f}); "
        f"grant → arrival median {sorted(late)[len(late) // 2] * 1e3:.0f} ms, "
        f"max {max(late) * 1e3:.0f} ms",
        f"  widest gaps: {', '.join(f'{g:.2f} s at {a:.1f}' for g, a in gaps)}",
        f"  per second: {' '.join(map(str, per_s))}",
    ] + [f"  grant → arrival ms: {' '.join(f'{x * 1e3:.0f}' for x in late)}"] * (len(late) <= 20)
