"""The wiring: one mediafile with its lockfile, state folder, caches and collaborators.

`ProjectCore` builds what every command shares (the DAG, the project state, the
local store, the remote link, the assessor and the materializer) and the few
steps several commands take (prune the lockfile, tidy up after killed runs,
remember a settled verdict). The commands themselves live beside it: `survey`,
`run` and `sync`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import os
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from imaginebuild.engine.assess import Assessor
from imaginebuild.engine.estimates import Estimator
from imaginebuild.engine.facts import Facts, RunOptions
from imaginebuild.engine.graph import Dag
from imaginebuild.engine.results import CommandResult
from imaginebuild.errors import LockfileWouldChange
from imaginebuild.events import Message, MessageLevel, NullReporter, Reporter
from imaginebuild.model import Asset, Mediafile, RefKind
from imaginebuild.project.prices import project_price_table
from imaginebuild.remote.link import RemoteLink
from imaginebuild.store import orphans, settled
from imaginebuild.store.cache import BlobRef, Store, default_cache_dir
from imaginebuild.store.failures import FailureLog
from imaginebuild.store.lockfile import LockEntry, write_lockfile
from imaginebuild.store.materialize import Materializer
from imaginebuild.store.state import ProjectState
from imaginebuild.untrusted import check_state_dir


class ProjectCore:
    """One mediafile with its lockfile, cache and providers (what the commands share)."""

    def __init__(
        self,
        mediafile: Mediafile,
        *,
        env: Mapping[str, str] | None = None,
        reporter: Reporter | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.mediafile = mediafile
        self.root = mediafile.root
        self.env: Mapping[str, str] = dict(os.environ if env is None else env)
        self.reporter: Reporter = reporter or NullReporter()
        self.clock = clock
        self.state = ProjectState(
            self.root,
            mediafile.lockfile_path,
            lambda text: self.reporter.emit(Message(MessageLevel.WARNING, text)),
        )
        check_state_dir(self.state.folder)  # through a symlink, state would land outside
        self.store = Store(
            default_cache_dir(self.root, dict(self.env)),
            lambda text: self.reporter.emit(Message(MessageLevel.WARNING, text)),
        )
        self.dag = Dag.from_assets(mediafile.assets)
        from imaginebuild.store.credentials import SigningConfig

        self.signing = SigningConfig.from_env(self.env)  # C2PA signing of outputs, if configured
        self.remote = RemoteLink(
            mediafile,
            self.env,
            self.store,
            warn=lambda text: self.reporter.emit(Message(MessageLevel.WARNING, text)),
            info=lambda text: self.reporter.emit(Message(MessageLevel.INFO, text)),
        )
        self.estimator = Estimator(mediafile, lambda: project_price_table(mediafile, self.env))
        self.assessor = Assessor(
            mediafile,
            dag=self.dag,
            store=self.store,
            state=self.state,
            remote=self.remote,
            estimator=self.estimator,
            env=self.env,
        )
        self.materializer = Materializer(self.root, self.store, self.state, self.signing)

    # ------------------------------------------------------------------ shared parts

    @property
    def state_dir(self) -> Path:
        """The project's `.imaginebuild/` folder."""
        return self.state.folder

    @property
    def failures(self) -> FailureLog:
        """The last failure of each asset."""
        return self.state.failures

    @functools.cached_property
    def templates(self) -> dict[str, str]:
        """The matrix template of each asset expanded from one."""
        return {n: a.template for n, a in self.mediafile.assets.items() if a.template is not None}

    def lock_entries(self) -> dict[str, LockEntry]:
        """The lockfile's entries (read once)."""
        return self.state.lock_entries()

    def asset_for(self, name: str, options: RunOptions) -> Asset:
        """The asset as this run builds it (`--provider` / IMAGINEBUILD_PROVIDER override)."""
        return self.assessor.asset_for(name, options)

    def assess(
        self, asset: Asset, known: Mapping[str, tuple[BlobRef, ...] | None], *, forced: bool
    ) -> Facts:
        """Gather an asset's facts (input hashes, lockfile, cache) and decide it."""
        return self.assessor.assess(asset, known, forced=forced)

    def materialize(
        self, asset: Asset, blobs: tuple[BlobRef, ...], provenance: Mapping[str, Any]
    ) -> bool:
        """Put an asset's outputs in place; False if they all were there already."""
        return self.materializer.materialize(asset, blobs, provenance)

    def _check_signing(self) -> None:
        """Refuse a broken signing setup before any call is paid for."""
        self.materializer.check_signing()

    def _wait_message(self, holder: str) -> None:
        self.reporter.emit(
            Message(
                MessageLevel.WARNING,
                f"waiting for another imaginebuild process ({holder}) to finish",
            )
        )

    def _tidy(self) -> None:
        """Clear what killed runs left behind (under the project lock): temp files of
        atomic writes in the output folders, work folders of dead processes; and note
        this project in the cache so gc from another project keeps its entries."""
        folders = {
            (self.root / rel).parent for a in self.mediafile.assets.values() for rel in a.outputs
        }
        for folder in folders:
            for stray in folder.glob(".*.tmp") if folder.is_dir() else []:
                with contextlib.suppress(OSError):
                    stray.unlink()
        self.store.clean_tmp()
        self.store.register_project(self.mediafile.lockfile_path)

    def _prune_lock(self, locked: bool) -> None:
        """Drop lockfile entries of assets no longer in the mediafile (read errors surface here)."""
        entries = self.lock_entries()
        removed = sorted(n for n in entries if n not in self.mediafile.assets)
        if not removed:
            return
        if locked:
            raise LockfileWouldChange(
                f"--locked: the lockfile still lists removed assets: {', '.join(removed)}",
                hint="run without --locked and commit mediafile.lock",
            )
        self._orphan_record().add(  # so `clean` can remove their files later
            orphans.Orphan(o.path, o.sha256, name)
            for name in removed
            for o in entries[name].outputs
        )
        for name in removed:
            del entries[name]
        write_lockfile(self.mediafile.lockfile_path, entries)

    def _orphan_record(self) -> orphans.OrphanRecord:
        """The record of outputs whose assets left the mediafile."""
        return orphans.OrphanRecord(self.state.layout.orphans)

    def _paths_in_use(self) -> set[str]:
        """Project-relative paths an asset declares as an output or reads as an input."""
        used = {rel for a in self.mediafile.assets.values() for rel in a.outputs}
        for asset in self.mediafile.assets.values():
            used |= {r.path for r in asset.inputs if r.kind is RefKind.FILE and r.path}
        return used

    def _with_orphan_note(self, result: CommandResult) -> CommandResult:
        """`result` with a message naming outputs of removed assets still on disk."""
        recorded = self._orphan_record().read()
        left = (
            orphans.present(self.root, recorded.values(), self._paths_in_use()) if recorded else []
        )
        if not left:
            return result
        names = ", ".join(o.path for o in left[:3]) + (", …" if len(left) > 3 else "")
        note = (
            f"{len(left)} output(s) of assets no longer in the mediafile remain ({names}): "
            "`imaginebuild clean` lists them, `imaginebuild clean --yes` removes them"
        )
        return dataclasses.replace(result, messages=(*result.messages, note))

    def _settled_stamp(self, targets: Sequence[str], options: RunOptions) -> str | None:
        """The settled snapshot's fingerprint for this command (None: no snapshot)."""
        mediafile = self.mediafile
        if not mediafile.source_digest:
            return None  # built by hand, not loaded from a file
        return settled.fingerprint(
            mediafile.path,
            mediafile.source_digest,
            policy=mediafile.policy,
            targets=targets,
            provider=options.provider,
            env=self.env,
        )

    def _remember_settled(
        self, targets: Sequence[str], options: RunOptions, facts: Mapping[str, Facts]
    ) -> None:
        """Write the settled snapshot: the verdict, and every file it read with its hash."""
        stamp = self._settled_stamp(targets, options)
        if stamp is None:
            return
        files: dict[Path, str] = {}
        try:
            files[self.mediafile.lockfile_path] = self.state.stat_cache().sha256(
                self.mediafile.lockfile_path
            )
        except OSError:
            return
        for f in facts.values():
            for ref, given in zip(f.asset.inputs, f.inputs, strict=True):
                if ref.kind is not RefKind.ASSET:  # files and URL blobs; an upstream is its lock
                    files[given.path] = given.sha256
            locked = self.lock_entries()[f.asset.name]
            for out in locked.outputs:
                files[self.root / out.path] = out.sha256
        settled.write(
            self.mediafile.path, stamp, files, [_settled_asset(f) for f in facts.values()]
        )


def _settled_asset(f: Facts) -> settled.SettledAsset:
    assert f.key is not None  # up to date means keyed
    return settled.SettledAsset(
        f.asset.name, f.asset.kind.value, f.key, f.asset.outputs, f.asset.template
    )
