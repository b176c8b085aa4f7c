"""The offline `local` provider: every kind's outputs, checked with independent readers.

PNGs are opened with Pillow and MP4s decoded with PyAV's own conversions (not the
provider's), so a wrong size, length, codec or picture shows up as a failure.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import subprocess
import sys
from collections.abc import Mapping, Sequence
from fractions import Fraction
from pathlib import Path

import av
import pytest
from PIL import Image, ImageChops, ImageOps, ImageStat

from imaginebuild.errors import InputError
from imaginebuild.model import (
    IMAGE_ASPECT_RATIOS,
    MP4,
    PNG,
    VIDEO_ASPECT_RATIOS,
    Kind,
    ProviderSettings,
)
from imaginebuild.providers.base import (
    GenerationRequest,
    GenerationResult,
    InputFile,
    OutputFile,
    Phase,
    ProviderContext,
)
from imaginebuild.providers.local.provider import LocalProvider

ROOT = Path(__file__).resolve().parents[1]


def provider(max_concurrency: int | None = None) -> LocalProvider:
    settings = ProviderSettings(max_concurrency=max_concurrency)
    return LocalProvider(ProviderContext(settings=settings, state_dir=Path(), env={}))


def generate(
    workdir: Path,
    kind: Kind,
    params: Mapping[str, object],
    inputs: Sequence[Path] = (),
    *,
    key: str = "k" * 64,
    prompt: str = "A lighthouse on a cliff at dusk",
) -> GenerationResult:
    files = tuple(
        InputFile(p, hashlib.sha256(p.read_bytes()).hexdigest(), _media_type(p)) for p in inputs
    )
    request = GenerationRequest("asset", kind, key, prompt, "model-x", params, files, workdir)
    return asyncio.run(provider().generate(request))


def _media_type(path: Path) -> str:
    return MP4 if path.suffix == ".mp4" else PNG


def only(result: GenerationResult) -> Path:
    (output,) = result.outputs
    return output.path


def solid(path: Path, size: tuple[int, int], color: tuple[int, int, int]) -> Path:
    Image.new("RGB", size, color).save(path)
    return path


def mean_difference(a: Image.Image, b: Image.Image) -> float:
    """Mean absolute difference per channel, 0–255."""
    stat = ImageStat.Stat(ImageChops.difference(a.convert("RGB"), b.convert("RGB")))
    return sum(stat.mean) / 3


class Clip:
    """A clip as PyAV reports it, with frames converted by PyAV itself."""

    def __init__(self, path: Path) -> None:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            self.codec = stream.codec_context.name
            self.pix_fmt = stream.codec_context.format.name
            self.width, self.height = stream.codec_context.width, stream.codec_context.height
            self.rate = stream.average_rate
            self.streams = len(container.streams)
            self.duration = container.duration / av.time_base if container.duration else 0.0
            self.frames = [frame.to_image() for frame in container.decode(stream)]
            self.planes: list[bytes] = []
        with av.open(str(path)) as container:
            for frame in container.decode(video=0):
                self.planes.append(b"".join(bytes(plane) for plane in frame.planes))
        self.moov_first = path.read_bytes().find(b"moov") < path.read_bytes().find(b"mdat")


def assert_video(clip: Clip, size: tuple[int, int], seconds: float) -> None:
    assert (clip.width, clip.height) == size
    assert clip.codec == "h264"
    assert clip.pix_fmt == "yuv420p"
    assert clip.rate == 24
    assert clip.streams == 1
    assert len(clip.frames) == round(seconds * 24)
    assert abs(clip.duration - seconds) <= 1 / 24
    assert clip.moov_first


# --- the provider interface -------------------------------------------------------------


def test_provider_reports_one_free_call_and_progress(tmp_path: Path) -> None:
    request = GenerationRequest(
        "a", Kind.IMAGE, "key", "p", "grok-imagine-image", {"count": 2}, (), tmp_path
    )
    phases: list[Phase] = []
    result = asyncio.run(provider().generate(request, lambda phase, _: phases.append(phase)))
    (call,) = result.calls
    assert call.endpoint == "local:image"
    assert call.model == "grok-imagine-image"
    assert call.cost_ticks == 0
    assert call.request_id is None
    assert call.duration_s > 0
    assert phases == [Phase.RENDERING]
    assert [o.media_type for o in result.outputs] == [PNG, PNG]
    assert all(o.path.parent == tmp_path for o in result.outputs)


def test_concurrency_follows_settings_then_cpu_count() -> None:
    import os

    assert provider(3).max_concurrency == 3
    assert provider().max_concurrency == (os.cpu_count() or 1)
    assert provider().name == "local"


def test_importing_the_provider_loads_no_media_library() -> None:
    code = (
        "import sys, imaginebuild.providers.local.provider, imaginebuild.mediaprobe;"
        "print(sorted(m for m in ('PIL', 'av') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
    )
    assert out.stdout.strip() == "[]"


# --- images -----------------------------------------------------------------------------


@pytest.mark.parametrize("ratio", [r for r in IMAGE_ASPECT_RATIOS if r != "auto"])
def test_image_size_follows_every_ratio_at_about_one_megapixel(tmp_path: Path, ratio: str) -> None:
    path = only(generate(tmp_path, Kind.IMAGE, {"resolution": "1k", "aspect_ratio": ratio}))
    with Image.open(path) as img:
        assert img.format == "PNG"
        width, height = img.size
    w, _, h = ratio.partition(":")
    assert width % 16 == 0 and height % 16 == 0
    assert abs(width * height / 1024**2 - 1) < 0.03
    assert abs(math.log((width / height) / (float(w) / float(h)))) < 0.03


@pytest.mark.parametrize(
    ("resolution", "ratio", "size"),
    [("1k", "1:1", (1024, 1024)), ("1k", "16:9", (1360, 768)), ("2k", "1:1", (2048, 2048)),
     ("2k", "9:16", (1536, 2736)), ("1k", "auto", (1024, 1024)), (None, None, (1024, 1024))],
)  # fmt: skip
def test_image_sizes_of_the_table(
    tmp_path: Path, resolution: str | None, ratio: str | None, size: tuple[int, int]
) -> None:
    params = {"resolution": resolution, "aspect_ratio": ratio}
    with Image.open(only(generate(tmp_path, Kind.IMAGE, params))) as img:
        assert img.size == size


def test_count_makes_distinct_images(tmp_path: Path) -> None:
    result = generate(tmp_path, Kind.IMAGE, {"resolution": "1k", "count": 3})
    assert len(result.outputs) == 3
    pictures = [Image.open(o.path) for o in result.outputs]
    assert mean_difference(pictures[0], pictures[1]) > 10
    assert mean_difference(pictures[1], pictures[2]) > 10


def test_the_prompt_is_visible_in_the_picture(tmp_path: Path) -> None:
    a = only(generate(tmp_path / "a", Kind.IMAGE, {}, prompt="a red fox"))
    b = only(generate(tmp_path / "b", Kind.IMAGE, {}, prompt="a red fox in the snow at night"))
    with Image.open(a) as pa, Image.open(b) as pb:
        bottom = (0, 850, 1024, 1024)  # the caption panel: same key, so only the text differs
        assert ImageChops.difference(pa.crop(bottom), pb.crop(bottom)).getbbox() is not None


def test_same_key_same_bytes_other_key_other_bytes(tmp_path: Path) -> None:
    params = {"resolution": "1k", "aspect_ratio": "3:2", "count": 2}
    first = generate(tmp_path / "one", Kind.IMAGE, params, key="a" * 64)
    again = generate(tmp_path / "two", Kind.IMAGE, params, key="a" * 64)
    other = generate(tmp_path / "three", Kind.IMAGE, params, key="b" * 64)
    read = [[o.path.read_bytes() for o in r.outputs] for r in (first, again, other)]
    assert read[0] == read[1]
    assert read[0][0] != read[2][0] and read[0][1] != read[2][1]


def test_edit_follows_the_first_inputs_ratio_when_auto(tmp_path: Path) -> None:
    wide = solid(tmp_path / "wide.png", (400, 200), (200, 30, 30))
    path = only(generate(tmp_path / "out", Kind.EDIT, {"aspect_ratio": "auto"}, [wide]))
    with Image.open(path) as img:
        assert img.size == (1456, 720)


def test_edit_at_the_requested_size_and_count(tmp_path: Path) -> None:
    picture = solid(tmp_path / "in.png", (300, 300), (20, 120, 220))
    params = {"resolution": "2k", "aspect_ratio": "4:3", "count": 2}
    result = generate(tmp_path / "out", Kind.EDIT, params, [picture])
    assert len(result.outputs) == 2
    for output in result.outputs:
        with Image.open(output.path) as img:
            assert img.size == (2368, 1776)


def test_edit_derives_from_its_inputs(tmp_path: Path) -> None:
    red = solid(tmp_path / "red.png", (256, 256), (230, 20, 20))
    blue = solid(tmp_path / "blue.png", (256, 256), (20, 20, 230))
    params = {"aspect_ratio": "1:1"}
    of_red = Image.open(only(generate(tmp_path / "r", Kind.EDIT, params, [red])))
    of_blue = Image.open(only(generate(tmp_path / "b", Kind.EDIT, params, [blue])))
    of_both = Image.open(only(generate(tmp_path / "rb", Kind.EDIT, params, [red, blue])))
    assert mean_difference(of_red, of_blue) > 10
    assert mean_difference(of_red, of_both) > 5
    # two inputs side by side: the left half treats red, the right half treats blue
    left, right = (0, 100, 400, 500), (624, 100, 1024, 500)
    assert mean_difference(of_both.crop(left), of_red.crop(left)) < 2
    assert mean_difference(of_both.crop(right), of_blue.crop(right)) < 2


def test_undecodable_input_is_an_input_error(tmp_path: Path) -> None:
    junk = tmp_path / "junk.png"
    junk.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 50)
    with pytest.raises(InputError, match=r"junk\.png"):
        generate(tmp_path / "out", Kind.EDIT, {}, [junk])


# --- videos -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ratio", "size"),
    [("16:9", (848, 480)), ("9:16", (480, 848)), ("4:3", (640, 480)), ("3:4", (480, 640)),
     ("3:2", (720, 480)), ("2:3", (480, 720)), ("1:1", (480, 480))],
)  # fmt: skip
def test_video_at_480p_in_every_ratio(tmp_path: Path, ratio: str, size: tuple[int, int]) -> None:
    assert ratio in VIDEO_ASPECT_RATIOS
    params = {"resolution": "480p", "aspect_ratio": ratio, "duration": 1}
    assert_video(Clip(only(generate(tmp_path, Kind.VIDEO, params))), size, 1)


def test_video_at_720p_lasts_exactly_its_duration(tmp_path: Path) -> None:
    params = {"resolution": "720p", "aspect_ratio": "16:9", "duration": 3}
    clip = Clip(only(generate(tmp_path, Kind.VIDEO, params)))
    assert_video(clip, (1280, 720), 3)
    assert mean_difference(clip.frames[0], clip.frames[-1]) > 1  # it moves


def test_video_is_byte_identical_for_the_same_key(tmp_path: Path) -> None:
    params = {"resolution": "480p", "aspect_ratio": "1:1", "duration": 1}
    one = only(generate(tmp_path / "one", Kind.VIDEO, params)).read_bytes()
    two = only(generate(tmp_path / "two", Kind.VIDEO, params)).read_bytes()
    other = only(generate(tmp_path / "three", Kind.VIDEO, params, key="z" * 64)).read_bytes()
    assert one == two
    assert one != other


def test_animate_starts_on_the_input_image(tmp_path: Path) -> None:
    still = only(generate(tmp_path / "still", Kind.IMAGE, {"aspect_ratio": "16:9"}))
    params = {"resolution": "480p", "aspect_ratio": None, "duration": 2}
    clip = Clip(only(generate(tmp_path / "clip", Kind.ANIMATE, params, [still])))
    assert_video(clip, (848, 480), 2)  # the input's ratio, 16:9
    expected = ImageOps.fit(Image.open(still).convert("RGB"), (848, 480))
    assert mean_difference(clip.frames[0], expected) < 4
    assert mean_difference(clip.frames[-1], expected) > 8  # then it moves


def test_animate_with_a_ratio_fits_the_input_to_the_frame(tmp_path: Path) -> None:
    square = solid(tmp_path / "sq.png", (300, 300), (40, 160, 90))
    params = {"resolution": "480p", "aspect_ratio": "9:16", "duration": 1}
    clip = Clip(only(generate(tmp_path / "clip", Kind.ANIMATE, params, [square])))
    assert_video(clip, (480, 848), 1)
    assert mean_difference(clip.frames[0], Image.new("RGB", (480, 848), (40, 160, 90))) < 4


def test_reference_video_shows_every_reference(tmp_path: Path) -> None:
    colors = [(230, 30, 30), (30, 200, 30), (30, 30, 230)]
    refs = [solid(tmp_path / f"r{n}.png", (200, 200), c) for n, c in enumerate(colors)]
    params = {"resolution": "480p", "aspect_ratio": "16:9", "duration": 3}
    clip = Clip(only(generate(tmp_path / "clip", Kind.REFERENCE_VIDEO, params, refs)))
    assert_video(clip, (848, 480), 3)
    middle = (848 // 2 - 40, 480 // 2 - 40, 848 // 2 + 40, 480 // 2 + 40)
    for n, color in enumerate(colors):
        frame = clip.frames[n * 24 + 12]  # the middle of the reference's second
        assert mean_difference(frame.crop(middle), Image.new("RGB", (80, 80), color)) < 6


def foreign_clip(path: Path, size: tuple[int, int], fps: int, seconds: float) -> Path:
    """A clip unlike ours: another codec, frame rate and size, with an audio track."""
    with av.open(str(path), "w") as container:
        video = container.add_stream("mpeg4", rate=fps)
        video.width, video.height = size
        video.pix_fmt = "yuv420p"
        audio = container.add_stream("aac", rate=44100)
        for n in range(round(fps * seconds)):
            shade = 40 + n * 150 // round(fps * seconds)
            img = Image.new("RGB", size, (shade, 90, 255 - shade))
            frame = av.VideoFrame.from_image(img)
            frame.pts = n
            frame.time_base = Fraction(1, fps)
            container.mux(video.encode(frame))
        container.mux(video.encode(None))
        samples = av.AudioFrame(format="fltp", layout="mono", samples=1024)
        for plane in samples.planes:
            plane.update(bytes(plane.buffer_size))
        samples.sample_rate, samples.pts = 44100, 0
        container.mux(audio.encode(samples))
        container.mux(audio.encode(None))
    return path


def test_video_edit_keeps_the_length_and_transforms_every_frame(tmp_path: Path) -> None:
    params = {"resolution": "480p", "aspect_ratio": "4:3", "duration": 2}
    source = only(generate(tmp_path / "src", Kind.VIDEO, params))
    clip = Clip(only(generate(tmp_path / "edit", Kind.VIDEO_EDIT, {}, [source])))
    original = Clip(source)
    assert_video(clip, (640, 480), 2)
    for n in (0, 24, 47):
        assert mean_difference(clip.frames[n], original.frames[n]) > 15


def test_video_edit_of_a_foreign_clip(tmp_path: Path) -> None:
    source = foreign_clip(tmp_path / "foreign.mp4", (642, 362), 30, 1.5)
    clip = Clip(only(generate(tmp_path / "edit", Kind.VIDEO_EDIT, {}, [source])))
    assert_video(clip, (642, 362), 1.5)


def test_extend_appends_a_continuation_without_touching_the_original(tmp_path: Path) -> None:
    params = {"resolution": "480p", "aspect_ratio": "16:9", "duration": 2}
    source = only(generate(tmp_path / "src", Kind.VIDEO, params))
    clip = Clip(only(generate(tmp_path / "ext", Kind.EXTEND, {"duration": 2}, [source])))
    original = Clip(source)
    assert_video(clip, (848, 480), 4)
    assert clip.planes[:48] == original.planes  # the same decoded pictures, bit for bit
    assert mean_difference(clip.frames[48], original.frames[-1]) < 12  # it continues
    assert mean_difference(clip.frames[-1], original.frames[-1]) > 15  # and goes somewhere


def test_extend_of_a_foreign_clip_reencodes_both_parts(tmp_path: Path) -> None:
    source = foreign_clip(tmp_path / "foreign.mp4", (480, 270), 25, 2)
    clip = Clip(only(generate(tmp_path / "ext", Kind.EXTEND, {"duration": 2}, [source])))
    assert_video(clip, (480, 270), 4)
    original = Clip(source)
    for n in (0, 24, 47):
        at = original.frames[min(len(original.frames) - 1, round(n * 25 / 24))]
        assert mean_difference(clip.frames[n], at) < 6


def test_extend_is_byte_identical_for_the_same_key(tmp_path: Path) -> None:
    # A fade like this one once made x264's rate control vary between runs: run it thrice.
    source = only(generate(tmp_path / "src", Kind.VIDEO, {"duration": 1, "aspect_ratio": "1:1"}))
    outputs: list[OutputFile] = []
    for name in ("one", "two", "three"):
        outputs += generate(tmp_path / name, Kind.EXTEND, {"duration": 2}, [source]).outputs
    assert len({o.path.read_bytes() for o in outputs}) == 1


def test_a_chain_of_every_kind_yields_valid_media(tmp_path: Path) -> None:
    from imaginebuild.mediaprobe import probe

    image = generate(tmp_path / "i", Kind.IMAGE, {"count": 2, "aspect_ratio": "3:4"}).outputs
    edit = only(generate(tmp_path / "e", Kind.EDIT, {}, [o.path for o in image]))
    animate = only(generate(tmp_path / "a", Kind.ANIMATE, {"duration": 1}, [edit]))
    refs = only(generate(tmp_path / "r", Kind.REFERENCE_VIDEO, {"duration": 1}, [edit, edit]))
    edited = only(generate(tmp_path / "ve", Kind.VIDEO_EDIT, {}, [animate]))
    extended = only(generate(tmp_path / "x", Kind.EXTEND, {"duration": 2}, [edited]))
    assert probe(edit).media_type == PNG
    assert probe(animate).width == 480  # 3:4 input → the 3:4 frame
    assert probe(refs).frames == 24
    assert probe(extended).frames == 72
    assert not [p.name for p in (tmp_path / "x").iterdir() if p.name != "output-0.mp4"]


def test_an_undecodable_clip_is_an_input_error(tmp_path: Path) -> None:
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"\0\0\0\x18ftypisom" + bytes(range(256)) * 4)
    with pytest.raises(InputError, match=r"broken\.mp4"):
        generate(tmp_path / "out", Kind.VIDEO_EDIT, {}, [broken])


def test_concurrent_renders_match_sequential_ones(tmp_path: Path) -> None:
    local = provider(2)
    params = {"resolution": "480p", "aspect_ratio": "3:2", "duration": 1}
    still = {"resolution": "1k", "aspect_ratio": "3:2"}

    def request(name: str, kind: Kind, key: str) -> GenerationRequest:
        asked = params if kind is Kind.VIDEO else still
        return GenerationRequest(name, kind, key, "two at once", "m", asked, (), tmp_path / name)

    async def both() -> list[GenerationResult]:
        return list(
            await asyncio.gather(
                local.generate(request("v1", Kind.VIDEO, "1" * 64)),
                local.generate(request("i1", Kind.IMAGE, "2" * 64)),
            )
        )

    together = asyncio.run(both())
    alone = [
        generate(tmp_path / "v2", Kind.VIDEO, params, key="1" * 64, prompt="two at once"),
        generate(tmp_path / "i2", Kind.IMAGE, still, key="2" * 64, prompt="two at once"),
    ]
    for a, b in zip(together, alone, strict=True):
        assert only(a).read_bytes() == only(b).read_bytes()


@pytest.mark.parametrize(
    ("size", "aspect"),
    [((1024, 1024), "1:1"), ((1360, 768), "16:9"), ((688, 1504), "9:16"), ((1100, 1000), "1:1"),
     ((1250, 1000), "4:3"), ((1456, 1000), "3:2")],
)  # fmt: skip
def test_animate_without_a_ratio_takes_the_nearest_video_ratio(
    size: tuple[int, int], aspect: str
) -> None:
    from imaginebuild.providers.local.geometry import nearest_video_aspect

    assert nearest_video_aspect(*size) == aspect


@pytest.mark.parametrize(
    ("source", "output"),
    [((1920, 1080), (1280, 720)), ((848, 480), (848, 480)), ((1080, 1920), (720, 1280)),
     ((641, 359), (640, 360)), ((3840, 2160), (1280, 720))],
)  # fmt: skip
def test_clips_keep_their_size_capped_at_720p_with_even_sides(
    source: tuple[int, int], output: tuple[int, int]
) -> None:
    from imaginebuild.providers.local.geometry import inherited_video_size

    assert inherited_video_size(*source) == output
