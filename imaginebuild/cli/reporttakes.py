"""The report's takes strip: every take of an asset side by side, the current one marked.

Shown for an asset with more than one take; each take's media are copied into the
report's media folder like the current outputs (by content hash, verified).
"""

from __future__ import annotations

import html
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from imaginebuild.store.lockfile import LockedOutput

if TYPE_CHECKING:
    from imaginebuild.engine.takes import TakeRow


class MediaItem(Protocol):
    """A copied medium as the report knows it (the report's own MediaItem fits)."""

    @property
    def path(self) -> str:
        """A label: the output path, or the take's name."""

    @property
    def media_type(self) -> str:
        """The media type."""

    @property
    def href(self) -> str | None:
        """Its copy's link inside the report folder, or None when none exists."""


CSS = """
.takes{margin:.5rem 0}
.takes summary{cursor:pointer}
.takes .strip{display:flex;gap:.4rem;overflow-x:auto;padding:.3rem 0}
.takes figure{margin:0;flex:0 0 120px}
.takes figure.current{outline:2px solid var(--ok);border-radius:4px}
.takes img,.takes video{width:120px;height:90px;object-fit:contain;background:#000;
border-radius:4px;display:block}
.takes figcaption{font-size:.7rem;color:var(--muted);overflow-wrap:anywhere}
"""


@dataclass(frozen=True)
class TakeItem:
    """One take as the strip shows it: its number, a caption and its media."""

    number: int
    caption: str
    current: bool
    media: tuple[MediaItem, ...]


def take_items(
    rows: Sequence[TakeRow], name: str, copy: Callable[[LockedOutput], MediaItem]
) -> tuple[TakeItem, ...]:
    """The strip's items (none unless the asset has more than one take)."""
    if len(rows) < 2:
        return ()
    items = []
    for row in rows:
        marks = [row.take.origin.value.replace("_", " ")]
        marks += [m for m, on in (("current", row.current), ("picked", row.picked)) if on]
        media = tuple(
            copy(LockedOutput(f"{name} take {row.number}", b.sha256, b.size, b.media_type))
            for b in row.take.outputs
        ) if row.available else ()  # fmt: skip
        caption = f"take {row.number} · {' · '.join(marks[1:] or marks)}"
        if row.take.made_at:
            caption += f" · {row.take.made_at[:16].replace('T', ' ')}"
        items.append(TakeItem(row.number, caption, row.current, media))
    return tuple(items)


def render_takes(items: Sequence[TakeItem]) -> str:
    """The strip's HTML (every string escaped); empty without items."""
    if not items:
        return ""
    figures = []
    for item in items:
        media = "".join(_medium(m) for m in item.media) or "<span>not in the cache</span>"
        current = ' class="current"' if item.current else ""
        figures.append(
            f"<figure{current}>{media}<figcaption>{html.escape(item.caption)}</figcaption></figure>"
        )
    return (
        f'<details class="takes" open><summary>{len(items)} takes</summary>'
        f'<div class="strip">{"".join(figures)}</div></details>'
    )


def _medium(item: MediaItem) -> str:
    if item.href is None:
        return ""
    href = html.escape(item.href)
    if item.media_type.startswith("video/"):
        return f'<video controls preload="metadata" src="{href}"></video>'
    return f'<a href="{href}"><img src="{href}" alt="{html.escape(item.path)}" loading="lazy"></a>'
