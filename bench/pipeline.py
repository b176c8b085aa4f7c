"""The benchmark pipeline: N/4 independent chains image → edit → animate → extend.

Every tool in the comparison gets this same shape (imaginebuild's mediafile here,
the peers' files in `peers.py`); the assets are cheap for the local provider
(1k images, 1 s animations at 480p extended by 2 s) so a cold build of 10,000
stays within minutes.

    python bench/pipeline.py N FOLDER     # write FOLDER/mediafile.yaml
"""

from __future__ import annotations

import sys
from pathlib import Path

STAGES = ("img", "edit", "anim", "ext")
SUFFIX = {"img": "png", "edit": "png", "anim": "mp4", "ext": "mp4"}


def chain_count(n: int) -> int:
    """How many chains make `n` assets (n is rounded down to a multiple of 4)."""
    if n < 4:
        raise ValueError("the pipeline needs at least 4 assets")
    return n // 4


def asset_names(n: int) -> list[str]:
    """Every asset of the N-asset pipeline, chain by chain, in dependency order."""
    return [f"{stage}{c}" for c in range(chain_count(n)) for stage in STAGES]


def upstream(name: str) -> str | None:
    """The asset `name` is made from (None for a chain's first image)."""
    stage = name.rstrip("0123456789")
    index = STAGES.index(stage)
    return None if index == 0 else STAGES[index - 1] + name[len(stage) :]


def output_path(name: str) -> str:
    """Where the asset's output lands, relative to the project."""
    return f"out/{name}.{SUFFIX[name.rstrip('0123456789')]}"


def mediafile(n: int) -> str:
    """imaginebuild's mediafile for the N-asset pipeline (local provider)."""
    lines = [
        "version: 1",
        "provider: local",
        "defaults:",
        "  image: {resolution: 1k, aspect_ratio: '1:1'}",
        "  video: {resolution: 480p, duration: 1}",
        "assets:",
    ]
    for c in range(chain_count(n)):
        lines += [
            f"  img{c}: {{kind: image, prompt: 'chain {c}: a lighthouse at dawn'}}",
            f"  edit{c}: {{kind: edit, prompt: 'chain {c}: as a woodcut', inputs: [img{c}]}}",
            f"  anim{c}: {{kind: animate, prompt: 'chain {c}: waves roll in', inputs: [edit{c}]}}",
            f"  ext{c}: {{kind: extend, prompt: 'chain {c}: night falls', inputs: [anim{c}],"
            " duration: 2}",
        ]
    return "\n".join(lines) + "\n"


def main() -> int:
    """Write the mediafile for N assets into FOLDER."""
    n, folder = int(sys.argv[1]), Path(sys.argv[2])
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "mediafile.yaml").write_text(mediafile(n))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
