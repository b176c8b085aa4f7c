"""One renderer per kind: a request's parameters and inputs → PNG or MP4 files in its workdir.

Seeds come from the action key only (never the asset's name, which is not part
of the key). Videos are encoded into a private temp folder inside the workdir
and moved into place once complete, so a crash never leaves a torn output.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import shutil
import tempfile
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path

from PIL import Image

from imaginebuild.atomic import atomic_write_bytes, fsync_dir
from imaginebuild.errors import InputError
from imaginebuild.model import MP4, PNG, Kind
from imaginebuild.providers.base import GenerationRequest, OutputFile
from imaginebuild.providers.local import geometry, images, motion, video
from imaginebuild.providers.local.seed import Seed

Size = tuple[int, int]


def render(request: GenerationRequest) -> tuple[OutputFile, ...]:
    """Make the request's outputs in `request.workdir`, in output order."""
    return _RENDERERS[request.kind](request)


def _seed_key(request: GenerationRequest) -> str:
    """What a render is seeded from: the action key, and the roll after a `--force`."""
    return request.key if not request.roll else f"{request.key}#{request.roll}"


def _text(params: Mapping[str, object], name: str) -> str | None:
    value = params.get(name)
    return None if value is None else str(value)


def _number(params: Mapping[str, object], name: str, default: int) -> int:
    value = params.get(name)
    return default if value is None else int(str(value))


def _footer(request: GenerationRequest, size: Size, extra: str = "") -> str:
    parts = [f"local {request.kind.value}", extra, f"{size[0]}×{size[1]}", request.key[:12]]
    if request.roll:
        parts.append(f"take {request.roll + 1}")
    return " · ".join(part for part in parts if part)


def _decoding(
    request: GenerationRequest, path: Path, frames: Iterator[Image.Image]
) -> Iterator[Image.Image]:
    """Pass frames through, turning a decoder failure midway into an InputError."""
    with _reading(request, path):
        yield from frames


@contextlib.contextmanager
def _reading(request: GenerationRequest, path: Path) -> Iterator[None]:
    """Turn a decoder's failure on an input into an InputError naming the file."""
    try:
        yield
    except Exception as error:  # Pillow and PyAV raise many unrelated types on junk
        raise InputError(f"{request.asset}: cannot decode input {path}: {error}") from error


def _input_images(request: GenerationRequest) -> list[Image.Image]:
    pictures = []
    for item in request.inputs:
        with _reading(request, item.path):
            pictures.append(images.load_rgb(item.path))
    return pictures


def _write_pngs(
    request: GenerationRequest, pictures: Iterable[Image.Image]
) -> tuple[OutputFile, ...]:
    outputs = []
    for index, picture in enumerate(pictures):
        path = request.workdir / f"output-{index}.png"
        atomic_write_bytes(path, images.png_bytes(picture))
        outputs.append(OutputFile(path, PNG))
    return tuple(outputs)


def _image(request: GenerationRequest) -> tuple[OutputFile, ...]:
    params = request.params
    count = _number(params, "count", 1)
    size = geometry.image_size(_text(params, "resolution"), _text(params, "aspect_ratio"))
    pictures = (
        images.compose(
            request.prompt,
            Seed(_seed_key(request), "image", index),
            size,
            _footer(request, size, f"#{index + 1}/{count}"),
        )
        for index in range(count)
    )
    return _write_pngs(request, pictures)


def _edit(request: GenerationRequest) -> tuple[OutputFile, ...]:
    params = request.params
    count = _number(params, "count", 1)
    inputs = _input_images(request)
    size = geometry.image_size(
        _text(params, "resolution"), _text(params, "aspect_ratio"), inputs[0].size
    )
    pictures = (
        images.edit(
            inputs,
            request.prompt,
            Seed(_seed_key(request), "edit", index),
            size,
            _footer(request, size, f"#{index + 1}/{count}"),
        )
        for index in range(count)
    )
    return _write_pngs(request, pictures)


def _duration(request: GenerationRequest) -> int:
    return _number(request.params, "duration", request.kind.spec.default_duration or 8)


def _video(request: GenerationRequest) -> tuple[OutputFile, ...]:
    params = request.params
    size = geometry.video_size(_text(params, "resolution"), _text(params, "aspect_ratio"))
    total = geometry.frame_count(_duration(request))
    frames = motion.text_to_video(
        request.prompt, Seed(_seed_key(request), "video"), size, total, _footer(request, size)
    )
    return _write_mp4(request, lambda out: video.encode(out, size, frames))


def _animate(request: GenerationRequest) -> tuple[OutputFile, ...]:
    params = request.params
    picture = _input_images(request)[0]
    aspect = _text(params, "aspect_ratio") or geometry.nearest_video_aspect(*picture.size)
    size = geometry.video_size(_text(params, "resolution"), aspect)
    total = geometry.frame_count(_duration(request))
    frames = motion.animate(picture, Seed(_seed_key(request), "animate"), size, total)
    return _write_mp4(request, lambda out: video.encode(out, size, frames))


def _reference_video(request: GenerationRequest) -> tuple[OutputFile, ...]:
    params = request.params
    refs = _input_images(request)
    size = geometry.video_size(_text(params, "resolution"), _text(params, "aspect_ratio"))
    total = geometry.frame_count(_duration(request))
    seed = Seed(_seed_key(request), "reference_video")
    frames = motion.references(refs, request.prompt, seed, size, total, _footer(request, size))
    return _write_mp4(request, lambda out: video.encode(out, size, frames))


def _inspect(request: GenerationRequest) -> tuple[Path, video.ClipInfo]:
    path = request.inputs[0].path
    with _reading(request, path):
        return path, video.inspect(path)


def _video_edit(request: GenerationRequest) -> tuple[OutputFile, ...]:
    path, info = _inspect(request)
    size = geometry.inherited_video_size(info.width, info.height)
    total = geometry.frame_count(float(info.duration))
    seed = Seed(_seed_key(request), "video_edit")
    footer = _footer(request, size)

    def encode(out: Path) -> object:
        source = _decoding(request, path, video.frames_at_24fps(path, total))
        return video.encode(out, size, motion.edited(source, request.prompt, seed, footer))

    return _write_mp4(request, encode)


def _extend(request: GenerationRequest) -> tuple[OutputFile, ...]:
    path, info = _inspect(request)
    size = geometry.inherited_video_size(info.width, info.height)
    original = geometry.frame_count(float(info.duration))
    added = geometry.frame_count(_duration(request))
    seed = Seed(_seed_key(request), "extend")
    footer = _footer(request, size)

    def continuation() -> Iterator[Image.Image]:
        return motion.continuation(info.last, request.prompt, seed, size, added, footer)

    def encode(out: Path) -> object:
        if (info.width, info.height) == size and info.frames == original:
            tail = out.with_name("continuation.mp4")
            video.encode(tail, size, continuation())
            with _reading(request, path):
                if video.join(path, tail, out):
                    return None
        head = _decoding(request, path, video.frames_at_24fps(path, original))
        return video.encode(out, size, itertools.chain(head, continuation()))

    return _write_mp4(request, encode)


def _write_mp4(
    request: GenerationRequest, make: Callable[[Path], object]
) -> tuple[OutputFile, ...]:
    """Run `make(temp_path)` in a private temp folder, then move the file into place."""
    final = request.workdir / "output-0.mp4"
    scratch = Path(tempfile.mkdtemp(prefix=".render-", dir=request.workdir))
    try:
        temp = scratch / final.name
        make(temp)
        with temp.open("rb") as handle:
            os.fsync(handle.fileno())
        os.replace(temp, final)
        fsync_dir(request.workdir)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return (OutputFile(final, MP4),)


_RENDERERS: dict[Kind, Callable[[GenerationRequest], tuple[OutputFile, ...]]] = {
    Kind.IMAGE: _image,
    Kind.EDIT: _edit,
    Kind.VIDEO: _video,
    Kind.ANIMATE: _animate,
    Kind.REFERENCE_VIDEO: _reference_video,
    Kind.VIDEO_EDIT: _video_edit,
    Kind.EXTEND: _extend,
}
