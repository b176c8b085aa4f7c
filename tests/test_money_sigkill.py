"""The books balance when `imaginebuild run` is SIGKILLed at random points (a property test).

Hypothesis draws a few attempts at one small project (images, an edit, a video, two
assets that share an action key) against the fake xAI server. Each attempt is a real
`python -m imaginebuild run` process, SIGKILLed the moment a drawn state is reached —
the N-th request the fake receives, the N-th bill, the N-th new journal record, the
N-th new ledger line — sometimes with its downloads cut off, sometimes forcing one
asset. Then a run to completion. After every kill the on-disk invariants hold (store,
lockfile, out/, ledger, journal: the crash-consistency checkers), and at the end:

- every ledger line is a bill of the fake, at the fake's figure, counted once;
- the ledger total equals the fake's billed ticks minus the bills lost in the one
  window no client can close (docs/money.md, "A kill"): the server billed a submission
  and the process died before its request id reached the journal. Each such bill lies
  in a killed run, was made for a step that was submitting at the kill (at most one
  per such step), and was never polled; every job that was polled or journaled is in
  the ledger;
- no key is billed twice unless forced, apart from those lost bills (the rerun pays
  again for a job it never heard of);
- every result the ledger says was billed is in the cache.

Seeds vary per run; a failure prints the seed (`MONEY_SIGKILL_SEED=N` replays the draws;
where a kill lands after its state is reached still depends on the machine).
"""

from __future__ import annotations

import enum
import os
import random
import signal
import tempfile
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from conftest import wait_for_state
from hypothesis import HealthCheck, given, note, seed, settings
from hypothesis import strategies as st
from reliability_support import (
    Proj,
    assert_consistent,
    cli,
    in_flight,
    make_project,
    spawn,
    states,
    unserved_connections,
)

from imaginebuild.providers.xai.provider import BACKOFF_ENV
from imaginebuild.store.cache import Store
from imaginebuild.store.journal import decode_record
from imaginebuild.store.ledger import Billing, Ledger, LedgerEntry, counted
from imaginebuild.testing.fake_faults import Fault, Route
from imaginebuild.testing.fake_xai import Bill, FakeXai

SEED = int(os.environ.get("MONEY_SIGKILL_SEED") or random.randrange(2**32))
PROMPTS = {"a": "one", "b": "two", "c": "same", "d": "same", "inked": "ink it", "clip": "waves"}
MEDIAFILE = """
version: 1
provider: xai
providers:
  xai: {poll_interval: 0.01, max_retries: 2}
assets:
  a: {kind: image, prompt: one}
  b: {kind: image, prompt: two}
  c: {kind: image, prompt: same}
  d: {kind: image, prompt: same}
  inked: {kind: edit, prompt: ink it, inputs: [a]}
  clip: {kind: video, prompt: waves, duration: 1, resolution: 480p}
"""
POLLS = frozenset({Route.POLL, Route.IMAGE_POLL})
FINISHED = {"built", "restored", "up_to_date"}


class Trigger(enum.Enum):
    """The state whose N-th occurrence in a run sets off the kill."""

    REQUEST = "request the fake received"
    BILL = "bill the fake made"
    JOURNAL = "new journal record"
    LEDGER = "new ledger line"


@dataclass(frozen=True)
class Attempt:
    """One run that is killed when its trigger fires (or finishes first)."""

    trigger: Trigger
    count: int
    cut_downloads: bool
    force: str | None


@dataclass(frozen=True)
class Kill:
    """What a kill left: the fake's bills made during the killed run, the prompts of the
    steps that were submitting, and the request ids the journal held."""

    bills: range
    submitting: Counter[str]
    journaled: frozenset[str]


def attempts() -> st.SearchStrategy[Attempt]:
    """An attempt: a trigger with a count it can reach in one run of the project."""
    highest = {Trigger.REQUEST: 24, Trigger.BILL: 6, Trigger.JOURNAL: 5, Trigger.LEDGER: 5}
    trigger = st.one_of(*(st.tuples(st.just(t), st.integers(1, n)) for t, n in highest.items()))
    return st.builds(
        lambda tc, cut, force: Attempt(tc[0], tc[1], cut, force),
        trigger,
        st.booleans(),
        st.one_of(st.none(), st.sampled_from(sorted(PROMPTS))),
    )


@seed(SEED)
@settings(
    max_examples=int(os.environ.get("MONEY_SIGKILL_EXAMPLES") or 8),
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(sequence=st.lists(attempts(), min_size=1, max_size=3))
def test_the_books_balance_when_runs_are_killed_at_random_points(
    sequence: list[Attempt],
) -> None:
    note(f"seed {SEED} (replay: MONEY_SIGKILL_SEED={SEED})")
    with tempfile.TemporaryDirectory() as tmp, FakeXai(pending_polls=1) as fake:
        proj = make_project(
            Path(tmp) / "p", fake, MEDIAFILE, extra_env={BACKOFF_ENV: "0.001,0.002"}
        )
        kills: list[Kill] = []
        forced: Counter[str] = Counter()
        for number, attempt in enumerate(sequence):
            if attempt.force:
                forced[PROMPTS[attempt.force]] += 1
            kill = killed_run(proj, fake, attempt, Path(tmp) / f"attempt{number}.stderr")
            if kill is not None:
                note(f"attempt {number} {attempt}: killed, {kill}")
                kills.append(kill)
                assert_consistent(proj, f"attempt {number} killed at {attempt}")
        final = cli(proj, "--json", "run")
        assert final.code == 0, final.stderr
        assert set(states(final).values()) <= FINISHED, final.stdout
        assert_consistent(proj, "the run to completion")
        settle(fake)
        check_books(proj, fake, kills, forced)


def killed_run(proj: Proj, fake: FakeXai, attempt: Attempt, stderr: Path) -> Kill | None:
    """Run once, SIGKILLed the moment the attempt's trigger fires; what the kill left,
    or None when the run finished first."""
    if attempt.cut_downloads:
        fake.inject(Route.DOWNLOAD, *[Fault.truncated()] * 3)  # outlasts the retries
    first_bill = len(fake.bills)
    fired = trigger(proj, fake, attempt)
    force = ["--force", attempt.force] if attempt.force else []
    child = spawn(proj, stderr, "-v", "run", "-k", *force)
    try:
        wait_for_state(
            lambda: child.poll() is not None or fired(),
            f"the {attempt.count}. {attempt.trigger.value}",
            log=stderr.read_text,
        )
        child.send_signal(signal.SIGKILL)  # a no-op when it has exited already
    finally:
        child.wait(timeout=30)
        fake.clear_faults()
    settle(fake)
    if child.returncode != -signal.SIGKILL:
        return None
    text = stderr.read_text()
    submitting = Counter(
        PROMPTS[a] for a, phase in in_flight(text).items() if phase == "upload/submit"
    )
    return Kill(range(first_bill, len(fake.bills)), submitting, journaled(proj))


def trigger(proj: Proj, fake: FakeXai, attempt: Attempt) -> Callable[[], bool]:
    """Whether the attempt's state has been reached, counted from now."""
    requests, bills = fake.received(), len(fake.bills)
    records, lines = journaled(proj), len(ledger_lines(proj))
    count = attempt.count
    if attempt.trigger is Trigger.REQUEST:
        return lambda: fake.received() - requests >= count
    if attempt.trigger is Trigger.BILL:
        return lambda: len(fake.bills) - bills >= count
    if attempt.trigger is Trigger.JOURNAL:
        return lambda: len(journaled(proj) - records) >= count
    return lambda: len(ledger_lines(proj)) - lines >= count


def settle(fake: FakeXai) -> None:
    """Wait until every request a killed client left on the wire has been handled and
    logged (the server may still bill one after the kill)."""
    wait_for_state(lambda: unserved_connections(fake.port) == 0, "every connection served")
    wait_for_state(lambda: len(fake.log) == fake.received(), "every request logged")


def journaled(proj: Proj) -> frozenset[str]:
    """The request ids of the jobs the journal holds (a record a writer left half-made,
    as a temp file, is not one)."""
    ids = set()
    for path in (proj.state / "journal").glob("[!.]*.json"):
        try:
            ids.add(decode_record(path.read_bytes()).request_id)
        except (OSError, ValueError):
            continue  # removed meanwhile
    return frozenset(ids)


def ledger_lines(proj: Proj) -> list[LedgerEntry]:
    """The ledger's complete lines with those waiting in its pending file."""
    return Ledger(proj.state / "ledger.jsonl").all_entries()


def check_books(proj: Proj, fake: FakeXai, kills: list[Kill], forced: Counter[str]) -> None:
    """The ledger against the fake's bills (see the module docstring)."""
    bills = fake.bills
    by_id = {b.request_id: b for b in bills}
    assert None not in by_id and len(by_id) == len(bills), "every call here is a job"
    entries = counted(ledger_lines(proj))
    for entry in entries:
        assert entry.billing is Billing.BILLED and not entry.estimated, entry
        bill = by_id.get(entry.request_id)
        assert bill is not None, f"a ledger line of no bill: {entry}"
        assert entry.ticks == bill.ticks, (entry, bill)
    recorded = {e.request_id for e in entries}
    assert len(recorded) == len(entries), "a request id counted twice"
    lost = [(index, b) for index, b in enumerate(bills) if b.request_id not in recorded]
    for index, bill in lost:
        check_lost(bill, index, kills)
    for kill in kills:
        in_kill = Counter(b.prompt for index, b in lost if index in kill.bills)
        assert in_kill <= kill.submitting, f"more bills lost than steps submitting: {in_kill}"
    polled = {r.path.rsplit("/", 1)[1] for r in fake.log if r.route in POLLS}
    assert not polled - recorded, "a polled job is missing from the ledger"
    for kill in kills:
        assert kill.journaled <= recorded, "a journaled job is missing from the ledger"
    assert sum(e.ticks for e in entries) == fake.billed_ticks() - sum(b.ticks for _, b in lost)
    paid = Counter(b.prompt for b in bills if b.request_id in recorded)
    for prompt, count in paid.items():
        assert count <= 1 + forced[prompt], (prompt, count, dict(forced))
    store = Store(proj.cache)
    try:
        for entry in entries:
            assert store.get_action(entry.key) is not None, f"a paid result is lost: {entry}"
    finally:
        store.close()


def check_lost(bill: Bill, index: int, kills: list[Kill]) -> None:
    """A bill missing from the ledger was made in a killed run, for a step that was
    submitting when the kill came (its request id never reached the journal)."""
    kill = next((k for k in kills if index in k.bills), None)
    assert kill is not None, f"a bill of a run that was not killed is missing: {bill}"
    assert bill.prompt in kill.submitting, f"a bill lost outside the submit window: {bill}"
    assert bill.request_id not in kill.journaled, bill


ONE_CLIP = """
version: 1
provider: xai
providers:
  xai: {poll_interval: 0.01}
assets:
  clip: {kind: video, prompt: a clip, duration: 1, resolution: 480p}
"""


def test_a_forced_take_killed_while_polling_is_collected_and_recorded_by_the_next_run(
    tmp_path: Path,
) -> None:
    with FakeXai(pending_polls=1) as fake:
        proj = make_project(tmp_path / "p", fake, ONE_CLIP)
        assert cli(proj, "run").code == 0
        fake.inject(Route.POLL, Fault.hang(60))  # holds the forced take's first poll
        err = tmp_path / "forced.stderr"
        child = spawn(proj, err, "-v", "run", "--force", "clip")
        try:
            wait_for_state(lambda: fake.pending_faults() == 0, "the poll", log=err.read_text)
            child.send_signal(signal.SIGKILL)
        finally:
            child.wait(timeout=30)
        [forced_job] = journaled(proj)
        rerun = cli(proj, "--json", "run")  # no --force: the take paid for is still collected
        assert rerun.code == 0, rerun.stderr
        assert states(rerun) == {"clip": "built"}
        assert len(fake.submissions()) == 2, "the forced job was submitted again"
        entries = counted(ledger_lines(proj))
        assert forced_job in {e.request_id for e in entries}
        assert sum(e.ticks for e in entries) == fake.billed_ticks()
        assert not journaled(proj)
        assert_consistent(proj, "after the rerun")
