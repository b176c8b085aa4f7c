"""Record first: a call that was, or may have been, billed is written to the ledger and
counted against the budgets the moment the provider says so.

    BillingBook                  one per run
      .account(asset, key, est)  one per step that calls a provider
        .on_billed(call)         the provider's hook: the ledger line is appended and
                                 fsynced, the budget settled, before anything else runs
        .succeeded(result)       calls the provider returned without reporting them
        .failed(error)           a billed failure keeps its cost, a maybe-billed one is
                                 recorded at the estimate; only a call that provably
                                 never reached the API releases its reservation
      .unsettled(key)            the key's last call may have been billed and its answer
                                 was lost: it is not re-sent without `--force`
      .finish()                  lines the ledger refused, appended now or reported

A line the ledger cannot take (an unwritable file, a full disk) never stops the
call: it is kept in `ledger-pending.jsonl` beside the ledger (or in memory when
that fails too) and appended at the start of the next run; the run reports it.
Each request id is counted once: a billed line settles an earlier maybe-billed
line of the same id, in the ledger and in the budget.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from imaginebuild.engine.budget import Budget
from imaginebuild.errors import (
    ImaginebuildError,
    JobFailed,
    MaybeBilled,
    ModerationRefused,
    ProviderError,
)
from imaginebuild.model import Asset
from imaginebuild.money import Billing, format_usd
from imaginebuild.providers.base import CallRecord, GenerationResult
from imaginebuild.spelled import ProviderName
from imaginebuild.store.ledger import Ledger, LedgerEntry, format_time


def _is_local(asset: Asset) -> bool:
    return asset.provider == ProviderName.LOCAL


class BillingBook:
    """The run's ledger writer and the per-asset record of what was billed."""

    def __init__(self, ledger_path: Path, run_id: str, budget: Budget) -> None:
        self.ledger = Ledger(ledger_path)
        self.pending = self.ledger.pending
        self.run_id = run_id
        self.budget = budget
        self.billed: dict[str, int] = {}  # asset -> ticks its calls were billed this run
        self.keys: dict[str, str] = {}  # asset -> the action key it called for
        self.unrecorded: list[LedgerEntry] = []  # neither the ledger nor the pending file took
        self.errors: list[str] = []
        self._held: dict[str, LedgerEntry] = {}

    def start(self) -> None:
        """Append the lines an earlier run could not write, and learn which keys hold an
        unsettled maybe-billed call (read once, at the start of the run)."""
        self._flush_pending()
        try:
            entries = self.ledger.all_entries()  # with lines still waiting to be appended
        except ImaginebuildError as exc:
            self.errors.append(exc.message)
            return
        self._held = unsettled_calls(entries)

    def pending_entries(self) -> list[LedgerEntry]:
        """Lines billed but not yet in the ledger (they count against the budgets too)."""
        try:
            kept = self.pending.entries()
        except ImaginebuildError:
            kept = []
        return [*kept, *self.unrecorded]

    def account(self, asset: Asset, key: str, estimate: int) -> CallAccount:
        """The account of one step's provider call(s)."""
        self.keys[asset.name] = key
        return CallAccount(self, asset, key, estimate)

    def unsettled(self, key: str) -> LedgerEntry | None:
        """The key's last ledger line when it may have been billed and no answer settled it."""
        return self._held.get(key)

    def settles(self, line: LedgerEntry) -> None:
        """A line just written: a maybe-billed one holds its key for the rest of the run
        too (a step sharing the key must not pay again); a billed one settles it."""
        if line.billing is Billing.MAYBE_BILLED:
            self._held[line.key] = line
        else:
            self._held.pop(line.key, None)

    def finish(self) -> tuple[str, ...]:
        """Append what the ledger refused during the run; messages for what is still out."""
        self._flush_pending()
        left = self.pending_entries()
        if not left:
            return tuple(self.errors)
        ticks = sum(e.ticks for e in left)
        where = "kept in memory only" if self.unrecorded else f"kept in {self.pending.path}"
        return (
            *self.errors,
            f"cost ledger not written: {len(left)} billed call(s), {format_usd(ticks)}, "
            f"{where}; they are appended by the next run",
        )

    def write(self, entry: LedgerEntry) -> bool:
        """Append `entry` to the ledger (False: its request id was already there); a
        ledger that cannot be written gets the line in the pending file instead."""
        try:
            return self.ledger.append(entry)
        except ImaginebuildError as exc:
            self._note(exc.message)
        try:
            self.pending.append(entry)
        except ImaginebuildError as exc:
            self._note(exc.message)
            self.unrecorded.append(entry)
        return True

    def _flush_pending(self) -> None:
        try:
            kept = self.pending.entries()
        except ImaginebuildError:
            kept = []
        if not kept and not self.unrecorded:
            return
        try:
            for entry in [*kept, *self.unrecorded]:
                self.ledger.append(entry)
        except ImaginebuildError as exc:
            self._note(exc.message)
            return
        self.unrecorded.clear()
        if kept:
            self.pending.path.unlink(missing_ok=True)

    def _note(self, message: str) -> None:
        if message not in self.errors:
            self.errors.append(message)


def unsettled_calls(entries: Iterable[LedgerEntry]) -> dict[str, LedgerEntry]:
    """Per key, its last line when that line may have been billed and no billed line of
    the same request id followed: the answer was lost, so a call could pay twice."""
    every = list(entries)
    billed_ids = {e.request_id for e in every if e.billing is Billing.BILLED and e.request_id}
    last: dict[str, LedgerEntry] = {}
    for entry in every:
        last[entry.key] = entry
    return {
        key: entry
        for key, entry in last.items()
        if entry.billing is Billing.MAYBE_BILLED and entry.request_id not in billed_ids
    }


@dataclass
class _Counted:
    """What one reported call put in the ledger and the budget."""

    ticks: int
    billing: Billing


@dataclass
class CallAccount:
    """One step's calls: each reported one is in the ledger and the budget exactly once."""

    book: BillingBook
    asset: Asset
    key: str
    estimate: int
    calls: dict[str, _Counted] = field(default_factory=dict)  # request id (or a token)
    _anonymous: int = 0

    @property
    def billed(self) -> int:
        """Ticks this step's calls count for (billed, or the estimate when maybe billed)."""
        return sum(c.ticks for c in self.calls.values())

    @property
    def reported(self) -> bool:
        """Whether any call of this step was (or may have been) billed."""
        return bool(self.calls)

    def on_billed(self, call: CallRecord) -> None:
        """The provider's record-first hook: ledger line and budget, now."""
        if _is_local(self.asset):
            return  # a rehearsal bills nothing
        ident = call.request_id
        if ident is None:
            self._anonymous += 1
            ident = f"#{self._anonymous}"
        held = self.calls.get(ident)
        if held is not None and not (
            held.billing is Billing.MAYBE_BILLED and call.billing is Billing.BILLED
        ):
            return  # the same call reported again (a re-poll): already counted
        if call.cost_ticks is not None:
            ticks = call.cost_ticks
        elif held is not None:
            ticks = held.ticks  # billed, figure unknown: the estimate it was held at
        elif call.billing is Billing.MAYBE_BILLED or not self.calls:
            ticks = self.estimate
        else:
            ticks = 0  # a further call of a step that reported none: the first carries it
        line = self._line(call, ticks)
        self.book.write(line)
        self.book.settles(line)
        if held is None:
            self.book.budget.settle(self.asset.name, ticks)
        else:
            self.book.budget.correct(held.ticks, ticks)
        self.calls[ident] = _Counted(ticks, call.billing)
        self.book.billed[self.asset.name] = (
            self.book.billed.get(self.asset.name, 0)
            + ticks
            - (held.ticks if held is not None else 0)
        )

    def succeeded(self, result: GenerationResult) -> None:
        """Count the calls of a finished request the provider did not report as they
        happened (a provider without the hook reports none); settle a reservation left."""
        hooked = self.reported  # the provider reported as it went: only ids can add news
        for call in result.calls:
            if call.request_id is not None or not hooked:
                self.on_billed(call)
        self.book.budget.release(self.asset.name)

    def failed(self, error: BaseException) -> None:
        """A failed request: keep what was billed, record what may have been, and release
        the reservation only when the call provably never reached the API."""
        if _is_local(self.asset):
            self.book.budget.release(self.asset.name)
            return
        if isinstance(error, ProviderError):
            self._record_failure(error)
        self.book.budget.release(self.asset.name)  # drops only a reservation nothing settled

    def _record_failure(self, error: ProviderError) -> None:
        info = error.info
        if info.request_id is None and self.reported:
            return  # the provider reported this step's calls as they were billed
        if info.cost_ticks is not None or (
            info.request_id and isinstance(error, (JobFailed, ModerationRefused))
        ):
            billing = Billing.BILLED  # the API answered: it billed (its figure, or the estimate)
        elif isinstance(error, MaybeBilled) or info.request_id:
            billing = Billing.MAYBE_BILLED  # the call reached the API; its outcome is lost
        else:
            return  # its billed calls were reported, or it never reached the API
        self.on_billed(
            CallRecord(
                endpoint=info.endpoint or "",
                model=self.asset.model,
                request_id=info.request_id,
                cost_ticks=info.cost_ticks,
                retries=info.retries,
                started_at=time.time(),
                billing=billing,
            )
        )

    def _line(self, call: CallRecord, ticks: int) -> LedgerEntry:
        return LedgerEntry(
            time=format_time((call.started_at or time.time()) + call.duration_s),
            run_id=self.book.run_id,
            asset=self.asset.name,
            key=self.key,
            provider=self.asset.provider,
            model=call.model or self.asset.model,
            endpoint=call.endpoint,
            request_id=call.request_id,
            ticks=ticks,
            estimated=call.cost_ticks is None,
            retries=call.retries,
            duration_s=round(call.duration_s, 3),
            billing=call.billing,
        )
