"""The books balance under any sequence of faults (a property test).

Hypothesis draws a few runs of one small project (images, a video, two assets that
share an action key) against the fake xAI server, each run with its own faults:
answers cut off after billing, truncated downloads, a store write that fails, an
unwritable ledger, 5xx answers and timeouts after a POST (the fake bills neither, but
the client cannot tell: each is recorded as maybe billed at its estimate and not
re-sent), and sometimes `--force` on one asset. After every run, and after two clean
runs at the end, it asserts:

- what the fake billed during a run never exceeds the run's budget;
- no key is billed twice unless a run forced it;
- the ledger (with lines still waiting in its pending file) equals the fake's billed
  ticks, maybe-billed lines included, plus the estimate of each submission the fake
  answered with a 5xx or not at all (billed or not, the client cannot know);
- every result the ledger says was billed is in the cache.

Seeds vary per run; a failure prints the seed (`MONEY_FAULTS_SEED=N` replays it).
"""

from __future__ import annotations

import contextlib
import os
import random
import tempfile
import textwrap
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import run_cli, wait_for_state
from hypothesis import HealthCheck, given, note, seed, settings
from hypothesis import strategies as st

from imaginebuild.errors import StoreError
from imaginebuild.money import usd_to_ticks
from imaginebuild.providers.xai.provider import BACKOFF_ENV
from imaginebuild.store.cache import Store
from imaginebuild.store.ledger import Billing, Ledger, counted
from imaginebuild.testing.fake_faults import Fault, Route
from imaginebuild.testing.fake_xai import FakeXai

SEED = int(os.environ.get("MONEY_FAULTS_SEED") or random.randrange(2**32))
KEY = "xai-FAULTS-KEY-0123456789abcdef"
PROMPTS = {"a": "one", "b": "two", "c": "same", "d": "same", "clip": "waves"}
MEDIAFILE = """
version: 1
provider: xai
providers:
  xai: {{poll_interval: 0.01, max_retries: 2, request_timeout: 0.3}}
{budget}
assets:
  a: {{kind: image, prompt: one}}
  b: {{kind: image, prompt: two}}
  c: {{kind: image, prompt: same}}
  d: {{kind: image, prompt: same}}
  clip: {{kind: video, prompt: waves, duration: 1, resolution: 480p}}
"""
FAULTS = (
    "cut_off_image",
    "cut_off_video",
    "truncated_download",
    "store_fails",
    "ledger_fails",
    "server_error",
    "timeout",
)
BUDGETS = (None, "0.02", "0.05", "0.09")


@contextlib.contextmanager
def faults(fake: FakeXai, chosen: frozenset[str]) -> Iterator[None]:
    """Inject this run's faults; the store and the ledger fail at their boundary."""
    patch = pytest.MonkeyPatch()
    if "cut_off_image" in chosen:
        fake.inject(Route.IMAGES, Fault.truncated())
    if "cut_off_video" in chosen:
        fake.inject(Route.VIDEOS, Fault.truncated())
    if "truncated_download" in chosen:
        fake.inject(Route.DOWNLOAD, *[Fault.truncated()] * 3)  # outlasts the retries
    if "server_error" in chosen:
        fake.inject(Route.IMAGES, Fault.http(503))
    if "timeout" in chosen:
        fake.inject(Route.IMAGES, Fault.hang(0.6))
    if "store_fails" in chosen:

        def full(self: Store, src: Path, media_type: str, *, move: bool = False) -> Any:
            raise StoreError(f"cannot write to the cache at {self.folder}: no space left")

        patch.setattr(Store, "put_file", full)
    if "ledger_fails" in chosen:
        append = Ledger.append

        def refuse(self: Ledger, entry: Any) -> bool:
            if self.path.name == "ledger.jsonl":
                raise StoreError(f"{self.path}: cannot append to the cost ledger")
            return append(self, entry)

        patch.setattr(Ledger, "append", refuse)
    try:
        yield
    finally:
        patch.undo()
        fake.clear_faults()


def billed_posts(fake: FakeXai) -> Counter[str]:
    """How many billed submissions the fake took per prompt."""
    routes = {Route.IMAGES, Route.VIDEOS}
    return Counter(
        str(r.body.get("prompt"))
        for r in fake.log
        if r.route in routes and r.status == 200 and isinstance(r.body, dict)
    )


def run(*args: str) -> int:
    """One in-process command here with this environment (its output is not needed)."""
    return run_cli(*args, cwd=Path.cwd(), env=os.environ).code


runs = st.lists(
    st.tuples(
        st.frozensets(st.sampled_from(FAULTS), max_size=3),
        st.sampled_from(BUDGETS),
        st.one_of(st.none(), st.sampled_from(sorted(PROMPTS))),
    ),
    min_size=1,
    max_size=3,
)


@seed(SEED)
@settings(
    max_examples=int(os.environ.get("MONEY_FAULTS_EXAMPLES") or 10),
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(sequence=runs)
def test_the_books_balance_under_any_fault_sequence(
    sequence: list[tuple[frozenset[str], str | None, str | None]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    note(f"seed {SEED} (replay: MONEY_FAULTS_SEED={SEED})")
    for name in list(os.environ):
        if name.startswith(("XAI_", "IMAGINEBUILD_", "GITHUB_")):
            monkeypatch.delenv(name)
    monkeypatch.setenv("XAI_API_KEY", KEY)
    monkeypatch.setenv(BACKOFF_ENV, "0.001,0.002")
    with tempfile.TemporaryDirectory() as tmp, FakeXai(pending_polls=0) as fake:
        folder = Path(tmp) / "p"
        folder.mkdir()
        monkeypatch.setenv("XAI_BASE_URL", fake.base_url)
        monkeypatch.setenv("IMAGINEBUILD_CACHE_DIR", str(Path(tmp) / "cache"))
        monkeypatch.chdir(folder)
        forced: Counter[str] = Counter()
        for chosen, budget, force in sequence:
            write(folder, budget)
            before = fake.billed_ticks()
            args = ["run", "-k"] + (["--force", force] if force else [])
            with faults(fake, chosen):
                run(*args)
            if force:
                forced[PROMPTS[force]] += 1
            if budget is not None:
                assert fake.billed_ticks() - before <= usd_to_ticks(budget), (chosen, budget)
            check_once_per_key(fake, forced)
        write(folder, None)
        run("run", "-k")
        run("run", "-k")
        check_once_per_key(fake, forced)
        ledger = Ledger(folder / ".imaginebuild" / "ledger.jsonl")
        entries = counted(ledger.all_entries())
        wait_for_state(lambda: len(fake.log) == fake.received(), "every request is logged")
        unknowable = unanswered_submissions(fake) * fake.prices.images(1)
        assert sum(e.ticks for e in entries) == fake.billed_ticks() + unknowable
        store = Store(Path(tmp) / "cache")
        try:
            for entry in entries:
                if entry.billing is Billing.BILLED:
                    assert store.get_action(entry.key) is not None, entry
        finally:
            store.close()


def write(folder: Path, budget: str | None) -> None:
    """The mediafile, with a per-run budget or none."""
    line = f"budget: {{max_usd: {budget}}}" if budget is not None else ""
    text = textwrap.dedent(MEDIAFILE).format(budget=line).lstrip()
    (folder / "mediafile.yaml").write_text(text, encoding="utf-8")


def unanswered_submissions(fake: FakeXai) -> int:
    """Image submissions the fake answered with a 5xx or not at all: unbilled there, but
    maybe billed for the client (only image routes get these faults here)."""
    return sum(
        1 for r in fake.log if r.route is Route.IMAGES and (r.status is None or r.status >= 500)
    )


def check_once_per_key(fake: FakeXai, forced: Counter[str]) -> None:
    """No prompt (hence no key) was billed more often than once plus its forced runs;
    the two assets sharing a key may be forced each."""
    for prompt, count in billed_posts(fake).items():
        assert count <= 1 + forced[prompt], (prompt, count, dict(forced))
