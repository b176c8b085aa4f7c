"""Nothing paid for is thrown away: a billed call's outputs are kept by action key until
they are stored, and a later run stores a kept result instead of paying again.

The runner links a call's outputs into the cache's `paid/` area (`store.paid`) as
they arrive, stores them, and then drops the entry. When checking or storing
fails, the entry stays with the reason; the next run that needs the key takes
it from there without a call (`--force` discards it and pays for a new take).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from pathlib import Path
from typing import TYPE_CHECKING

from imaginebuild.engine.facts import Facts
from imaginebuild.engine.jobs import JobBook
from imaginebuild.engine.takes import keep_rejected
from imaginebuild.errors import ImaginebuildError, InvalidMedia, RejectedTake, StoreError
from imaginebuild.provenance import Provenance
from imaginebuild.providers.base import GenerationResult, InputFile, OutputFile
from imaginebuild.spelled import ProviderName
from imaginebuild.store.cache import ActionEntry, Store
from imaginebuild.store.paid import PaidResults
from imaginebuild.store.takes import TakeBook

if TYPE_CHECKING:
    from imaginebuild.store.materialize import Materializer


def keep_received(
    paid: PaidResults, key: str, result: GenerationResult, record: Provenance
) -> bool:
    """Link a paid result's outputs under `key` before anything can fail; False when
    the file system refused (the work files are then the only copy)."""
    try:
        paid.keep(key, [(o.path, o.media_type) for o in result.outputs], record, "not stored yet")
    except OSError:
        return False
    return True


def take_kept(
    paid: PaidResults, key: str, workdir: Path
) -> tuple[GenerationResult, Provenance, str] | None:
    """A kept result of `key` as work files in `workdir` (links: the kept entry stays until
    the result is stored), its provenance record and why it was kept; None when there is
    none or it cannot be linked."""
    kept = paid.get(key)
    if kept is None:
        return None
    outputs = []
    try:
        for index, (path, media) in enumerate(zip(kept.files, kept.media_types, strict=True)):
            work = workdir / f"kept-{index}{path.suffix}"
            os.link(path, work)
            outputs.append(OutputFile(work, media))
    except OSError:
        for output in outputs:
            with contextlib.suppress(OSError):
                output.path.unlink()
        return None
    return GenerationResult(tuple(outputs)), kept.record, kept.reason


class ResultKeeper:
    """Checks and stores a step's result, keeping a paid one under its key until it is."""

    def __init__(
        self,
        store: Store,
        paid: PaidResults,
        materializer: Materializer,
        jobs: JobBook,
        takes: TakeBook,
    ) -> None:
        self.store = store
        self.paid = paid
        self.materializer = materializer
        self.jobs = jobs
        self.takes = takes
        self.rejected_keys: dict[str, tuple[str, str]] = {}  # key -> (asset, rejected take id)

    async def store_paid(
        self,
        f: Facts,
        result: GenerationResult,
        inputs: tuple[InputFile, ...],
        record: Provenance,
    ) -> ActionEntry:
        """Check and store a result that was paid for; whatever fails, it stays kept under
        its key so no later run pays for it again."""
        assert f.key is not None
        billed = f.asset.provider != ProviderName.LOCAL  # a rehearsal has nothing to keep
        paid = billed and keep_received(self.paid, f.key, result, record)
        try:
            # Decoding, hashing, copying and fsyncs take milliseconds per output: done on a
            # worker thread, so the event loop keeps polling and starting other steps.
            entry = await asyncio.to_thread(self.keep, f, result, inputs, record)
        except (ImaginebuildError, OSError) as exc:
            if isinstance(exc, RejectedTake):
                self.paid.discard(f.key)  # kept once, as the rejected take: not also here
            elif paid and self.store.get_action(f.key) is None:
                self.paid.note(f.key, str(exc))
                if isinstance(exc, OSError):
                    raise StoreError(
                        f"{f.asset.name}: the result was paid for but could not be stored "
                        f"({exc}); it is kept in {self.paid.folder} and stored by the next run "
                        "without a call"
                    ) from exc
            else:
                self.paid.discard(f.key)
            raise
        if paid:
            self.paid.discard(f.key)
        return entry

    def keep(
        self,
        f: Facts,
        result: GenerationResult,
        inputs: tuple[InputFile, ...],
        record: Provenance,
    ) -> ActionEntry:
        """Check a call's outputs, store them, record the action and put them in place."""
        from imaginebuild.engine.outputcheck import check_outputs

        assert f.key is not None and f.fields is not None
        try:
            check_outputs(f.asset, result.outputs, inputs)
        except InvalidMedia as exc:
            self.jobs.forget(f.key)  # bad at the source: resuming the job cannot help
            files = [(o.path, o.media_type) for o in result.outputs]
            kept = keep_rejected(self.store, self.takes, f.asset.name, f.key, f.fields.to_json(),
                                 files, record, exc.message)  # fmt: skip
            if kept is None:
                raise
            self.rejected_keys[f.key] = (f.asset.name, kept.id)
            raise RejectedTake(
                f"{exc.message}; the paid result is kept as rejected take {kept.id}",
                info=exc.info,
                hint=f"`imaginebuild accept {f.asset.name}` uses it despite the check; "
                f"`imaginebuild run --force {f.asset.name}` pays for a new take",
            ) from exc
        blobs = tuple(self.store.put_file(o.path, o.media_type, move=True) for o in result.outputs)
        previous = f.entry or self.store.get_action(f.key)
        takes = (*previous.takes, previous.outputs) if previous is not None else ()
        entry = ActionEntry(f.key, blobs, record, takes)
        self.store.put_action(entry)
        self.materializer.materialize(
            f.asset, blobs, {"key": f.key, **f.fields.to_json(), **record.to_json()}
        )
        return entry
