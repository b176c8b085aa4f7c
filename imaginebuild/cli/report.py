"""The static HTML report: one self-contained page of every asset, its media, lineage and cost.

    write_report(project, out_dir)
      ├─ collect   lockfile + mediafile + status ─▶ Card per asset (media copied
      │            into out_dir/media/ by content hash, so the folder stands alone)
      └─ render    cli/reportpage.py, pure: the DAG laid out in layers (topological
                   generations, barycentre order), Cards ─▶ HTML text (escaped)

The page has no script and loads nothing from the network: it works from
file://, in a CI artefact, or attached to a mail. A Content-Security-Policy
that forbids scripts guards against any escaping slip.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from imaginebuild.atomic import atomic_write_bytes, atomic_writer
from imaginebuild.cli.reportpage import Card, InputItem, MediaItem, Page, render_page
from imaginebuild.cli.reporttakes import take_items
from imaginebuild.errors import EnvironmentFailure, ImaginebuildError, StoreError
from imaginebuild.model import Asset, InputRef, RefKind
from imaginebuild.store.lockfile import LockedOutput, LockEntry
from imaginebuild.untrusted import Untrusted, confine, environment_failure, is_sha256

if TYPE_CHECKING:
    from imaginebuild.project import Project

MEDIA_DIR = "media"
_CHUNK = 1 << 20
_MEDIA_NAME = re.compile(r"^[0-9a-f]{64}\.[a-z0-9]+$")
_IMAGE_SUFFIXES = {
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".webp": "image/webp",
}
_SUFFIX = {"image/png": ".png", "image/jpeg": ".jpg", "image/webp": ".webp", "video/mp4": ".mp4"}


# ---------------------------------------------------------------------- the entry point


def write_report(project: Project, out_dir: Path) -> Path:
    """Write `out_dir/index.html` and copies of the media beside it; return the page's path.

    Media are copied (by content hash, verified) so the folder works on its own
    from file://. Assets never built show their declaration without media.
    Raises StoreError if the folder cannot be written.
    """
    out_dir = Path(out_dir)
    try:
        (out_dir / MEDIA_DIR).mkdir(parents=True, exist_ok=True)
        page = collect(project, out_dir)
        target = out_dir / "index.html"
        atomic_write_bytes(target, render_page(page).encode("utf-8"))
        _prune_media(out_dir / MEDIA_DIR, page)
    except OSError as exc:
        failure = environment_failure(exc)
        raise EnvironmentFailure(
            f"cannot write the report to {out_dir}: {failure.message}",
            hint=f"choose another folder with -o; {failure.hint}",
        ) from exc
    return target


def collect(project: Project, out_dir: Path) -> Page:
    """Gather the cards of every asset, copying their media into `out_dir/media/`."""
    mediafile = project.mediafile
    entries = project.lock_entries()
    states, notes = _states(project)
    copier = _Copier(project, out_dir)
    cards = []
    for name in project.dag.order:
        asset = mediafile.assets[name]
        state, reason = states.get(name, ("never_built" if name not in entries else "", ""))
        card = _card(asset, entries.get(name), state, reason, project.dag.children[name], copier)
        with contextlib.suppress(ImaginebuildError):
            rows = project.takes(name) if name in entries else ()
            card = dataclasses.replace(card, takes=take_items(rows, name, copier.output))
        cards.append(card)
    spent, maybe, ledger_notes = _spent(project)
    return Page(
        title=project.root.name or "imaginebuild",
        mediafile=mediafile.path.name,
        cards=tuple(cards),
        notes=(*notes, *ledger_notes, *copier.notes),
        spent_ticks=spent,
        maybe_billed_ticks=maybe,
    )


def _spent(project: Project) -> tuple[int | None, int, tuple[str, ...]]:
    """What the project's ledger shows billed, the maybe-billed part, and notes."""
    from imaginebuild.store.ledger import Ledger, summarize

    ledger = Ledger(project.state.layout.ledger)
    try:
        total = summarize(ledger.all_entries(), "asset").total
    except StoreError as exc:
        return None, 0, (f"spend unknown: {exc.message}",)
    skipped = (f"{ledger.skipped} unreadable ledger line(s) skipped",) if ledger.skipped else ()
    return total.ticks, total.maybe_billed_ticks, skipped


def _states(project: Project) -> tuple[dict[str, tuple[str, str]], tuple[str, ...]]:
    """Each asset's status (up to date / stale / never built / failed) with its reason."""
    try:
        result = project.status()
    except ImaginebuildError as exc:
        return {}, (f"status unknown: {exc.message}",)
    return {a.name: (a.state, a.reason) for a in result.assets}, ()


def _card(
    asset: Asset,
    entry: LockEntry | None,
    state: str,
    reason: str,
    dependants: Sequence[str],
    copier: _Copier,
) -> Card:
    inputs = tuple(_input_item(ref, copier) for ref in asset.inputs)
    base = Card(
        name=asset.name,
        kind=asset.kind.value,
        state=state,
        reason=reason,
        prompt=asset.prompt,
        provider=asset.provider,
        model=asset.model,
        params=asset.params(),
        variant=asset.variant,
        inputs=inputs,
        dependants=tuple(dependants),
        template=asset.template,
    )
    if entry is None:
        return base
    fields, record = entry.fields, entry.record
    prompt = str(fields.get("prompt", asset.prompt))
    params = fields.get("params")
    return dataclasses.replace(
        base,
        prompt=prompt,
        provider=str(fields.get("provider", asset.provider)),
        model=str(fields.get("model", asset.model)),
        params=params if isinstance(params, Mapping) else base.params,
        variant=int(fields.get("variant", asset.variant) or 0),
        outputs=tuple(copier.output(o) for o in entry.outputs),
        cost_ticks=record.cost_ticks,
        cost_estimated=record.cost_estimated,
        estimate_ticks=record.estimate_ticks,
        request_ids=record.request_ids,
        built_at=record.built_at,
        key=entry.key,
        built_from_older_prompt=prompt != asset.prompt,
    )


def _input_item(ref: InputRef, copier: _Copier) -> InputItem:
    """An input as linked on the page; a local image file is shown as it is now."""
    if ref.kind is RefKind.ASSET:
        return InputItem(ref.raw, asset=ref.asset)
    if ref.kind is RefKind.URL:
        return InputItem(ref.raw, url=ref.url)
    return InputItem(ref.raw, media=copier.input_file(ref.path or ref.raw))


def _text_or_none(value: object) -> str | None:
    return None if value is None else str(value)


# ---------------------------------------------------------------------- copying media


class _Copier:
    """Copies media into `out_dir/media/<sha256><suffix>`, verified, each blob once."""

    def __init__(self, project: Project, out_dir: Path) -> None:
        self.project = project
        self.folder = out_dir / MEDIA_DIR
        self.notes: list[str] = []
        self.copied: set[str] = set()

    def output(self, out: LockedOutput) -> MediaItem:
        """The page's item for one locked output (copied from the cache or the output dir)."""
        if not is_sha256(out.sha256):
            return MediaItem(out.path, out.media_type, out.sha256, out.size, None)
        sources = [self.project.store.blob_path(out.sha256)]
        with contextlib.suppress(Untrusted):
            sources.append(confine(self.project.root, out.path))
        href = self._copy(out.sha256, out.media_type, out.path, sources, out.size)
        return MediaItem(out.path, out.media_type, out.sha256, out.size, href)

    def input_file(self, rel: str) -> MediaItem | None:
        """A local input file, shown if it is an image the page can copy."""
        path = self.project.root / rel
        media_type = _IMAGE_SUFFIXES.get(path.suffix.lower())
        if media_type is None:
            return None
        try:
            sha = self.project.state.stat_cache().sha256(path)
            size = path.stat().st_size
        except OSError:
            return None
        href = self._copy(sha, media_type, rel, [path], size)
        return MediaItem(rel, media_type, sha, size, href)

    def _copy(
        self, sha: str, media_type: str, label: str, sources: Iterable[Path], size: int
    ) -> str | None:
        name = _media_name(sha, media_type)
        dest = self.folder / name
        # A copy is only ever written verified and renamed into place, so a file
        # under its own hash with the right size is one an earlier report made.
        if sha in self.copied or _size_of(dest) == size:
            self.copied.add(sha)
            return f"{MEDIA_DIR}/{name}"
        for src in sources:
            with contextlib.suppress(OSError):
                if _copy_verified(src, dest, sha):
                    self.copied.add(sha)
                    return f"{MEDIA_DIR}/{name}"
        self.notes.append(
            f"{label}: not in the cache nor the output folder (run `imaginebuild checkout`)"
        )
        return None


def _media_name(sha: str, media_type: str) -> str:
    return sha + _SUFFIX.get(media_type, ".bin")


def _size_of(path: Path) -> int | None:
    try:
        return path.stat().st_size
    except OSError:
        return None


class _Mismatch(Exception):
    """A source's bytes are not the ones the lockfile names (the copy is dropped)."""


def _copy_verified(src: Path, dest: Path, sha: str) -> bool:
    """Copy `src` to `dest` atomically if its bytes hash to `sha`; False (no file) if not."""
    digest = hashlib.sha256()
    try:
        with src.open("rb") as f, atomic_writer(dest) as out:
            while chunk := f.read(_CHUNK):
                digest.update(chunk)
                out.write(chunk)
            if digest.hexdigest() != sha:
                raise _Mismatch
    except _Mismatch:
        return False
    return True


def _prune_media(folder: Path, page: Page) -> None:
    """Drop media an earlier report copied that this one no longer shows."""
    keep = {
        Path(m.href).name
        for card in page.cards
        for m in (
            *card.outputs,
            *(i.media for i in card.inputs if i.media),
            *(m for t in card.takes for m in t.media),
        )
        if m.href
    }
    for path in folder.iterdir():
        if _MEDIA_NAME.match(path.name) and path.name not in keep:
            with contextlib.suppress(OSError):
                path.unlink()
