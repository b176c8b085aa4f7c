"""The static HTML report: what it copies, links, escapes and lays out (no browser here)."""

from __future__ import annotations

import dataclasses
import hashlib
import html.parser
import os
import re
from pathlib import Path

import pytest
from conftest import run_cli

from imaginebuild.cli.report import write_report
from imaginebuild.cli.reportpage import (
    Card,
    InputItem,
    MediaItem,
    Page,
    layout_dag,
    render_card,
    render_page,
)
from imaginebuild.errors import StoreError
from imaginebuild.money import usd_to_ticks
from imaginebuild.project import Project, load

EVIL = "<script>alert(1)</script> & \"quotes\" 'single' </blockquote><img src=x onerror=alert(2)>"

MEDIAFILE = """\
version: 1
provider: local
vars:
  evil: {evil}
defaults:
  image: {{resolution: 1k, aspect_ratio: "16:9"}}
  video: {{resolution: 480p, duration: 1}}
assets:
  london:
    kind: image
    prompt: A collage of London landmarks
    count: 2
  sketch:
    kind: edit
    prompt: "${{evil}}"
    inputs: ["london[0]", art/logo.png]
  clip:
    kind: animate
    prompt: Slowly pan across the skyline
    inputs: [sketch]
  later:
    kind: image
    prompt: Never built yet
"""


def write_project(root: Path) -> Path:
    """A small project whose `sketch` prompt is hostile HTML; returns the mediafile."""
    from PIL import Image

    (root / "art").mkdir(parents=True)
    Image.new("RGB", (64, 64), (200, 30, 30)).save(root / "art" / "logo.png")
    path = root / "mediafile.yaml"
    quoted = '"' + EVIL.replace("\\", "\\\\").replace('"', '\\"') + '"'
    path.write_text(MEDIAFILE.format(evil=quoted), encoding="utf-8")
    return path


def built_project(root: Path) -> Project:
    """Write the project and build everything but `later` with the local provider."""
    path = write_project(root)
    env = {"IMAGINEBUILD_CACHE_DIR": str(root / "cache")}
    result = load(path, env=env).run(["clip"])
    assert {a.name: a.state for a in result.assets} == {
        "london": "built",
        "sketch": "built",
        "clip": "built",
    }
    return load(path, env=env)


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Project:
    return built_project(tmp_path_factory.mktemp("report-project"))


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


class _Collector(html.parser.HTMLParser):
    """Tags and attributes of a document, as a browser's tokenizer would see them."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def parse(text: str) -> _Collector:
    collector = _Collector()
    collector.feed(text)
    return collector


# ---------------------------------------------------------------------- the written folder


def test_report_is_self_contained_with_verified_copies(project: Project, tmp_path: Path) -> None:
    index = write_report(project, tmp_path / "report")
    assert index == tmp_path / "report" / "index.html"
    doc = parse(index.read_text(encoding="utf-8"))
    sources = [a.get("src") or "" for t, a in doc.tags if t in ("img", "video")]
    assert sources, "the page shows media"
    for src in sources:
        assert not re.match(r"^[a-z]+:", src), f"{src} is not a relative link"
        copy = index.parent / src
        assert sha256_of(copy) == copy.stem  # copies are named by their verified hash
    entries = project.lock_entries()
    shown = {Path(s).stem for s in sources}
    expected = {o.sha256 for e in entries.values() for o in e.outputs}
    assert expected <= shown
    assert sha256_of(project.root / "art" / "logo.png") in shown  # the file input, too
    for tag, attrs in doc.tags:  # nothing is fetched from elsewhere
        for name in ("src", "href"):
            value = attrs.get(name) or ""
            assert not value.startswith(("http:", "https:", "//")), (tag, value)


def test_every_asset_has_its_card_state_lineage_and_cost(project: Project, tmp_path: Path) -> None:
    text = write_report(project, tmp_path / "r").read_text(encoding="utf-8")
    for name in ("london", "sketch", "clip", "later"):
        assert f'id="asset-{name}"' in text
    sketch = text[text.index('id="asset-sketch"') : text.index('id="asset-clip"')]
    assert '<a href="#asset-london">london[0]</a>' in sketch  # its input
    assert '<a href="#asset-clip">clip</a>' in sketch  # its dependant
    assert "art/logo.png" in sketch
    assert "<dt>estimate</dt><dd>$0.024</dd>" in sketch  # the record's would-be cost
    assert "<dt>cost</dt><dd>$0.00</dd>" in sketch
    assert project.lock_entries()["sketch"].key in sketch
    assert 'class="state"' in sketch and ">up to date<" in sketch
    later = text[text.index('id="asset-later"') :]
    assert "not built yet" in later and ">never built<" in later
    assert "Never built yet" in later  # the declaration's prompt
    svg = text[text.index("<svg") : text.index("</svg>")]
    assert svg.count('<a href="#asset-') == 4
    assert svg.count('class="edge"') == 2  # london→sketch, sketch→clip (files are not nodes)
    assert 'class="node state-never_built"' in svg


def test_hostile_prompt_is_text_not_markup(project: Project, tmp_path: Path) -> None:
    text = write_report(project, tmp_path / "r").read_text(encoding="utf-8")
    assert "<script" not in text.lower()
    assert "onerror=alert" not in text.replace("onerror=alert(2)&gt;", "")
    doc = parse(text)
    assert not [t for t, _ in doc.tags if t == "script"]
    assert all(not any(k.startswith("on") for k in a) for _, a in doc.tags)
    assert EVIL in "".join(doc.text)  # the prompt reads back exactly, as text
    assert "script-src 'none'" in text  # and the page could not run a script anyway


def test_rewriting_reuses_copies_and_drops_unshown_media(project: Project, tmp_path: Path) -> None:
    out = tmp_path / "r"
    write_report(project, out)
    media = out / "media"
    stale = media / (("0" * 64) + ".png")
    stale.write_bytes(b"from an older report")
    keep = next(media.glob("*.mp4"))
    mtime = keep.stat().st_mtime_ns
    unrelated = media / "notes.txt"
    unrelated.write_text("mine")
    write_report(project, out)
    assert not stale.exists()
    assert keep.stat().st_mtime_ns == mtime  # not copied again
    assert unrelated.exists()  # only files named like our copies are pruned


def test_missing_media_is_noted_and_tampered_bytes_are_not_copied(tmp_path: Path) -> None:
    project = built_project(tmp_path / "p")
    entry = project.lock_entries()["clip"]
    out = entry.outputs[0]
    project.store.blob_path(out.sha256).unlink()  # not in the cache …
    (project.root / out.path).write_bytes(b"not the video")  # … and the output was overwritten
    index = write_report(project, tmp_path / "r")
    text = index.read_text(encoding="utf-8")
    assert f"{out.path}: missing" in text
    assert "imaginebuild checkout" in text  # the note says what to do
    assert not (index.parent / "media" / f"{out.sha256}.mp4").exists()
    london = project.lock_entries()["london"].outputs[0]
    assert (index.parent / "media" / f"{london.sha256}.png").is_file()


def test_a_changed_input_file_is_shown_as_it_is_now(tmp_path: Path) -> None:
    from PIL import Image

    project = built_project(tmp_path / "p")
    logo = project.root / "art" / "logo.png"
    Image.new("RGB", (32, 32), (0, 90, 200)).save(logo)
    index = write_report(project, tmp_path / "r")
    text = index.read_text(encoding="utf-8")
    assert f"media/{sha256_of(logo)}.png" in text
    assert "not in the cache" not in text


def test_output_folder_serves_when_the_cache_was_cleared(tmp_path: Path) -> None:
    project = built_project(tmp_path / "p")
    for entry in project.lock_entries().values():
        for out in entry.outputs:
            project.store.blob_path(out.sha256).unlink()
    index = write_report(project, tmp_path / "r")
    copies = {p.stem for p in (index.parent / "media").iterdir()}
    expected = {o.sha256 for e in project.lock_entries().values() for o in e.outputs}
    assert expected <= copies


def test_an_unwritable_folder_is_a_store_error(project: Project, tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("a file where the folder should be")
    with pytest.raises(StoreError, match="cannot write the report"):
        write_report(project, blocker / "report")


# ---------------------------------------------------------------------- pure parts


def test_layers_follow_the_longest_path_and_barycentres() -> None:
    parents = {
        "a": (),
        "b": (),
        "c": ("b",),
        "d": ("a", "c"),  # level 2: a is at 0 but c is at 1
        "e": ("a",),
    }
    layout = layout_dag(["a", "b", "c", "d", "e"], parents)
    x = {n: layout.nodes[n][0] for n in parents}
    assert x["a"] == x["b"] < x["c"] == x["e"] < x["d"]
    # In layer 1, c (parent b at rank 1) goes below e (parent a at rank 0).
    assert layout.nodes["e"][1] < layout.nodes["c"][1]
    assert set(layout.edges) == {("b", "c"), ("a", "d"), ("c", "d"), ("a", "e")}
    right = max(xx + w for xx, _, w in layout.nodes.values())
    bottom = max(y for _, y, _ in layout.nodes.values())
    assert layout.width > right and layout.height > bottom


def test_layout_of_nothing_is_an_empty_canvas() -> None:
    layout = layout_dag([], {})
    assert layout.nodes == {} and layout.width > 0 and layout.height > 0


def test_names_and_paths_are_escaped_in_attributes_too() -> None:
    card = Card(
        name="a",
        kind="edit",
        state="stale",
        reason='prompt changed: "x" → "<y>"',
        prompt="p",
        provider="xai",
        model="m",
        params={"aspect_ratio": "16:9"},
        variant=2,
        inputs=(
            InputItem('dir/"quote".png'),
            InputItem("https://example.com/a?b=1&c=<2>", url="https://example.com/a?b=1&c=<2>"),
        ),
        outputs=(MediaItem('out/x".png', "image/png", "f" * 64, 10, 'media/"x.png'),),
        request_ids=("req-<1>",),
    )
    text = render_card(card)
    doc = parse(text)
    attrs = [a for _, a in doc.tags]
    assert {"src": 'media/"x.png', "alt": 'a: out/x".png', "decoding": "async"} in attrs
    assert {"href": "https://example.com/a?b=1&c=<2>", "rel": "noreferrer"} in attrs
    assert 'title="prompt changed: &quot;x&quot; → &quot;&lt;y&gt;&quot;"' in text
    assert "req-&lt;1&gt;" in text and "<dt>variant</dt><dd>2</dd>" in text


def test_page_totals_and_notes() -> None:
    def card(name: str, cost: str) -> Card:
        ticks = usd_to_ticks(cost)
        return Card(name, "image", "up_to_date", "", "p", "xai", "m", {}, 0, cost_ticks=ticks)

    cards = (card("a", "0.07"), card("b", "0.132"))
    page = Page("proj<1>", "mediafile.yaml", cards, ("n<1>",), spent_ticks=usd_to_ticks("1.5"))
    text = render_page(page)
    assert "<title>proj&lt;1&gt; — imaginebuild report</title>" in text
    assert "2 assets · 0 built · spent $1.50 (ledger) · cost of current outputs $0.202" in text
    assert "<li>n&lt;1&gt;</li>" in text
    maybe = dataclasses.replace(page, maybe_billed_ticks=usd_to_ticks("0.3"))
    assert "spent $1.50 (ledger, of which $0.30 may have been billed)" in render_page(maybe)
    assert "spent unknown · " in render_page(dataclasses.replace(page, spent_ticks=None))


def test_cli_report_writes_the_folder_and_names_it(tmp_path: Path) -> None:
    project = built_project(tmp_path / "p")
    env = {**os.environ, "IMAGINEBUILD_CACHE_DIR": str(project.root / "cache")}
    out = tmp_path / "site"
    done = run_cli("-C", str(project.root), "report", "-o", str(out), cwd=tmp_path, env=env)
    assert done.code == 0, done.stderr
    assert (out / "index.html").is_file()
    assert (out / "index.html").as_uri() in done.stdout  # the result, on stdout
