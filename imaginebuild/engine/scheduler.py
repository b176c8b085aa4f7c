"""The scheduler: runs opaque async steps in dependency order, critical path first.

A step starts as soon as all its parents succeeded (no level-by-level
barriers); among ready steps the highest priority goes first; at most `jobs`
run at once. When a step fails or is refused by policy its dependants are
skipped. After a failure, without keep-going, nothing new starts, but steps
already in flight finish — a paid call is never abandoned. A refusal (say, the
budget) does not stop the others: a cheaper step may still fit. Cancellation (Ctrl-C) cancels the
steps in flight and waits for them before propagating.
"""

from __future__ import annotations

import asyncio
import enum
import heapq
from collections.abc import Awaitable, Callable, Mapping, Sequence


class StepStatus(str, enum.Enum):
    """How a step ended, as far as the scheduler cares."""

    OK = "ok"
    FAILED = "failed"
    REFUSED = "refused"  # a policy (budget, --offline, --locked) refused to start it
    SKIPPED = "skipped"  # a parent did not succeed, or the run stopped first


async def run_steps(
    order: Sequence[str],
    parents: Mapping[str, Sequence[str]],
    priority: Mapping[str, float],
    run_step: Callable[[str], Awaitable[StepStatus]],
    *,
    jobs: int,
    keep_going: bool,
) -> dict[str, StepStatus]:
    """Run every step of `order` (topologically sorted) and return how each ended."""
    rank = {name: i for i, name in enumerate(order)}
    children = _children(order, parents)
    waiting = dict.fromkeys(order, 0)
    for child in (c for kids in children.values() for c in kids):
        waiting[child] += 1
    ready: list[tuple[float, int, str]] = []
    for name in order:
        if waiting[name] == 0:
            heapq.heappush(ready, (-priority.get(name, 0.0), rank[name], name))

    status: dict[str, StepStatus] = {}
    running: dict[asyncio.Task[StepStatus], str] = {}
    stopping = False
    try:
        while ready or running:
            while ready and len(running) < max(1, jobs) and not stopping:
                _, _, name = heapq.heappop(ready)
                if name in status:  # skipped while it waited
                    continue
                running[asyncio.ensure_future(run_step(name))] = name
            if not running:
                break
            done, _ = await asyncio.wait(running, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                name = running.pop(task)
                result = task.result()  # a bug in a step propagates; errors are statuses
                status[name] = result
                if result is StepStatus.OK:
                    for child in children[name]:
                        waiting[child] -= 1
                        if waiting[child] == 0 and child not in status:
                            heapq.heappush(ready, (-priority.get(child, 0.0), rank[child], child))
                else:
                    _skip_descendants(name, children, status)
                    if result is StepStatus.FAILED and not keep_going:
                        stopping = True
    except BaseException:
        for task in running:
            task.cancel()
        await asyncio.gather(*running, return_exceptions=True)
        raise
    for name in order:
        status.setdefault(name, StepStatus.SKIPPED)
    return status


def _children(order: Sequence[str], parents: Mapping[str, Sequence[str]]) -> dict[str, list[str]]:
    """Each step's children among the steps of `order`."""
    selected = set(order)
    children: dict[str, list[str]] = {n: [] for n in order}
    for name in order:
        for parent in parents.get(name, ()):
            if parent in selected:
                children[parent].append(name)
    return children


def _skip_descendants(
    name: str, children: Mapping[str, list[str]], status: dict[str, StepStatus]
) -> None:
    """Mark every step below `name` that has not ended yet as skipped."""
    stack = list(children[name])
    while stack:
        child = stack.pop()
        if child not in status:
            status[child] = StepStatus.SKIPPED
            stack.extend(children[child])


def exit_code_of(statuses: Mapping[str, StepStatus]) -> int:
    """A run's exit code from how its steps ended: 1 on a failure, else 3 on a refusal."""
    values = set(statuses.values())
    if StepStatus.FAILED in values:
        return 1
    if StepStatus.REFUSED in values:
        return 3
    return 0
