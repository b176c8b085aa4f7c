"""Pillow pictures of the local provider: seeded compositions, edits, PNG bytes.

A composition is a two-colour gradient, a handful of seeded shapes and the prompt
written on a panel, so outputs are told apart at a glance in a gallery. An edit
fits its inputs side by side and applies a seeded treatment (duotone, posterize,
solarize or invert), so it visibly derives from them.
"""

from __future__ import annotations

import functools
import io
import textwrap
import threading
import unicodedata
from collections.abc import Sequence
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont, ImageOps

from imaginebuild.providers.local.seed import Color, Seed

# Level 1 keeps a 4-megapixel PNG under a tenth of a second; flat shapes still compress well.
PNG_COMPRESS_LEVEL = 1
TREATMENTS = ("duotone", "posterize", "solarize", "invert")

Font = ImageFont.FreeTypeFont | ImageFont.ImageFont


_fonts = threading.local()  # FreeType faces must not be shared between threads


def font(size: int) -> Font:
    """Pillow's bundled font at `size` pixels (cached per thread)."""
    cache: dict[int, Font] = _fonts.__dict__.setdefault("by_size", {})
    if size not in cache:
        cache[size] = ImageFont.load_default(size=max(8, size))
    return cache[size]


def load_rgb(path: Path) -> Image.Image:
    """Read an image file fully as RGB (alpha dropped onto black)."""
    with Image.open(path) as img:
        img.load()
        rgb: Image.Image = img.convert("RGB")
    return rgb


def fit(img: Image.Image, size: tuple[int, int]) -> Image.Image:
    """Scale `img` to cover `size` and crop the centre (no distortion)."""
    if img.size == size:
        return img.copy()
    return ImageOps.fit(img, size, Image.Resampling.BILINEAR)


def gradient(size: tuple[int, int], top: Color, bottom: Color, vertical: bool) -> Image.Image:
    """A linear two-colour gradient."""
    mask = Image.linear_gradient("L")
    if not vertical:
        mask = mask.transpose(Image.Transpose.ROTATE_90)
    mask = mask.resize(size, Image.Resampling.BILINEAR)
    return Image.composite(Image.new("RGB", size, bottom), Image.new("RGB", size, top), mask)


def draw_shapes(img: Image.Image, seed: Seed, count: int) -> None:
    """Draw `count` seeded ellipses, rectangles and triangles onto `img`."""
    width, height = img.size
    draw = ImageDraw.Draw(img)
    unit = min(width, height)
    for _ in range(count):
        x, y = seed.uniform(0, width), seed.uniform(0, height)
        r = seed.uniform(0.05, 0.25) * unit
        fill, outline = seed.color(), seed.color(0, 80)
        box = (x - r, y - r * seed.uniform(0.5, 1.5), x + r, y + r)
        shape = seed.choice(3)
        if shape == 0:
            draw.ellipse(box, fill=fill, outline=outline, width=max(1, unit // 200))
        elif shape == 1:
            draw.rectangle(box, fill=fill, outline=outline, width=max(1, unit // 200))
        else:
            draw.polygon([(x, y - r), (x + r, y + r), (x - r, y + r)], fill=fill, outline=outline)


# Stand-ins for characters the bundled font has no glyph for (it would draw a box).
_STAND_INS = {"×": "x", "–": "-", "—": "-", "−": "-", "•": "*", "→": "->", "←": "<-"}


def drawable(text: str) -> str:
    """`text` with every character the bundled font cannot draw replaced: accents dropped
    (é → e), a few symbols spelled in ASCII (× → x), anything else as "?"."""
    return "".join(_drawable_char(c) for c in text)


@functools.lru_cache(maxsize=512)
def _drawable_char(char: str) -> str:
    if char.isascii() or _has_glyph(char):
        return char
    if char in _STAND_INS:
        return _STAND_INS[char]
    base = "".join(c for c in unicodedata.normalize("NFKD", char) if not unicodedata.combining(c))
    return base if base and all(_has_glyph(c) for c in base) else "?"


def _has_glyph(char: str) -> bool:
    """Whether the bundled font draws `char` as itself, not as its missing-glyph box."""
    face = font(20)
    mask, missing = face.getmask(char), face.getmask("\U0010fffd")
    return (mask.size, bytes(mask)) != (missing.size, bytes(missing))


def write_panel(img: Image.Image, text: str, footer: str, max_lines: int = 6) -> None:
    """Write `text` (wrapped) and a smaller `footer` on a dark panel at the bottom."""
    text, footer = drawable(text), drawable(footer)
    width, height = img.size
    size = max(10, min(width, height) // 22)
    body, small = font(size), font(max(8, size * 3 // 5))
    columns = max(8, int(width * 0.9 / (size * 0.52)))
    lines = textwrap.wrap(text, columns) or [""]
    if len(lines) > max_lines:
        lines = [*lines[: max_lines - 1], lines[max_lines - 1][: columns - 1] + "…"]
    line_h = int(size * 1.25)
    panel_h = line_h * len(lines) + int(size * 1.6)
    draw = ImageDraw.Draw(img)
    top = height - panel_h
    draw.rectangle((0, top, width, height), fill=(16, 16, 20))
    for n, line in enumerate(lines):
        draw.text((size // 2, top + size // 3 + n * line_h), line, font=body, fill=(245, 245, 240))
    draw.text((size // 2, height - int(size * 0.95)), footer, font=small, fill=(170, 170, 180))


def compose(prompt: str, seed: Seed, size: tuple[int, int], footer: str) -> Image.Image:
    """A seeded picture of `size` with the prompt written on it."""
    img = gradient(size, seed.color(), seed.color(), vertical=seed.unit() < 0.5)
    draw_shapes(img, seed, seed.integer(5, 10))
    write_panel(img, prompt, footer)
    return img


def side_by_side(inputs: Sequence[Image.Image], size: tuple[int, int]) -> Image.Image:
    """The inputs fitted into equal vertical strips filling `size` (one input fills it)."""
    width, height = size
    canvas = Image.new("RGB", size)
    edges = [round(width * i / len(inputs)) for i in range(len(inputs) + 1)]
    for img, left, right in zip(inputs, edges, edges[1:], strict=False):
        canvas.paste(fit(img, (right - left, height)), (left, 0))
    return canvas


def treat(img: Image.Image, seed: Seed) -> tuple[Image.Image, str]:
    """Apply one seeded treatment; return the picture and the treatment's name."""
    name = TREATMENTS[seed.choice(len(TREATMENTS))]
    if name == "duotone":
        dark, light = seed.color(0, 90), seed.color(150, 255)
        return ImageOps.colorize(ImageOps.grayscale(img), dark, light), name
    if name == "posterize":
        return ImageOps.posterize(img, seed.integer(1, 3)), name
    if name == "solarize":
        return ImageOps.solarize(img, seed.integer(64, 160)), name
    return ImageOps.invert(img), name


def edit(
    inputs: Sequence[Image.Image], prompt: str, seed: Seed, size: tuple[int, int], footer: str
) -> Image.Image:
    """An edit of 1–3 pictures: fitted side by side, treated, framed, captioned."""
    img, name = treat(side_by_side(inputs, size), seed)
    border = max(2, min(size) // 60)
    ImageDraw.Draw(img).rectangle(
        (0, 0, size[0] - 1, size[1] - 1), outline=seed.color(), width=border
    )
    write_panel(img, prompt, f"{footer} · {name}", max_lines=3)
    return img


def png_bytes(img: Image.Image) -> bytes:
    """Encode as PNG; the bytes depend only on the pixels (no time or text chunks)."""
    buffer = io.BytesIO()
    img.save(buffer, "PNG", compress_level=PNG_COMPRESS_LEVEL)
    return buffer.getvalue()
