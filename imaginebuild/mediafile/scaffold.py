"""`imaginebuild init`: a commented starter mediafile and the .gitignore entries a project needs."""

from __future__ import annotations

from pathlib import Path

from imaginebuild.errors import UsageError
from imaginebuild.layout import STATE_DIR

SCHEMA_URL = (
    "https://raw.githubusercontent.com/imaginebuild/imaginebuild/main/schemas/mediafile.schema.json"
)

STARTER = f"""\
# yaml-language-server: $schema={SCHEMA_URL}
# An imaginebuild mediafile: named assets, each made from a prompt and other assets.
# Try it offline with `imaginebuild run --provider local`; `imaginebuild plan` shows the cost.
version: 1
provider: xai            # xai (Grok Imagine API, needs XAI_API_KEY) or local (offline renderer)
output_dir: out
vars:
  style: watercolor
defaults:
  image: {{resolution: 1k, aspect_ratio: "16:9"}}
  video: {{resolution: 480p, duration: 4}}
budget:
  max_usd: 1.00          # a run never starts a call that could pass this
assets:
  hero:
    kind: image
    prompt: A lighthouse on a cliff at dawn, ${{style}}
  hero_clip:
    kind: animate
    prompt: Waves roll in slowly while the light turns
    inputs: [hero]
"""

IGNORES = (f"{STATE_DIR}/",)


def scaffold(folder: Path, mediafile: Path, ignore_outputs: bool) -> list[str]:
    """Write the starter mediafile (never over an existing one) and .gitignore lines."""
    target = folder / mediafile
    if target.exists():
        raise UsageError(f"{mediafile} already exists; init leaves it alone")
    target.write_text(STARTER, encoding="utf-8")
    done = [f"wrote {mediafile}"]
    wanted = list(IGNORES) + (["out/"] if ignore_outputs else [])
    gitignore = folder / ".gitignore"
    present = gitignore.read_text(encoding="utf-8").splitlines() if gitignore.exists() else []
    missing = [line for line in wanted if line not in present]
    if missing:
        prefix = "" if not present or present[-1] == "" else "\n"
        with gitignore.open("a", encoding="utf-8") as f:
            f.write(prefix + "\n".join(missing) + "\n")
        done.append(f"added {', '.join(missing)} to .gitignore")
    return done
