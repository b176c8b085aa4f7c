"""The published JSON Schema of the mediafile, as shipped inside the package."""

from __future__ import annotations

import json
from functools import lru_cache
from importlib import resources
from typing import Any

_FOLDER, _NAME = "data", "mediafile.schema.json"


@lru_cache(maxsize=1)
def schema_text() -> str:
    """The schema's JSON text exactly as published (`imaginebuild schema` prints it)."""
    return (
        resources.files("imaginebuild")
        .joinpath(_FOLDER)
        .joinpath(_NAME)
        .read_text(encoding="utf-8")
    )


def load_schema() -> dict[str, Any]:
    """The schema as a fresh dict (JSON Schema Draft 2020-12)."""
    loaded: dict[str, Any] = json.loads(schema_text())
    return loaded
