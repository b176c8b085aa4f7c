"""The contract schema itself: it refuses what the spec refuses, and the checker catches it."""

# ruff: noqa: E501  (a table of bodies reads best one per line)

from __future__ import annotations

import json

import httpx
import jsonschema
import pytest
from conftest import CONTRACT, contract_violations

from imaginebuild.testing.fake_xai import FakeXai


def _valid(name: str, value: object) -> bool:
    schema = json.loads(CONTRACT.read_text())
    return jsonschema.Draft202012Validator({**schema, "$ref": f"#/$defs/{name}"}).is_valid(value)


def test_the_schema_names_its_source() -> None:
    text = json.loads(CONTRACT.read_text())["description"]
    assert "xai-org/xai-sdk-ts" in text and "41e766acb9160402c47301beca97764ace073ffc" in text


@pytest.mark.parametrize(
    ("name", "body", "ok"),
    [
        ("GenerateImageRequest", {"prompt": "p", "aspect_ratio": "21:9", "resolution": "1.5k"}, True),
        ("GenerateImageRequest", {"prompt": "p", "quality": "high"}, False),
        ("EditImageRequest", {"prompt": "p", "image": {"url": "u"}}, True),
        ("EditImageRequest", {"prompt": "p", "image": {"url": "u"}, "aspect_ratio": "1:1"}, False),
        ("EditImageRequest", {"prompt": "p", "image": {"url": "u", "type": "image_url"}}, False),
        ("GenerateVideoRequest", {"prompt": "p", "image": {"url": "u"}, "aspect_ratio": "1:1"}, False),
        ("ExtendVideoRequest", {"prompt": "p", "video": {"url": "u"}, "duration": 11}, False),
        ("GeneratedImageResponse", {"data": [{"url": "u", "respect_moderation": True}]}, False),
        ("VideoResponse", {"status": "failed", "error": {"code": "internal_error", "message": "m"}}, True),
    ],
)  # fmt: skip
def test_the_schema_follows_the_spec(name: str, body: object, ok: bool) -> None:
    assert _valid(name, body) is ok


def test_a_field_the_spec_lacks_is_a_contract_violation(_xai_contract: list[str]) -> None:
    with FakeXai() as fake:
        httpx.post(
            f"{fake.base_url}/images/generations",
            headers={"Authorization": "Bearer k", "User-Agent": "imaginebuild/test"},
            json={"prompt": "p", "size": "1024x1024"},
        )
    assert any("size" in problem for problem in contract_violations(fake))
    assert any("size" in problem for problem in _xai_contract)  # what the suite's guard saw
    _xai_contract.clear()  # a violation on purpose
