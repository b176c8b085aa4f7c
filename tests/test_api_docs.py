"""docs/api.md runs: its mediafile is written to a fresh folder and every python block
is executed there, in order, in one namespace (the blocks assert what they show)."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

import pytest

import imaginebuild

DOC = Path(__file__).resolve().parent.parent / "docs" / "api.md"
BLOCK = re.compile(r"^```(\w+)\n(.*?)^```$", re.M | re.S)


def blocks(language: str) -> list[str]:
    """The fenced code blocks of the document in one language, in order."""
    return [
        body for lang, body in BLOCK.findall(DOC.read_text(encoding="utf-8")) if lang == language
    ]


def test_every_python_example_of_the_api_document_runs(
    tmp_path: Path, clean_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in list(__import__("os").environ):
        if name.startswith(("IMAGINEBUILD_", "XAI_")):
            monkeypatch.delenv(name)
    for name, value in clean_env.items():
        monkeypatch.setenv(name, value)
    (mediafile,) = blocks("yaml")
    (tmp_path / "mediafile.yaml").write_text(mediafile, encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    examples = blocks("python")
    assert len(examples) >= 8
    namespace: dict[str, object] = {"__name__": "api_doc"}
    printed = io.StringIO()
    for number, code in enumerate(examples, 1):
        with contextlib.redirect_stdout(printed):
            exec(compile(code, f"{DOC.name} example {number}", "exec"), namespace)  # noqa: S102
    text = printed.getvalue()
    assert "broken.yaml:3:" in text  # the located diagnostic
    assert "prompt changed: A [-red-] {+grey+} fox in the snow" in text
    assert "did you mean 'fox'" in text


def test_the_document_covers_the_public_api() -> None:
    text = DOC.read_text(encoding="utf-8")
    for name in imaginebuild.__all__:
        if name in ("__version__", "Diagnostic"):
            continue
        assert f"`{name}" in text, name
    for method in ("plan", "status", "why", "run", "checkout"):
        assert f"`Project.{method}" in text, method
