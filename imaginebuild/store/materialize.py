"""Putting blobs in place as a project's outputs, signed with content credentials if
configured; the stat cache vouches for each file written."""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from imaginebuild.errors import CorruptBlob, StoreError
from imaginebuild.model import Asset
from imaginebuild.store.cache import BlobRef, Store
from imaginebuild.store.state import ProjectState
from imaginebuild.store.takes import refuse_overwrite
from imaginebuild.untrusted import confine, media_matches, wrong_media

if TYPE_CHECKING:
    from imaginebuild.store.credentials import SigningConfig


class Materializer:
    """Copies (or signs) cache blobs to output paths under `root`."""

    def __init__(
        self, root: Path, store: Store, state: ProjectState, signing: SigningConfig | None
    ) -> None:
        self.root = root
        self.store = store
        self.state = state
        self.signing = signing

    def check_signing(self) -> None:
        """Refuse a broken signing setup before any call is paid for."""
        if self.signing is not None:
            from imaginebuild.store.credentials import check_signing_config

            check_signing_config(self.signing)

    def materialize(
        self, asset: Asset, blobs: tuple[BlobRef, ...], provenance: Mapping[str, Any]
    ) -> bool:
        """Put an asset's outputs in place; False if they all were there already."""
        changed = False
        for rel, blob in zip(asset.outputs, blobs, strict=True):
            changed |= self.place(asset.name, rel, blob, provenance)
        return changed

    def place(self, name: str, rel: str, blob: BlobRef, provenance: Mapping[str, Any]) -> bool:
        """Copy (or sign) one blob to `name`'s output path unless it is already there; never
        over a file retouched by hand (AssetOnHold)."""
        dest = confine(self.root, rel, StoreError)
        with contextlib.suppress(OSError):
            if self.state.stat_cache().sha256(dest) == blob.sha256 and media_matches(dest, rel):
                return False
        refuse_overwrite(name, rel, self.state.lock_entries().get(name), self.root,
                         self.state.stat_cache().sha256, self.store.has_blob)  # fmt: skip
        if not self.store.has_blob(blob.sha256):
            raise CorruptBlob(f"{rel}: blob {blob.sha256[:12]} is not in the cache")
        if not media_matches(self.store.blob_path(blob.sha256), rel):
            self.store.verify_blob(blob.sha256)  # a damaged blob is named (and dropped) as such
            raise wrong_media(rel, blob.sha256)
        if self.signing is None:
            self.store.materialize(blob, dest)
        else:
            from imaginebuild.store.credentials import sign_output

            self.store.verify_blob(blob.sha256)
            src = self.store.blob_path(blob.sha256)
            sign_output(src, dest, blob.media_type, dict(provenance), self.signing)
        # A signed file's bytes differ from the blob; the stat cache vouches for it as ours.
        self.state.stat_cache().remember(dest, blob.sha256)
        return True
