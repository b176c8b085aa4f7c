"""The output checks on real media files: each rule refuses what breaks it, at its edge.

The files are real PNGs and H.264 MP4s (the fake server's renderer), probed by the
same decoder a run uses; each rule is met on both sides of its tolerance.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from imaginebuild.engine.outputcheck import (
    DURATION_TOLERANCE_S,
    VIDEO_EDIT_MAX_S,
    check_outputs,
)
from imaginebuild.errors import InvalidMedia
from imaginebuild.model import Asset, Kind
from imaginebuild.providers.base import InputFile, OutputFile
from imaginebuild.testing.fake_media import render_image, render_mp4

RED = (200, 30, 30)


def png(tmp_path: Path, size: tuple[int, int], name: str = "out.png") -> OutputFile:
    path = tmp_path / name
    path.write_bytes(render_image(size, RED, "png"))
    return OutputFile(path, "image/png")


def mp4(tmp_path: Path, size: tuple[int, int], seconds: int, name: str = "out.mp4") -> OutputFile:
    path = tmp_path / name
    path.write_bytes(render_mp4(size, seconds, RED))
    return OutputFile(path, "video/mp4")


def clip_input(tmp_path: Path, size: tuple[int, int], seconds: int) -> InputFile:
    out = mp4(tmp_path, size, seconds, "source.mp4")
    return InputFile(out.path, "0" * 64, "video/mp4")


def image(**fields: object) -> Asset:
    base: dict[str, object] = {
        "name": "pic", "kind": Kind.IMAGE, "provider": "xai", "prompt": "p",
        "model": "grok-imagine-image", "resolution": "1k", "aspect_ratio": "1:1",
    }  # fmt: skip
    return Asset(**{**base, **fields})  # type: ignore[arg-type]


def video(kind: Kind = Kind.VIDEO, **fields: object) -> Asset:
    base: dict[str, object] = {
        "name": "clip", "kind": kind, "provider": "xai", "prompt": "p",
        "model": "grok-imagine-video", "aspect_ratio": "16:9", "duration": 3,
    }  # fmt: skip
    return Asset(**{**base, **fields})  # type: ignore[arg-type]


def test_a_1k_square_image_passes(tmp_path: Path) -> None:
    check_outputs(image(), [png(tmp_path, (1024, 1024))])


def test_the_count_must_match(tmp_path: Path) -> None:
    with pytest.raises(InvalidMedia, match="expected 2 output"):
        check_outputs(image(count=2), [png(tmp_path, (1024, 1024))])
    with pytest.raises(InvalidMedia, match="expected 1 output"):
        check_outputs(image(), [])


def test_the_media_family_must_match(tmp_path: Path) -> None:
    with pytest.raises(InvalidMedia, match="expected image output, got video/mp4"):
        check_outputs(image(), [mp4(tmp_path, (64, 64), 1)])
    lying = png(tmp_path, (64, 64))
    with pytest.raises(InvalidMedia, match="holds image/png, expected video/mp4"):
        check_outputs(video(), [OutputFile(lying.path, "video/mp4")])


@pytest.mark.parametrize(
    ("size", "ok"),
    # 1:1 and 4:3 meet at sqrt(4/3) = 1.155 on the log scale the nearest ratio is measured on
    [((1024, 1024), True), ((1176, 1024), True), ((1192, 1024), False), ((1024, 1192), False)],
)
def test_the_aspect_ratio_snaps_to_the_asked_one_of_those_offered(
    tmp_path: Path, size: tuple[int, int], ok: bool
) -> None:
    asset, outputs = image(resolution=None), [png(tmp_path, size)]
    if ok:
        check_outputs(asset, outputs)
    else:
        with pytest.raises(InvalidMedia, match="not the asked 1:1"):
            check_outputs(asset, outputs)


def test_an_auto_ratio_accepts_any_shape(tmp_path: Path) -> None:
    check_outputs(image(aspect_ratio="auto", resolution=None), [png(tmp_path, (300, 100))])


@pytest.mark.parametrize(
    ("resolution", "size", "ok"),
    [
        ("1k", (1024, 1024), True),
        ("1k", (704, 704), False),  # 0.496 MP: below 1k's 0.5
        ("1k", (720, 720), True),  # 0.518 MP
        ("1k", (1232, 1232), False),  # 1.518 MP: above 1k's 1.5
        ("1k", (1216, 1216), True),  # 1.479 MP
        ("2k", (2048, 2048), True),
        ("2k", (1408, 1408), False),  # 1.98 MP: below 2k's 2.0
        ("2k", (2272, 2272), True),  # 5.16 MP
        ("2k", (2304, 2304), False),  # 5.31 MP: above 2k's 5.2
    ],
)
def test_the_resolution_bounds_the_pixel_area(
    tmp_path: Path, resolution: str, size: tuple[int, int], ok: bool
) -> None:
    asset, outputs = image(resolution=resolution), [png(tmp_path, size)]
    if ok:
        check_outputs(asset, outputs)
    else:
        with pytest.raises(InvalidMedia, match=f"not a {resolution} image"):
            check_outputs(asset, outputs)


def test_the_area_rule_binds_grok_models_only(tmp_path: Path) -> None:
    check_outputs(image(model="another-model"), [png(tmp_path, (64, 64))])


@pytest.mark.parametrize(
    ("seconds", "ok"), [(3, True), (2, True), (4, True), (1, False), (5, False)]
)
def test_a_video_lasts_the_asked_duration_within_a_second(
    tmp_path: Path, seconds: int, ok: bool
) -> None:
    outputs = [mp4(tmp_path, (160, 90), seconds)]
    if ok:
        check_outputs(video(), outputs)
    else:
        with pytest.raises(InvalidMedia, match="3 s expected"):
            check_outputs(video(), outputs)
    assert DURATION_TOLERANCE_S == 1.0


def test_a_video_of_the_wrong_shape_is_refused(tmp_path: Path) -> None:
    with pytest.raises(InvalidMedia, match="the video is 96×96, not the asked 16:9"):
        check_outputs(video(), [mp4(tmp_path, (96, 96), 3)])


def test_an_extension_lasts_its_input_plus_the_added_seconds(tmp_path: Path) -> None:
    source = clip_input(tmp_path, (160, 90), 2)
    asset = video(Kind.EXTEND, duration=2)
    check_outputs(asset, [mp4(tmp_path, (160, 90), 4)], [source])
    with pytest.raises(InvalidMedia, match="4 s expected"):
        check_outputs(asset, [mp4(tmp_path, (160, 90), 2, "short.mp4")], [source])


def test_an_edit_of_a_clip_keeps_its_shape_and_length(tmp_path: Path) -> None:
    source = clip_input(tmp_path, (96, 96), 2)
    asset = video(Kind.VIDEO_EDIT, duration=None, aspect_ratio=None)
    check_outputs(asset, [mp4(tmp_path, (96, 96), 2)], [source])
    with pytest.raises(InvalidMedia, match="the video is 160×90"):
        check_outputs(asset, [mp4(tmp_path, (160, 90), 2, "wide.mp4")], [source])
    with pytest.raises(InvalidMedia, match="2 s expected"):
        check_outputs(asset, [mp4(tmp_path, (96, 96), 5, "long.mp4")], [source])


def test_an_edit_of_a_long_clip_is_capped(tmp_path: Path) -> None:
    source = clip_input(tmp_path, (96, 96), 10)
    asset = video(Kind.VIDEO_EDIT, duration=None, aspect_ratio=None)
    check_outputs(asset, [mp4(tmp_path, (96, 96), 9)], [source])
    with pytest.raises(InvalidMedia, match=f"{VIDEO_EDIT_MAX_S:g} s expected"):
        check_outputs(asset, [mp4(tmp_path, (96, 96), 10, "whole.mp4")], [source])


def test_a_shape_nearer_another_offered_ratio_is_refused(tmp_path: Path) -> None:
    # 1600×890 is nearest 16:9; 1600×800 is 2:1, another offered ratio
    check_outputs(image(aspect_ratio="16:9", resolution=None), [png(tmp_path, (1600, 890))])
    with pytest.raises(InvalidMedia, match="the image is 1600×800, not the asked 16:9"):
        check_outputs(image(aspect_ratio="16:9", resolution=None), [png(tmp_path, (1600, 800))])


def test_an_animation_keeps_the_shape_of_its_input_image(tmp_path: Path) -> None:
    still = [InputFile(png(tmp_path, (64, 64), "still.png").path, "0" * 64, "image/png")]
    asset = video(Kind.ANIMATE, aspect_ratio=None)
    check_outputs(asset, [mp4(tmp_path, (96, 96), 3)], still)
    with pytest.raises(InvalidMedia, match=r"the video is 160×90, not the shape of its input$"):
        check_outputs(asset, [mp4(tmp_path, (160, 90), 3, "wide.mp4")], still)


def test_no_duration_asked_means_no_duration_checked(tmp_path: Path) -> None:
    check_outputs(video(duration=None), [mp4(tmp_path, (160, 90), 5)])
    check_outputs(video(Kind.EXTEND, duration=2), [mp4(tmp_path, (160, 90), 5, "x.mp4")])


def test_an_extension_without_added_seconds_keeps_its_input_length(tmp_path: Path) -> None:
    source = clip_input(tmp_path, (160, 90), 2)
    check_outputs(video(Kind.EXTEND, duration=None), [mp4(tmp_path, (160, 90), 1)], [source])


@pytest.mark.parametrize(
    ("resolution", "ratio", "size"),
    [
        ("1k", "2:1", (1000, 500)),  # exactly 0.5 MP: the lower bound is inclusive
        ("1k", "3:2", (1500, 1000)),  # exactly 1.5 MP: the upper bound too
        ("2k", "2:1", (2000, 1000)),  # exactly 2.0 MP
        ("2k", "2:1", (3200, 1625)),  # exactly 5.2 MP
    ],
)
def test_the_area_bounds_are_inclusive(
    tmp_path: Path, resolution: str, ratio: str, size: tuple[int, int]
) -> None:
    check_outputs(image(resolution=resolution, aspect_ratio=ratio), [png(tmp_path, size)])


def test_an_edit_of_a_clip_names_the_shape_it_had_to_keep(tmp_path: Path) -> None:
    source = clip_input(tmp_path, (96, 96), 2)
    asset = video(Kind.VIDEO_EDIT, duration=None, aspect_ratio=None)
    with pytest.raises(InvalidMedia, match=r"the video is 160×90, not the shape of its input$"):
        check_outputs(asset, [mp4(tmp_path, (160, 90), 2)], [source])


def test_a_single_image_edit_keeps_the_shape_of_its_input(tmp_path: Path) -> None:
    # a mediafile's edit asks for "auto": the API derives the ratio from the one input image
    wide = [InputFile(png(tmp_path, (160, 90), "wide.png").path, "0" * 64, "image/png")]
    asset = image(kind=Kind.EDIT, aspect_ratio="auto", resolution=None)
    check_outputs(asset, [png(tmp_path, (320, 180))], wide)
    with pytest.raises(InvalidMedia, match=r"the image is 100×100, not the shape of its input$"):
        check_outputs(asset, [png(tmp_path, (100, 100), "square.png")], wide)
    # with two inputs the API keeps no input's shape: any shape is the answer to "auto"
    two = [*wide, InputFile(png(tmp_path, (90, 160), "tall.png").path, "1" * 64, "image/png")]
    check_outputs(asset, [png(tmp_path, (100, 100), "square.png")], two)


def test_a_ratio_without_a_mirror_among_those_offered_is_checked_as_itself(
    tmp_path: Path,
) -> None:
    # 5:2 is offered but 2:5 is not: a shape 2.2 wide snaps to 20:9, not to the asked 5:2
    asset = image(aspect_ratio="5:2", resolution=None)
    check_outputs(asset, [png(tmp_path, (1250, 500))])
    with pytest.raises(InvalidMedia, match="the image is 1100×500, not the asked 5:2"):
        check_outputs(asset, [png(tmp_path, (1100, 500), "narrower.png")])
