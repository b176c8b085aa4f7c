"""The scheduler with fake async steps: order, priorities, -j, keep-going, cancellation."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import TypeVar

import pytest

from imaginebuild.engine.scheduler import StepStatus, run_steps

#   a ──▶ b ──▶ c        d (independent)
PARENTS: Mapping[str, Sequence[str]] = {"a": (), "b": ("a",), "c": ("b",), "d": ()}
ORDER = ("a", "b", "c", "d")
T = TypeVar("T")


Until = Callable[["Steps"], bool]
HARNESS_DEADLINE_S = 60.0  # bounds a deadlocked test; it never decides an outcome


def finished(name: str) -> Until:
    """Hold a step until `name` has finished."""
    return lambda steps: name in steps.finished


def started(*names: str) -> Until:
    """Hold a step until every one of `names` has started."""
    return lambda steps: all(n in steps.started for n in names)


def never(steps: Steps) -> bool:
    """Hold a step until it is cancelled."""
    return False


class Steps:
    """Fake steps that record start/finish order and how many ran at once.

    Order is decided by states, never by durations: a step listed in `until` finishes
    only once its condition on the others holds (a step that would wait forever because
    the scheduler got it wrong trips the harness deadline in `_run`).
    """

    def __init__(self, until: Mapping[str, Until] | None = None, fail: Sequence[str] = ()) -> None:
        self.until = until or {}
        self.fail = set(fail)
        self.started: list[str] = []
        self.finished: list[str] = []
        self.cancelled: list[str] = []
        self.running = 0
        self.max_running = 0
        self._changed: asyncio.Condition | None = None

    async def _notify(self) -> None:
        async with self.changed:
            self.changed.notify_all()

    @property
    def changed(self) -> asyncio.Condition:
        """Notified whenever a step starts or finishes (made in the running loop)."""
        if self._changed is None:
            self._changed = asyncio.Condition()
        return self._changed

    async def __call__(self, name: str) -> StepStatus:
        self.started.append(name)
        self.running += 1
        self.max_running = max(self.max_running, self.running)
        await self._notify()
        try:
            condition = self.until.get(name)
            if condition is None:
                await asyncio.sleep(0)
            else:
                async with self.changed:
                    await self.changed.wait_for(lambda: condition(self))
        except asyncio.CancelledError:
            self.cancelled.append(name)
            raise
        finally:
            self.running -= 1
        self.finished.append(name)
        await self._notify()
        return StepStatus.FAILED if name in self.fail else StepStatus.OK


async def _bounded(work: Awaitable[T]) -> T:
    """Await `work`; a deadlock fails the test as a harness error, with a message."""
    try:
        return await asyncio.wait_for(work, timeout=HARNESS_DEADLINE_S)
    except asyncio.TimeoutError:  # not the builtin TimeoutError before Python 3.11
        pytest.fail(f"harness: the steps deadlocked ({HARNESS_DEADLINE_S:.0f} s)")


def _run(
    steps: Callable[[str], Awaitable[StepStatus]],
    *,
    order: Sequence[str] = ORDER,
    parents: Mapping[str, Sequence[str]] = PARENTS,
    priority: Mapping[str, float] | None = None,
    jobs: int = 4,
    keep_going: bool = False,
) -> dict[str, StepStatus]:
    return asyncio.run(
        _bounded(run_steps(order, parents, priority or {}, steps, jobs=jobs, keep_going=keep_going))
    )


def test_every_step_runs_after_its_parents() -> None:
    steps = Steps({"d": finished("a")})
    status = _run(steps)
    assert status == dict.fromkeys(ORDER, StepStatus.OK)
    for child, parents in PARENTS.items():
        for parent in parents:
            assert steps.finished.index(parent) < steps.started.index(child)


def test_a_step_starts_as_soon_as_its_own_parents_finish() -> None:
    # no level barrier: c starts (and finishes) while the independent d is still running
    steps = Steps({"d": finished("c")})
    _run(steps)
    assert steps.finished.index("c") < steps.finished.index("d")


def test_ready_steps_start_critical_path_first() -> None:
    steps = Steps()
    order = ("leaf1", "leaf2", "head", "tail")
    parents = {"leaf1": (), "leaf2": (), "head": (), "tail": ("head",)}
    priority = {"leaf1": 1.0, "leaf2": 2.0, "head": 10.0, "tail": 8.0}
    _run(steps, order=order, parents=parents, priority=priority, jobs=1)
    assert steps.started == ["head", "tail", "leaf2", "leaf1"]


def test_ties_keep_declaration_order() -> None:
    steps = Steps()
    order = ("x", "y", "z")
    _run(steps, order=order, parents={}, jobs=1)
    assert steps.started == ["x", "y", "z"]


@pytest.mark.parametrize("jobs", [1, 2, 3])
def test_jobs_bounds_concurrency(jobs: int) -> None:
    # every step holds until `jobs` ran at once: fewer would deadlock, more shows in the peak
    steps = Steps(dict.fromkeys("pqrstu", lambda s: s.max_running >= jobs))
    _run(steps, order=tuple("pqrstu"), parents={}, jobs=jobs)
    assert steps.max_running == jobs


def test_a_failure_skips_dependants_and_stops_new_starts() -> None:
    steps = Steps(fail=["a"])
    status = _run(steps, jobs=1, priority={"a": 5, "d": 1})
    assert status == {
        "a": StepStatus.FAILED, "b": StepStatus.SKIPPED,
        "c": StepStatus.SKIPPED, "d": StepStatus.SKIPPED,
    }  # fmt: skip
    assert steps.started == ["a"]


def test_keep_going_runs_the_independent_branch() -> None:
    steps = Steps(fail=["a"])
    status = _run(steps, jobs=1, keep_going=True, priority={"a": 5, "d": 1})
    assert status == {
        "a": StepStatus.FAILED, "b": StepStatus.SKIPPED,
        "c": StepStatus.SKIPPED, "d": StepStatus.OK,
    }  # fmt: skip
    assert "b" not in steps.started and "c" not in steps.started


def test_refused_steps_skip_their_dependants_too() -> None:
    async def step(name: str) -> StepStatus:
        return StepStatus.REFUSED if name == "b" else StepStatus.OK

    status = _run(step, keep_going=True)
    assert status["b"] is StepStatus.REFUSED and status["c"] is StepStatus.SKIPPED
    assert status["d"] is StepStatus.OK


def test_stopping_on_failure_lets_in_flight_steps_finish() -> None:
    steps = Steps({"a": started("d"), "d": finished("a")}, fail=["a"])  # a fails while d runs
    status = _run(steps, jobs=2)
    assert status["d"] is StepStatus.OK  # a paid call is never abandoned
    assert "d" in steps.finished and not steps.cancelled


def test_cancellation_cancels_in_flight_steps_and_propagates() -> None:
    steps = Steps({"a": never, "d": never})

    async def main() -> None:
        task = asyncio.ensure_future(run_steps(ORDER, PARENTS, {}, steps, jobs=4, keep_going=False))
        async with steps.changed:
            await steps.changed.wait_for(lambda: started("a", "d")(steps))
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(_bounded(main()))
    assert sorted(steps.cancelled) == ["a", "d"]
    assert steps.running == 0  # every in-flight step was awaited before propagating


def test_a_bug_in_a_step_propagates_after_cancelling_the_others() -> None:
    steps = Steps({"d": never})

    async def step(name: str) -> StepStatus:
        if name == "a":
            async with steps.changed:  # raise only once d is in flight
                await steps.changed.wait_for(lambda: started("d")(steps))
            raise RuntimeError("boom")
        return await steps(name)

    with pytest.raises(RuntimeError, match="boom"):
        _run(step)
    assert steps.cancelled == ["d"]


def test_parents_outside_the_selection_are_ignored() -> None:
    steps = Steps()
    status = _run(steps, order=("b", "c"))
    assert status == {"b": StepStatus.OK, "c": StepStatus.OK}
