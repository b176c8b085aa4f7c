"""Frozen data that flows between layers: kinds, assets, input references, the mediafile."""

from __future__ import annotations

import enum
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

from imaginebuild.spelled import ProviderName

MEDIAFILE_VERSION = 1

IMAGE_ASPECT_RATIOS = (
    "1:1", "3:4", "4:3", "9:16", "16:9", "2:3", "3:2",
    "9:19.5", "19.5:9", "9:20", "20:9", "1:2", "2:1", "21:9", "5:2", "auto",
)  # fmt: skip
VIDEO_ASPECT_RATIOS = ("1:1", "16:9", "9:16", "4:3", "3:4", "3:2", "2:3")
IMAGE_RESOLUTIONS = ("1k", "1.5k", "2k")
VIDEO_RESOLUTIONS = ("480p", "720p", "1080p")

PNG = "image/png"
MP4 = "video/mp4"


class Media(str, enum.Enum):
    """What a kind makes or takes."""

    IMAGE = "image"
    VIDEO = "video"


class Kind(str, enum.Enum):
    """The seven operations of the media API an asset can use."""

    IMAGE = "image"
    EDIT = "edit"
    VIDEO = "video"
    ANIMATE = "animate"
    REFERENCE_VIDEO = "reference_video"
    VIDEO_EDIT = "video_edit"
    EXTEND = "extend"

    @property
    def spec(self) -> KindSpec:
        """The static facts of this kind (inputs, parameters, output media)."""
        return KIND_SPECS[self]


@dataclass(frozen=True)
class KindSpec:
    """What a kind takes, makes and which parameters mean something for it."""

    output: Media
    input_media: Media | None
    min_inputs: int
    max_inputs: int
    params: frozenset[str]
    default_model: str
    default_duration: int | None = None
    duration_range: tuple[int, int] | None = None
    defaults_section: str = "image"  # which `defaults:` section reaches this kind


_IMAGE_PARAMS = frozenset({"model", "resolution", "aspect_ratio", "count"})
_VIDEO_PARAMS = frozenset({"model", "resolution", "aspect_ratio", "duration"})

KIND_SPECS: Mapping[Kind, KindSpec] = {
    Kind.IMAGE: KindSpec(Media.IMAGE, None, 0, 0, _IMAGE_PARAMS, "grok-imagine-image"),
    Kind.EDIT: KindSpec(Media.IMAGE, Media.IMAGE, 1, 3, _IMAGE_PARAMS, "grok-imagine-image"),
    Kind.VIDEO: KindSpec(
        Media.VIDEO, None, 0, 0, _VIDEO_PARAMS, "grok-imagine-video", 8, (1, 15), "video"
    ),
    Kind.ANIMATE: KindSpec(
        Media.VIDEO, Media.IMAGE, 1, 1, _VIDEO_PARAMS, "grok-imagine-video", 8, (1, 15), "video"
    ),
    Kind.REFERENCE_VIDEO: KindSpec(  # at most 10 s with reference images (docs.x.ai)
        Media.VIDEO, Media.IMAGE, 1, 7, _VIDEO_PARAMS, "grok-imagine-video", 8, (1, 10), "video"
    ),
    Kind.VIDEO_EDIT: KindSpec(
        Media.VIDEO, Media.VIDEO, 1, 1, frozenset({"model"}), "grok-imagine-video",
        defaults_section="video",
    ),
    Kind.EXTEND: KindSpec(
        Media.VIDEO, Media.VIDEO, 1, 1, frozenset({"model", "duration"}), "grok-imagine-video",
        6, (2, 10), "video",
    ),
}  # fmt: skip


@dataclass(frozen=True)
class Mark:
    """A place in a file (1-based line and column) for diagnostics."""

    file: str
    line: int
    column: int


class RefKind(str, enum.Enum):
    """What an entry of `inputs:` points at."""

    ASSET = "asset"
    FILE = "file"
    URL = "url"


@dataclass(frozen=True)
class InputRef:
    """One resolved entry of an asset's `inputs:`.

    `asset`/`index` for `NAME` / `NAME[i]` (index None means the single output),
    `path` (project-relative, POSIX) for a local file, `url` for `https://…`.
    """

    raw: str
    kind: RefKind
    asset: str | None = None
    index: int | None = None
    path: str | None = None  # absolute only for a file outside the project that --allow-read allows
    url: str | None = None


@dataclass(frozen=True)
class InputPolicy:
    """What the user allows beyond project files and https URLs; never set by a mediafile.

    `allow_read`: folders outside the project whose files may be inputs
    (`--allow-read DIR`, `IMAGINEBUILD_ALLOW_READ`). `allow_http_loopback`: plain
    http inputs on 127.0.0.1/localhost (`IMAGINEBUILD_ALLOW_HTTP_LOOPBACK=1`, for tests).
    """

    allow_read: tuple[Path, ...] = ()
    allow_http_loopback: bool = False

    @classmethod
    def from_env(cls, env: Mapping[str, str], extra: Sequence[str] = ()) -> InputPolicy:
        """The policy from the environment plus folders named on the command line."""
        folders = [*env.get("IMAGINEBUILD_ALLOW_READ", "").split(os.pathsep), *extra]
        return cls(
            allow_read=tuple(Path(f).expanduser().resolve() for f in folders if f),
            allow_http_loopback=env.get("IMAGINEBUILD_ALLOW_HTTP_LOOPBACK") == "1",
        )


PROJECT_ONLY = InputPolicy()  # the default: project files and https URLs, nothing else


@dataclass(frozen=True)
class Asset:
    """One validated asset with defaults merged and vars interpolated."""

    name: str
    kind: Kind
    provider: ProviderName
    prompt: str
    inputs: tuple[InputRef, ...] = ()
    model: str = ""
    resolution: str | None = None
    aspect_ratio: str | None = None
    count: int = 1
    duration: int | None = None
    variant: int = 0
    outputs: tuple[str, ...] = ()  # project-relative POSIX paths it materializes to
    mark: Mark | None = field(default=None, compare=False)
    template: str | None = field(default=None, compare=False)  # the matrix it was expanded from

    @property
    def output_media(self) -> Media:
        """Whether this asset makes images or a video."""
        return self.kind.spec.output

    def params(self) -> dict[str, object]:
        """The parameters that mean something for this kind, for keys and records."""
        values: dict[str, object] = {
            "resolution": self.resolution,
            "aspect_ratio": self.aspect_ratio,
            "count": self.count,
            "duration": self.duration,
        }
        return {k: v for k, v in values.items() if k in self.kind.spec.params}

    def upstream(self) -> tuple[str, ...]:
        """Names of the assets this one reads, in `inputs:` order, without repeats."""
        seen: dict[str, None] = {}
        for ref in self.inputs:
            if ref.asset is not None:
                seen.setdefault(ref.asset)
        return tuple(seen)


@dataclass(frozen=True)
class ProviderSettings:
    """The `providers.<name>:` block; None means the provider's own default."""

    base_url: str | None = None
    max_concurrency: int | None = None
    poll_interval: float | None = None
    timeout: float | None = None  # a whole video job's deadline
    request_timeout: float | None = None  # one HTTP request's
    max_retries: int | None = None
    rate_limits: Mapping[str, float] | None = None  # submissions per second, per model
    poll_rate: float | None = None  # polls per second across all jobs


@dataclass(frozen=True)
class Mediafile:
    """A loaded, validated mediafile: the whole declaration as data."""

    path: Path  # absolute path of the mediafile
    root: Path  # the project folder (the mediafile's folder), absolute
    assets: Mapping[str, Asset]  # in declaration order
    provider: ProviderName = ProviderName.XAI
    output_dir: str = "out"
    vars: Mapping[str, str] = field(default_factory=dict)
    budget_usd: Decimal | None = None  # budget.max_usd: one run's limit
    budget_per_day_usd: Decimal | None = (
        None  # budget.max_usd_per_day: one UTC day's, from the ledger
    )
    budget_total_usd: Decimal | None = None  # budget.max_usd_total: all time's (ledger)
    providers: Mapping[str, ProviderSettings] = field(default_factory=dict)
    pricing: Mapping[str, object] = field(default_factory=dict)  # raw overrides; pricing.py reads
    remote: str | None = None
    remote_readonly: bool = False
    version: int = MEDIAFILE_VERSION
    policy: InputPolicy = field(default_factory=InputPolicy)  # what it was validated under
    source_digest: str = ""  # sha256 of the text it was built from ("" if built by hand)

    @property
    def lockfile_path(self) -> Path:
        """`mediafile.lock` beside the mediafile (same stem, `.lock`)."""
        return self.path.with_suffix(".lock")

    def settings(self, provider: str) -> ProviderSettings:
        """The settings block of one provider (empty if the file has none)."""
        return self.providers.get(provider, ProviderSettings())
