"""The frames of each video kind, as lazy sequences of Pillow pictures.

text_to_video    a seeded composition with the prompt; bouncing shapes, a progress bar
animate          frame 0 is the input fitted to the frame; then a slow zoom into it
references       the references, one after another, large in the middle; all as thumbnails
edited           every input frame with one seeded treatment and the prompt as caption
continuation     from the last frame: zoom on, while a new composition fades in
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence

from PIL import Image, ImageDraw

from imaginebuild.providers.local import images
from imaginebuild.providers.local.seed import Seed

Size = tuple[int, int]


def _progress_bar(img: Image.Image, done: float, color: tuple[int, int, int]) -> None:
    width, height = img.size
    thickness = max(3, height // 90)
    ImageDraw.Draw(img).rectangle((0, 0, round(width * done), thickness), fill=color)


def text_to_video(
    prompt: str, seed: Seed, size: Size, total: int, footer: str
) -> Iterator[Image.Image]:
    """A composition of the prompt with seeded shapes bouncing across it."""
    background = images.compose(prompt, seed.child("background"), size, footer)
    width, height = size
    unit = min(size)
    sprites = []
    for n in range(seed.integer(3, 5)):
        s = seed.child("sprite", n)
        sprites.append(
            (
                s.uniform(0, width), s.uniform(0, height), s.uniform(-1, 1) * unit / 30,
                s.uniform(-1, 1) * unit / 30, s.uniform(0.04, 0.1) * unit, s.color(),
            )
        )  # fmt: skip
    bar = seed.color(120, 255)
    for index in range(total):
        img = background.copy()
        draw = ImageDraw.Draw(img)
        for x0, y0, vx, vy, r, color in sprites:
            x, y = _bounce(x0 + vx * index, width), _bounce(y0 + vy * index, height)
            draw.ellipse((x - r, y - r, x + r, y + r), fill=color, outline=(0, 0, 0))
        _progress_bar(img, (index + 1) / total, bar)
        yield img


def _bounce(position: float, extent: int) -> float:
    """Reflect a position that left [0, extent] back into it (a ball between walls)."""
    period = position % (2 * extent)
    return period if period <= extent else 2 * extent - period


def _zoom(base: Image.Image, amount: float, focus: tuple[float, float]) -> Image.Image:
    """Crop `base` by `amount` (0 = none) around a focus in [0, 1]², scaled back up."""
    if amount <= 0:
        return base.copy()
    width, height = base.size
    keep_w, keep_h = width / (1 + amount), height / (1 + amount)
    left = (width - keep_w) * focus[0]
    top = (height - keep_h) * focus[1]
    box = (left, top, left + keep_w, top + keep_h)
    return base.resize(base.size, Image.Resampling.BILINEAR, box=box)


def animate(picture: Image.Image, seed: Seed, size: Size, total: int) -> Iterator[Image.Image]:
    """Frame 0 is `picture` fitted to `size`; then a slow seeded zoom into it."""
    base = images.fit(picture, size)
    focus = (seed.uniform(0.2, 0.8), seed.uniform(0.2, 0.8))
    depth = seed.uniform(0.15, 0.35)
    for index in range(total):
        yield _zoom(base, depth * index / max(1, total - 1), focus)


def references(
    refs: Sequence[Image.Image], prompt: str, seed: Seed, size: Size, total: int, footer: str
) -> Iterator[Image.Image]:
    """Each reference in turn, large in the centre, with all of them as thumbnails on top."""
    background = images.compose(prompt, seed.child("background"), size, footer)
    width, height = size
    thumb = (max(2, width // (len(refs) + 1) - 8), max(2, height // 7))
    for n, ref in enumerate(refs):
        background.paste(images.fit(ref, thumb), (8 + n * (thumb[0] + 8), height // 40 + 4))
    stage = (width * 3 // 5, height * 3 // 5)
    staged = [images.fit(ref, stage) for ref in refs]
    corner = ((width - stage[0]) // 2, (height - stage[1]) // 2)
    bar = seed.color(120, 255)
    for index in range(total):
        img = background.copy()
        img.paste(staged[index * len(refs) // total], corner)
        _progress_bar(img, (index + 1) / total, bar)
        yield img


def edited(
    frames: Iterable[Image.Image], prompt: str, seed: Seed, footer: str
) -> Iterator[Image.Image]:
    """Every frame with the same seeded treatment and the prompt as a caption."""
    for img in frames:
        treated, name = images.treat(img, seed.child("treatment"))
        images.write_panel(treated, prompt, f"{footer} · {name}", max_lines=2)
        yield treated


def continuation(
    last: Image.Image, prompt: str, seed: Seed, size: Size, total: int, footer: str
) -> Iterator[Image.Image]:
    """`total` frames that start at `last` and drift: zooming on, a new scene fading in."""
    base = images.fit(last, size)
    scene = images.compose(prompt, seed.child("scene"), size, footer)
    focus = (seed.uniform(0.2, 0.8), seed.uniform(0.2, 0.8))
    depth = seed.uniform(0.15, 0.35)
    for index in range(1, total + 1):
        progress = index / total
        yield Image.blend(_zoom(base, depth * progress, focus), scene, 0.6 * progress)
