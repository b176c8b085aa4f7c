"""The static HTML report: one self-contained page of every asset, its media, lineage and cost.

    write_report(project, out_dir)
      ├─ collect   lockfile + mediafile + status ─▶ Card per asset (media copied
      │            into out_dir/media/ by content hash, so the folder stands alone)
      ├─ layout    the DAG in layers (topological generations), barycentre order
      └─ render    pure: Cards + Layout ─▶ HTML text (every user string escaped)

The page has no script and loads nothing from the network: it works from
file://, in a CI artefact, or attached to a mail. A Content-Security-Policy
that forbids scripts guards against any escaping slip.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import html
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from imaginebuild.atomic import atomic_write_bytes, atomic_writer
from imaginebuild.cli.reporttakes import CSS as TAKES_CSS
from imaginebuild.cli.reporttakes import TakeItem, render_takes, take_items
from imaginebuild.engine.graph import generations
from imaginebuild.errors import EnvironmentFailure, ImaginebuildError, StoreError
from imaginebuild.model import Asset, InputRef, RefKind
from imaginebuild.money import format_usd, ticks_of_text
from imaginebuild.store.lockfile import LockedOutput, LockEntry
from imaginebuild.untrusted import Untrusted, confine, environment_failure, is_sha256
from imaginebuild.version import __version__

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


# ---------------------------------------------------------------------- data


@dataclass(frozen=True)
class MediaItem:
    """One output (or input file) as the page shows it; `href` None when no copy exists."""

    path: str
    media_type: str
    sha256: str
    size: int
    href: str | None


@dataclass(frozen=True)
class InputItem:
    """One entry of an asset's inputs: another asset (linked) or a file/URL (maybe shown)."""

    ref: str
    asset: str | None = None
    url: str | None = None
    media: MediaItem | None = None


@dataclass(frozen=True)
class Card:
    """Everything the page says about one asset."""

    name: str
    kind: str
    state: str
    reason: str
    prompt: str
    provider: str
    model: str
    params: Mapping[str, object]
    variant: int
    inputs: tuple[InputItem, ...] = ()
    dependants: tuple[str, ...] = ()
    outputs: tuple[MediaItem, ...] = ()
    cost_usd: str | None = None
    cost_estimated: bool = False
    estimate_usd: str | None = None
    request_ids: tuple[str, ...] = ()
    built_at: str | None = None
    key: str | None = None
    built_from_older_prompt: bool = False
    template: str | None = None  # the matrix template the asset was expanded from
    takes: tuple[TakeItem, ...] = ()  # every take side by side (issue 17), when several


@dataclass(frozen=True)
class Layout:
    """Node positions of the drawn DAG (top-left corners) and the canvas size."""

    nodes: Mapping[str, tuple[float, float, float]]  # name -> (x, y, width)
    edges: tuple[tuple[str, str], ...]
    width: float
    height: float


@dataclass(frozen=True)
class Page:
    """The whole report: a title, the cards in graph order, the DAG layout."""

    title: str
    mediafile: str
    cards: tuple[Card, ...]
    notes: tuple[str, ...] = field(default=())
    spent_ticks: int | None = None  # what the ledger shows billed (None: no ledger to read)
    maybe_billed_ticks: int = 0  # the part of it that may have been billed


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
        cost_usd=_text_or_none(record.get("cost_usd")),
        cost_estimated=bool(record.get("cost_estimated", False)),
        estimate_usd=_text_or_none(record.get("estimate_usd")),
        request_ids=tuple(str(r) for r in record.get("request_ids") or () if r),
        built_at=_text_or_none(record.get("built_at")),
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
            sha = self.project.stat_cache().sha256(path)
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


# ---------------------------------------------------------------------- DAG layout (pure)

_NODE_H = 34.0
_CHAR_W = 7.4
_PAD_X = 14.0
_GAP_X = 56.0
_GAP_Y = 16.0
_MARGIN = 12.0


def node_label(name: str, kind: str) -> str:
    """The text of a node: the asset's name and kind."""
    return f"{name} · {kind}"


def layout_dag(
    order: Sequence[str],
    parents: Mapping[str, Sequence[str]],
    kinds: Mapping[str, str] | None = None,
) -> Layout:
    """Layers left to right by longest path from a root (networkx's topological
    generations); order within a layer by barycentre.

    `order` must be topological. Widths follow the label length (monospace).
    """
    layers = generations(order, parents)
    rank: dict[str, float] = {}
    for layer in layers:
        layer.sort(key=lambda n: _barycentre(n, parents, rank))
        rank.update({n: float(i) for i, n in enumerate(layer)})
    nodes: dict[str, tuple[float, float, float]] = {}
    x = _MARGIN
    tallest = 0
    for layer in layers:
        widths = {n: _node_width(n, kinds) for n in layer}
        column = max(widths.values(), default=0.0)
        for i, name in enumerate(layer):
            nodes[name] = (x, _MARGIN + i * (_NODE_H + _GAP_Y), widths[name])
        x += column + _GAP_X
        tallest = max(tallest, len(layer))
    edges = tuple((p, n) for n in order for p in parents[n])
    height = 2 * _MARGIN + tallest * _NODE_H + max(tallest - 1, 0) * _GAP_Y
    return Layout(nodes, edges, max(x - _GAP_X + _MARGIN, 2 * _MARGIN), height)


def _barycentre(
    name: str, parents: Mapping[str, Sequence[str]], rank: Mapping[str, float]
) -> float:
    ranks = [rank[p] for p in parents[name] if p in rank]
    return sum(ranks) / len(ranks) if ranks else float("inf")


def _node_width(name: str, kinds: Mapping[str, str] | None) -> float:
    text = node_label(name, kinds[name]) if kinds else name
    return round(len(text) * _CHAR_W + 2 * _PAD_X, 1)


# ---------------------------------------------------------------------- rendering (pure)


def esc(value: object) -> str:
    """Escape any user-provided value for HTML text and attribute values."""
    return html.escape(str(value), quote=True)


def render_page(page: Page) -> str:
    """The whole HTML document of a report."""
    kinds = {c.name: c.kind for c in page.cards}
    states = {c.name: c.state for c in page.cards}
    layout = layout_dag([c.name for c in page.cards], _parents(page.cards), kinds)
    outputs_cost = sum(ticks_of_text(c.cost_usd) for c in page.cards)
    built = sum(1 for c in page.cards if c.outputs)
    notes = "".join(f"<li>{esc(n)}</li>" for n in page.notes)
    return _DOCUMENT.format(
        title=esc(page.title),
        mediafile=esc(page.mediafile),
        css=_CSS + TAKES_CSS,
        count=len(page.cards),
        built=built,
        spent=esc(_spent_text(page)),
        outputs_cost=esc(format_usd(outputs_cost)),
        version=esc(__version__),
        notes=f'<ul class="notes">{notes}</ul>' if notes else "",
        svg=render_svg(layout, kinds, states),
        cards=render_cards(page.cards),
    )


def render_cards(cards: Sequence[Card]) -> str:
    """Every card in graph order, the expansions of each matrix template gathered in one
    section (headed by the template's name) where its first expansion comes."""
    members: dict[str, list[Card]] = {}
    for card in cards:
        if card.template is not None:
            members.setdefault(card.template, []).append(card)
    parts: list[str] = []
    for card in cards:
        if card.template is None:
            parts.append(render_card(card))
        elif members[card.template][0] is card:
            group = members[card.template]
            parts.append(
                f'<section class="template"><h2 class="template-name">{esc(card.template)} '
                f'<span class="count">{len(group)} assets</span></h2>'
                + "\n".join(render_card(c) for c in group)
                + "</section>"
            )
    return "\n".join(parts)


def _parents(cards: Sequence[Card]) -> dict[str, tuple[str, ...]]:
    names = {c.name for c in cards}
    return {
        c.name: tuple(dict.fromkeys(i.asset for i in c.inputs if i.asset in names and i.asset))
        for c in cards
    }


def render_svg(layout: Layout, kinds: Mapping[str, str], states: Mapping[str, str]) -> str:
    """The DAG as inline SVG: linked nodes, curved edges with arrows."""
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="dag" role="img" '
        f'aria-label="asset graph" width="{layout.width:.0f}" height="{layout.height:.0f}" '
        f'viewBox="0 0 {layout.width:.0f} {layout.height:.0f}">',
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" '
        'markerHeight="7" orient="auto-start-reverse"><path d="M0,0L10,5L0,10z" '
        'class="arrow"/></marker></defs>',
    ]
    for src, dst in layout.edges:
        x1, y1, w1 = layout.nodes[src]
        x2, y2, _ = layout.nodes[dst]
        sx, sy, tx, ty = x1 + w1, y1 + _NODE_H / 2, x2 - 2, y2 + _NODE_H / 2
        mid = (sx + tx) / 2
        parts.append(
            f'<path class="edge" d="M{sx:.1f},{sy:.1f} C{mid:.1f},{sy:.1f} {mid:.1f},{ty:.1f} '
            f'{tx:.1f},{ty:.1f}" marker-end="url(#arrow)"/>'
        )
    for name, (x, y, w) in layout.nodes.items():
        label = node_label(name, kinds.get(name, ""))
        parts.append(
            f'<a href="#asset-{esc(name)}" class="node state-{esc(states.get(name, ""))}">'
            f"<title>{esc(label)}</title>"
            f'<rect x="{x:.1f}" y="{y:.1f}" width="{w:.1f}" height="{_NODE_H:.0f}" rx="6"/>'
            f'<text x="{x + w / 2:.1f}" y="{y + _NODE_H / 2:.1f}">{esc(label)}</text></a>'
        )
    parts.append("</svg>")
    return "".join(parts)


def render_card(card: Card) -> str:
    """One asset's article: media, prompt, facts and lineage."""
    state = card.state.replace("_", " ") if card.state else ""
    reason = f' title="{esc(card.reason)}"' if card.reason else ""
    older = (
        '<p class="warn">built from an earlier prompt (shown); the mediafile now says '
        "otherwise: it is stale</p>"
        if card.built_from_older_prompt
        else ""
    )
    return (
        f'<article class="asset state-{esc(card.state)}" id="asset-{esc(card.name)}">'
        f'<h2><a href="#asset-{esc(card.name)}">{esc(card.name)}</a> '
        f'<span class="kind">{esc(card.kind)}</span> '
        f'<span class="state"{reason}>{esc(state)}</span></h2>'
        f"{_media_block(card)}{render_takes(card.takes)}"
        f'<blockquote class="prompt">{esc(card.prompt)}</blockquote>{older}'
        f"{_facts(card)}{_lineage(card)}{_outputs_table(card)}"
        "</article>"
    )


def _media_block(card: Card) -> str:
    if not card.outputs:
        return '<div class="media empty">not built yet</div>'
    items = []
    for out in card.outputs:
        if out.href is None:
            items.append(f'<div class="missing">{esc(out.path)}: missing</div>')
        elif out.media_type.startswith("video/"):
            items.append(
                f'<video controls preload="metadata" src="{esc(out.href)}" '
                f'title="{esc(out.path)}"></video>'
            )
        else:
            items.append(
                f'<a href="{esc(out.href)}"><img src="{esc(out.href)}" '
                f'alt="{esc(card.name)}: {esc(out.path)}" decoding="async"></a>'
            )
    return f'<div class="media">{"".join(items)}</div>'


def _facts(card: Card) -> str:
    rows: list[tuple[str, str]] = [("provider", f"{card.provider} · {card.model}")]
    rows += [(k, "" if v is None else str(v)) for k, v in card.params.items() if v is not None]
    if card.variant:
        rows.append(("variant", str(card.variant)))
    if card.cost_usd is not None:
        cost = format_usd(ticks_of_text(card.cost_usd))
        rows.append(("cost", f"{cost} (estimated)" if card.cost_estimated else cost))
    if card.estimate_usd is not None:
        rows.append(("estimate", format_usd(ticks_of_text(card.estimate_usd))))
    if card.built_at:
        rows.append(("built", card.built_at))
    if card.request_ids:
        rows.append(("request ids", ", ".join(card.request_ids)))
    if card.reason and card.state not in ("up_to_date", ""):
        rows.append(("status", card.reason))
    body = "".join(f"<dt>{esc(k)}</dt><dd>{esc(v)}</dd>" for k, v in rows)
    if card.key:  # the full key is one hover (or one copy) away
        body += f'<dt>key</dt><dd><code title="{esc(card.key)}">{esc(card.key[:16])}…</code></dd>'
    return f'<dl class="facts">{body}</dl>'


def _lineage(card: Card) -> str:
    inputs = []
    for item in card.inputs:
        if item.asset:
            inputs.append(f'<a href="#asset-{esc(item.asset)}">{esc(item.ref)}</a>')
        elif item.url:
            inputs.append(f'<a href="{esc(item.url)}" rel="noreferrer">{esc(item.ref)}</a>')
        elif item.media and item.media.href:
            inputs.append(
                f'<a href="{esc(item.media.href)}" class="file">'
                f'<img src="{esc(item.media.href)}" alt="{esc(item.ref)}">{esc(item.ref)}</a>'
            )
        else:
            inputs.append(f'<span class="file">{esc(item.ref)}</span>')
    used = [f'<a href="#asset-{esc(d)}">{esc(d)}</a>' for d in card.dependants]
    return (
        '<div class="lineage">'
        f'<p class="inputs">inputs: {", ".join(inputs) or "none"}</p>'
        f'<p class="dependants">used by: {", ".join(used) or "nothing"}</p></div>'
    )


def _outputs_table(card: Card) -> str:
    if not card.outputs:
        return ""
    rows = "".join(
        f"<tr><td>{esc(o.path)}</td><td>{esc(o.media_type)}</td>"
        f'<td class="num">{o.size:,}</td><td><code>{esc(o.sha256[:16])}…</code></td></tr>'
        for o in card.outputs
    )
    return (
        "<details><summary>outputs</summary><table><thead><tr><th>path</th><th>type</th>"
        f"<th>bytes</th><th>sha256</th></tr></thead><tbody>{rows}</tbody></table></details>"
    )


def _spent_text(page: Page) -> str:
    """`$1.24 (ledger)`, with the maybe-billed part when there is one."""
    if page.spent_ticks is None:
        return "unknown"
    maybe = page.maybe_billed_ticks
    extra = f", of which {format_usd(maybe)} may have been billed" if maybe else ""
    return f"{format_usd(page.spent_ticks)} (ledger{extra})"


_DOCUMENT = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="script-src 'none'; object-src 'none'; \
base-uri 'none'; form-action 'none'">
<meta name="generator" content="imaginebuild {version}">
<title>{title} — imaginebuild report</title>
<style>{css}</style>
</head>
<body>
<header>
<h1>{title}</h1>
<p class="summary">{count} assets · {built} built · spent {spent} · \
cost of current outputs {outputs_cost} · from {mediafile}</p>
{notes}
</header>
<section class="graph"><h2>Graph</h2><div class="scroll">{svg}</div></section>
<main>
{cards}
</main>
<footer>made by imaginebuild {version}</footer>
</body>
</html>
"""

_CSS = """
:root{color-scheme:light dark;--fg:#1d1f23;--muted:#5c6370;--bg:#f6f7f9;--card:#fff;
--line:#d6d9de;--accent:#2f6fde;--ok:#2e8b57;--stale:#c98a00;--bad:#c0392b}
@media (prefers-color-scheme:dark){:root{--fg:#e6e6e6;--muted:#9aa3ad;--bg:#16181c;
--card:#1f2228;--line:#363b44;--accent:#7aa7ff}}
*{box-sizing:border-box}
body{margin:0;padding:1.5rem;font:15px/1.45 system-ui,sans-serif;color:var(--fg);
background:var(--bg)}
h1{margin:0 0 .25rem}
.summary,footer{color:var(--muted)}
.notes{color:var(--stale)}
.graph .scroll{overflow-x:auto;background:var(--card);border:1px solid var(--line);
border-radius:8px;padding:.5rem}
svg.dag text{font:12px ui-monospace,monospace;fill:var(--fg);text-anchor:middle;
dominant-baseline:central}
svg.dag rect{fill:var(--card);stroke:var(--muted);stroke-width:1.2}
svg.dag .state-up_to_date rect{stroke:var(--ok)}
svg.dag .state-stale rect{stroke:var(--stale)}
svg.dag .state-failed rect{stroke:var(--bad)}
svg.dag .state-never_built rect{stroke-dasharray:4 3}
svg.dag a:hover rect{fill:var(--bg);stroke:var(--accent)}
svg.dag .edge{fill:none;stroke:var(--muted);stroke-width:1.3}
svg.dag .arrow{fill:var(--muted)}
section.template{grid-column:1/-1;display:grid;gap:1rem;padding:.75rem;
grid-template-columns:repeat(auto-fill,minmax(340px,1fr));border:1px dashed var(--line);
border-radius:8px}
section.template>h2{grid-column:1/-1;margin:0;font:600 1rem ui-monospace,monospace}
section.template .count{color:var(--muted);font-weight:400}
main{display:grid;grid-template-columns:repeat(auto-fill,minmax(340px,1fr));gap:1rem;
margin-top:1rem}
.asset{background:var(--card);border:1px solid var(--line);border-radius:8px;padding:1rem;
min-width:0}
.asset:target{outline:2px solid var(--accent)}
.asset h2{margin:0 0 .5rem;font-size:1.1rem}
.asset h2 a{color:inherit;text-decoration:none}
.kind,.state{font-size:.75rem;font-weight:500;padding:.1rem .45rem;border-radius:99px;
border:1px solid var(--line);color:var(--muted)}
.state-up_to_date .state{color:var(--ok);border-color:var(--ok)}
.state-stale .state{color:var(--stale);border-color:var(--stale)}
.state-failed .state{color:var(--bad);border-color:var(--bad)}
.media{display:grid;grid-template-columns:repeat(auto-fill,minmax(140px,1fr));gap:.4rem}
.media img,.media video{width:100%;max-height:240px;object-fit:contain;border-radius:4px;
background:#000;display:block}
.media.empty,.missing{color:var(--muted);font-style:italic}
.prompt{margin:.6rem 0;padding:.4rem .7rem;border-left:3px solid var(--accent);
white-space:pre-wrap;overflow-wrap:anywhere}
.warn{color:var(--stale);font-size:.85rem}
.facts{display:grid;grid-template-columns:max-content 1fr;gap:.1rem .8rem;font-size:.85rem;
margin:.4rem 0}
.facts dt{color:var(--muted)}
.facts dd{margin:0;overflow-wrap:anywhere}
.lineage p{margin:.2rem 0;font-size:.85rem}
.lineage a{color:var(--accent)}
.lineage .file img{height:1.6em;vertical-align:middle;margin-right:.3rem;border-radius:2px}
details{font-size:.8rem;margin-top:.4rem}
table{border-collapse:collapse;width:100%}
td,th{text-align:left;padding:.1rem .4rem;border-bottom:1px solid var(--line)}
td.num{text-align:right}
footer{margin-top:1.5rem;font-size:.8rem}
"""
