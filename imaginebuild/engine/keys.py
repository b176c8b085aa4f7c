"""Action keys: the canonical encoding of everything that determines an asset's output.

    key = sha256( canonical_json({"v": KEY_FORMAT_VERSION, **ActionFields}) )

The fields are kind, provider, model, the kind's resolved parameters, the prompt
after interpolation, `variant` and the sha256 of every input in order. Never
mtimes, cache paths, output paths, asset names or secrets: two assets that ask
for the same thing share a key, and renaming an asset costs nothing.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from dataclasses import fields as declared_fields

from imaginebuild.version import KEY_FORMAT_VERSION

__all__ = ["KEY_FORMAT_VERSION", "ActionFields", "InputDigest", "action_key", "canonical_json"]


def canonical_json(value: object) -> bytes:
    """Encode JSON-ready data with sorted keys and no insignificant whitespace."""
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")


@dataclass(frozen=True)
class InputDigest:
    """One input of an action as the key sees it: its reference and content hash.

    Only `sha256` enters the key; `ref` and `asset` are kept so `why` can say
    which input changed and because of which upstream asset.
    """

    ref: str
    sha256: str
    asset: str | None = None


@dataclass(frozen=True)
class ActionFields:
    """The inputs of an action key, kept field by field so changes can be named."""

    kind: str
    provider: str
    model: str
    params: Mapping[str, object]
    prompt: str
    variant: int
    inputs: tuple[InputDigest, ...]

    def encoded(self) -> dict[str, object]:
        """The JSON-ready dict that is hashed into the key."""
        return {"v": KEY_FORMAT_VERSION, **self._values([i.sha256 for i in self.inputs])}

    def to_json(self) -> dict[str, object]:
        """Every field, including input references, for the lockfile."""
        return self._values(
            [
                {"ref": i.ref, "sha256": i.sha256, **({"asset": i.asset} if i.asset else {})}
                for i in self.inputs
            ]
        )

    def _values(self, inputs: list[object]) -> dict[str, object]:
        """Every field in declaration order (the one list of the key's fields), JSON-ready;
        `inputs` as the caller renders them."""
        values: dict[str, object] = {f.name: getattr(self, f.name) for f in declared_fields(self)}
        values["params"] = dict(self.params)
        values["inputs"] = inputs
        return values


def action_key(fields: ActionFields) -> str:
    """The hex sha256 action key of `fields`."""
    return hashlib.sha256(canonical_json(fields.encoded())).hexdigest()
