"""The one corpus of mistaken mediafiles: `fixtures/mediafiles/<case>/mediafile.yaml`, most
with the exact located diagnostics they must produce in `expected.txt`.

`test_mediafile` checks every case's diagnostics; `test_bad_input` runs every case through
the commands and checks that each refuses it, located, with nothing written or called.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

from imaginebuild.errors import MediafileError
from imaginebuild.mediafile.load import load_mediafile

CORPUS = Path(__file__).parent / "fixtures" / "mediafiles"
# Every case (a folder with a mediafile), and those whose diagnostics are written down.
CASES = sorted(p.name for p in CORPUS.iterdir() if (p / "mediafile.yaml").is_file())
WITH_EXPECTED = [name for name in CASES if (CORPUS / name / "expected.txt").is_file()]


def _symlink_outside(project: Path) -> None:
    outside = project.parent / "outside.png"
    outside.write_bytes(b"not in the project")
    (project / "art").mkdir(exist_ok=True)
    (project / "art" / "outside.png").symlink_to(outside)


# Cases whose setup cannot live in git (a symlink pointing out of the checkout).
SETUP: dict[str, Callable[[Path], None]] = {"symlink-escape": _symlink_outside}


def lay_out(case: str, project: Path) -> Path:
    """Copy the case into the folder `project` (without its expected.txt) and finish its
    setup; returns `project`."""
    shutil.copytree(CORPUS / case, project, ignore=shutil.ignore_patterns("expected.txt"))
    SETUP.get(case, lambda _: None)(project)
    return project


def expected_lines(case: str) -> list[str]:
    """The diagnostics the case must produce, one `LINE:COL: [PATH: ]MESSAGE` a line."""
    return (CORPUS / case / "expected.txt").read_text(encoding="utf-8").splitlines()


def diagnostic_lines(mediafile: Path) -> list[str]:
    """What loading `mediafile` reports, in expected.txt's form (`(valid)` if it loads)."""
    try:
        load_mediafile(mediafile)
    except MediafileError as exc:
        return [
            f"{d.line}:{d.column}: {d.path}: {d.message}"
            if d.path
            else f"{d.line}:{d.column}: {d.message}"
            for d in exc.diagnostics
        ]
    return ["(valid)"]
