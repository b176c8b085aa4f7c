"""Whether a key may be sent to a provider again: the journal of submitted jobs (resumed at
no charge) and the ledger's unsettled calls (maybe billed, answer lost)."""

from __future__ import annotations

from pathlib import Path

from imaginebuild.engine.billing import BillingBook
from imaginebuild.errors import UnsettledCall
from imaginebuild.model import Asset
from imaginebuild.money import format_usd
from imaginebuild.spelled import ProviderName
from imaginebuild.store.cache import ActionEntry


class JobBook:
    """The run's view of the job journal in `folder` (absent until a provider journals)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def has(self, key: str) -> bool:
        """Whether a submitted job of `key` is journaled (a later call resumes it)."""
        from imaginebuild.store.journal import Journal

        return self.folder.is_dir() and Journal(self.folder).get(key) is not None

    def drop_stored(self, key: str, entry: ActionEntry | None) -> None:
        """Forget a journaled job whose result is already stored (a kill can fall between
        storing it and forgetting it): resuming it would pass an old take off as new."""
        if entry is None or not self.folder.is_dir():
            return
        from imaginebuild.store.journal import Journal

        journal = Journal(self.folder)
        record = journal.get(key)
        stored = set(entry.record.request_ids)
        if record is not None and record.request_id in stored:
            journal.remove(key)

    def forget(self, key: str) -> None:
        """Forget the journaled job of `key`: its result is stored, or bad at the source."""
        if self.folder.is_dir():
            from imaginebuild.store.journal import Journal

            Journal(self.folder).remove(key)


def refuse_unsettled(
    billing: BillingBook, jobs: JobBook, asset: Asset, key: str, forced: bool
) -> None:
    """A key whose last call may have been billed (its answer was lost) is not sent
    again unless forced; a journaled job of it is resumed instead, at no charge."""
    held = billing.unsettled(key)
    if held is None or forced or asset.provider == ProviderName.LOCAL or jobs.has(key):
        return
    raise UnsettledCall(
        f"{asset.name} not started: its last call ({held.request_id or 'no request id'}, "
        f"{held.time}) may have been billed {format_usd(held.ticks)} and its answer was lost",
        hint=f"run `imaginebuild run --force {asset.name}` to pay for a new call",
    )
