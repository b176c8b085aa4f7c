"""The report in a real headless Chromium: media decode, videos play, hostile text stays text.

Chromium comes from the system (Debian's `chromium` package); Playwright drives
it without downloading a browser of its own. Without chromium the test skips
locally and fails in CI (CI installs it). The screenshot is kept as an artefact
in $IMAGINEBUILD_TEST_ARTIFACTS, by default tests/artifacts/ (ignored by git).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from imaginebuild.cli.report import write_report

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
VIEWPORT = {"width": 1280, "height": 900}


def chromium_path() -> str:
    found = os.environ.get("IMAGINEBUILD_CHROMIUM") or shutil.which("chromium")
    if found:
        return found
    if os.environ.get("CI"):
        pytest.fail("chromium is not installed; CI must install it (apt-get install chromium)")
    pytest.skip("chromium is not installed (apt-get install chromium)")


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from test_report import built_project

    project = built_project(tmp_path_factory.mktemp("browser-project"))
    return write_report(project, tmp_path_factory.mktemp("browser-report"))


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    executable = chromium_path()
    from playwright.sync_api import sync_playwright

    profile = tmp_path_factory.mktemp("chromium-profile")
    with sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(
            str(profile),
            executable_path=executable,
            headless=True,
            args=CHROMIUM_ARGS,
            viewport=VIEWPORT,  # type: ignore[arg-type]
        )
        try:
            yield context
        finally:
            context.close()


def artefact_dir(tmp_path: Path) -> Path:
    """Where the screenshot goes: IMAGINEBUILD_TEST_ARTIFACTS (CI keeps it), else tmp_path;
    never the checkout."""
    folder = Path(os.environ.get("IMAGINEBUILD_TEST_ARTIFACTS") or tmp_path / "artifacts")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def test_report_in_headless_chromium(report: Path, browser: object, tmp_path: Path) -> None:
    from test_report import EVIL

    context = browser
    page = context.new_page()  # type: ignore[attr-defined]
    dialogs: list[str] = []
    requests: list[str] = []
    errors: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    page.on("request", lambda r: requests.append(r.url))
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(report.as_uri(), wait_until="load")

    # Every image decodes (scrolled into view first, as a reader would).
    images = page.locator("img")
    assert images.count() == 4  # london ×2, sketch, and the logo input
    for i in range(images.count()):
        images.nth(i).scroll_into_view_if_needed()
    sizes = page.evaluate(
        "Promise.all(Array.from(document.images).map("
        "  i => i.decode().then(() => [i.getAttribute('src'), i.naturalWidth, i.naturalHeight])))"
    )
    assert all(w > 0 and h > 0 for _, w, h in sizes), sizes
    widths = {src: w for src, w, _ in sizes}
    assert sorted(widths.values()) == [64, 1360, 1360, 1360]  # 1k at 16:9, and the 64 px logo

    # The video has metadata and a duration: it is a playable file, not a broken link.
    page.wait_for_function(
        "Array.from(document.querySelectorAll('video')).every(v => v.readyState >= 1)",
        timeout=15_000,
    )
    durations = page.evaluate("Array.from(document.querySelectorAll('video')).map(v => v.duration)")
    assert durations == [pytest.approx(1.0, abs=0.1)]

    # The hostile prompt fired nothing and reads back literally.
    prompt = page.locator("#asset-sketch .prompt").inner_text()
    assert prompt == EVIL
    assert page.locator("#asset-sketch script, #asset-sketch img[src='x']").count() == 0
    assert dialogs == [] and errors == []

    # The graph's nodes are links to the cards.
    page.locator("svg.dag a[href='#asset-clip']").click()
    assert page.evaluate("location.hash") == "#asset-clip"

    # Nothing was loaded from anywhere but the report's folder.
    folder = report.parent.as_uri()
    assert requests and all(u.startswith(folder) for u in requests), requests

    shot = artefact_dir(tmp_path) / "report.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10_000
    page.close()


def test_chromium_reports_blocked_scripts_as_inert(report: Path, browser: object) -> None:
    """Even a script the escaping let through would not run: the page's CSP forbids it."""
    page = browser.new_page()  # type: ignore[attr-defined]
    dialogs: list[str] = []
    console: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    page.on("console", lambda m: console.append(m.text))
    injected = report.with_name("injected.html")
    text = report.read_text(encoding="utf-8")
    assert text.count("<main>") == 1  # the injection below lands exactly once
    injected.write_text(text.replace("<main>", "<main><script>alert('ran')</script>", 1))
    page.goto(injected.as_uri(), wait_until="load")
    assert page.evaluate("document.querySelectorAll('main > script').length") == 1  # it is there
    assert dialogs == []  # and it did not run
    assert any("Content Security Policy" in m for m in console), console  # the CSP stopped it
    page.close()
