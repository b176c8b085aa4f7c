"""A step's inputs made safe to pay for: URL inputs fetched into the cache, and cached
input blobs checked against their hashes just before a call."""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable, Mapping
from pathlib import Path

from imaginebuild.engine.facts import url_pins
from imaginebuild.errors import CorruptBlob
from imaginebuild.model import Asset, Mediafile, RefKind
from imaginebuild.providers.base import InputFile
from imaginebuild.store.cache import BlobRef, Store
from imaginebuild.store.hashing import sha256_file
from imaginebuild.store.lockfile import LockEntry


def verified_input(
    store: Store,
    mediafile: Mediafile,
    root: Path,
    warn: Callable[[str], None],
    asset: Asset,
    item: InputFile,
) -> InputFile:
    """An input whose bytes were just checked against its hash: a paid call never
    starts from a corrupt cache blob. A corrupt blob is dropped and the asset's
    materialized copy used instead when that one is intact."""
    if item.path.parent.parent != store.blobs:
        return item  # a project file or an output just hashed by the survey
    try:
        store.verify_blob(item.sha256)
        return item
    except CorruptBlob as exc:
        for ref in asset.inputs:
            if ref.kind is not RefKind.ASSET or ref.asset is None:
                continue
            upstream = mediafile.assets[ref.asset]
            candidate = root / upstream.outputs[ref.index or 0]
            with contextlib.suppress(OSError):
                if sha256_file(candidate) == item.sha256:
                    warn(f"{exc}; using {candidate.name}")
                    return dataclasses.replace(item, path=candidate)
        raise


async def fetch_urls(
    store: Store, locked: LockEntry | None, env: Mapping[str, str], asset: Asset
) -> dict[str, BlobRef]:
    """Fetch URL inputs that are not pinned in the lockfile entry `locked` (or whose blob
    is gone)."""
    from imaginebuild.engine.fetch import fetch_to_file

    pins = url_pins(locked)
    fetched: dict[str, BlobRef] = {}
    for ref in asset.inputs:
        if ref.kind is not RefKind.URL or ref.url is None:
            continue
        if ref.url in pins and store.has_blob(pins[ref.url]):
            continue
        path, media = await fetch_to_file(ref.url, store.tmp_dir(), env)
        fetched[ref.url] = store.put_file(path, media, move=True)
    return fetched
