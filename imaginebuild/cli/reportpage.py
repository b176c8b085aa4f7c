"""The report's page, pure: the data it shows (Cards in a Page) and its rendering —
the DAG laid out in layers with barycentre order, drawn as inline SVG, and every card —
into one HTML document with every user string escaped."""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from imaginebuild.cli.reporttakes import CSS as TAKES_CSS
from imaginebuild.cli.reporttakes import TakeItem, render_takes
from imaginebuild.engine.graph import generations
from imaginebuild.money import format_usd
from imaginebuild.version import __version__

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
    cost_ticks: int | None = None  # None: the record does not say
    cost_estimated: bool = False
    estimate_ticks: int | None = None
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
    outputs_cost = sum(c.cost_ticks or 0 for c in page.cards)
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
    if card.cost_ticks is not None:
        cost = format_usd(card.cost_ticks)
        rows.append(("cost", f"{cost} (estimated)" if card.cost_estimated else cost))
    if card.estimate_ticks is not None:
        rows.append(("estimate", format_usd(card.estimate_ticks)))
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
