"""The schema layer of validation: the mediafile's shape checked against its JSON Schema,
each jsonschema error turned into one located diagnostic in plain words.

    plain data + marks ──schema_diagnostics──▶ shape problems (jsonschema, friendly text)

One problem per node (a key that does not apply beats a wrong type, which beats the
rest); the semantic layer (`validate`) checks what the schema cannot see.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from imaginebuild.errors import Diagnostic, did_you_mean
from imaginebuild.mediafile.yamlload import JsonPath, MarkedProblems, Parsed
from imaginebuild.model import (
    IMAGE_ASPECT_RATIOS,
    KIND_SPECS,
    VIDEO_ASPECT_RATIOS,
    VIDEO_RESOLUTIONS,
    Kind,
)
from imaginebuild.spelled import PROVIDERS

if TYPE_CHECKING:
    import jsonschema


@lru_cache(maxsize=1)
def _validator() -> jsonschema.Draft202012Validator:
    import jsonschema

    from imaginebuild.mediafile.schema import load_schema

    return jsonschema.Draft202012Validator(load_schema())


def schema_diagnostics(data: object, where: Parsed) -> list[Diagnostic]:
    """Check `data` against the published schema; one friendly diagnostic per problem."""
    report = MarkedProblems(where)
    errors = list(_validator().iter_errors(data))
    # One problem per node: "does not apply" beats a wrong type, which beats the rest.
    rank = {"not": 0, "type": 1}
    best: dict[JsonPath, int] = {}
    for error in errors:
        path = tuple(error.absolute_path)
        best[path] = min(best.get(path, 9), rank.get(str(error.validator), 9))
    for error in errors:
        path = tuple(error.absolute_path)
        if rank.get(str(error.validator), 9) == best[path]:
            _explain(error, data, report)
    unique: dict[tuple[object, ...], Diagnostic] = {}
    for diagnostic in report.diagnostics:
        unique.setdefault((diagnostic.path, diagnostic.message), diagnostic)
    return list(unique.values())


def _explain(error: jsonschema.ValidationError, data: object, report: MarkedProblems) -> None:
    """Turn one jsonschema error into located, readable diagnostics."""
    path: JsonPath = tuple(error.absolute_path)
    key = next((p for p in reversed(path) if isinstance(p, str)), "")
    value = error.instance
    kind = _asset_kind(data, path)
    validator = str(error.validator)
    schema = error.schema if isinstance(error.schema, dict) else {}
    if validator == "required" and path in report.where.merged:
        return  # the refused `<<` key is the problem; the keys it would bring are unknown
    if validator == "additionalProperties" and isinstance(value, dict):
        known = sorted(schema.get("properties", {}))
        for extra in value:
            if extra not in known:
                report.at((*path, extra), _unknown_key(extra, known), _known_keys(known), key=True)
    elif validator == "required" and isinstance(value, dict):
        for missing in _listed(error.validator_value):
            if missing not in value:
                report.at(path, f"missing required key '{missing}'")
    elif "propertyNames" in error.schema_path:
        name = str(value)
        what = "asset name" if path == ("assets",) else "var name"
        report.at(
            (*path, name), f"invalid {what} '{name}'",
            "names start with a letter or '_' and use only letters, digits, '_'"
            + (" and '-'" if what == "asset name" else ""),
            key=True,
        )  # fmt: skip
    elif validator == "not":
        spec = KIND_SPECS[kind] if kind is not None else None
        uses = ", ".join(sorted(spec.params)) if spec else ""
        where = f"kind '{kind.value}'" if kind else "this kind"
        report.at(
            path, f"'{key}' does not apply to {where}", f"remove it; {where} uses: {uses}", key=True
        )
    elif validator == "type":
        report.at(path, f"expected {_type_names(error.validator_value)}, got {_describe(value)}")
    elif validator == "enum":
        report.at(path, *_enum_message(key, value, _listed(error.validator_value)))
    elif validator == "const" and key == "version":
        if isinstance(value, int) and not isinstance(value, bool):
            report.at(
                path, f"unsupported format version {value}",
                "this imaginebuild reads mediafile version 1",
            )  # fmt: skip
        else:
            report.at(path, f"version must be 1, got {_describe(value)}")
    elif validator in ("minimum", "maximum", "exclusiveMinimum"):
        report.at(path, _range_message(key, value, schema, kind))
    elif validator == "minLength":
        report.at(path, f"'{key}' must not be empty")
    elif validator == "pattern":
        wanted = "an http(s) URL" if key == "base_url" else "a URL such as s3://bucket/prefix"
        report.at(path, f"{_describe(value)} is not {wanted}")
    else:
        report.at(path, error.message)


def _listed(value: object) -> list[Any]:
    return list(value) if isinstance(value, (list, tuple)) else []


def _asset_kind(data: object, path: JsonPath) -> Kind | None:
    """The kind of the asset that `path` lies in, when the data says a valid one."""
    if len(path) < 2 or path[0] != "assets" or not isinstance(data, dict):
        return None
    assets = data.get("assets")
    asset = assets.get(path[1]) if isinstance(assets, dict) else None
    raw = asset.get("kind") if isinstance(asset, dict) else None
    return kind_of(raw)


def kind_of(raw: object) -> Kind | None:
    """The Kind a YAML value names, or None if it names none."""
    return Kind(raw) if isinstance(raw, str) and raw in Kind._value2member_map_ else None


def _unknown_key(extra: str, known: Sequence[str]) -> str:
    return f"unknown key '{extra}'{did_you_mean(extra, known)}"


def _known_keys(known: Sequence[str]) -> str:
    return "known keys: " + ", ".join(known)


_TYPE_NAMES = {
    "integer": "an integer",
    "number": "a number",
    "string": "a string",
    "boolean": "true or false",
    "object": "a mapping",
    "array": "a list",
    "null": "nothing",
}


def _type_names(wanted: object) -> str:
    names = (
        [wanted] if isinstance(wanted, str) else list(wanted) if isinstance(wanted, list) else []
    )
    return " or ".join(_TYPE_NAMES.get(str(n), str(n)) for n in names)


def _describe(value: object) -> str:
    """A short, typed rendering of a YAML value for messages."""
    if isinstance(value, bool):
        return f"boolean {str(value).lower()}"
    if value is None:
        return "nothing (null)"
    if isinstance(value, int):
        return f"integer {value}"
    if isinstance(value, float):
        return f"number {value}"
    if isinstance(value, str):
        shown = value if len(value) <= 40 else value[:37] + "..."
        return f"string '{shown}'"
    return "a list" if isinstance(value, list) else "a mapping"


def _enum_message(key: str, value: object, allowed: list[Any]) -> tuple[str, str | None]:
    shown = f"'{value}'" if isinstance(value, str) else _describe(value)
    listing = ", ".join(str(a) for a in allowed)
    if key == "aspect_ratio":
        other = set(IMAGE_ASPECT_RATIOS) | set(VIDEO_ASPECT_RATIOS)
        if value in other:
            media = "a video" if list(allowed) == list(VIDEO_ASPECT_RATIOS) else "an image"
            return f"{shown} is not {media} aspect ratio; use one of {listing}", None
        return f"{shown} is not an aspect ratio of the API; use one of {listing}", None
    if key == "resolution":
        media = "a video" if list(allowed) == list(VIDEO_RESOLUTIONS) else "an image"
        return f"{shown} is not {media} resolution; use {' or '.join(allowed)}", None
    if key == "kind":
        return f"{shown} is not a kind{did_you_mean(str(value), allowed)}", f"kinds: {listing}"
    if key == "provider":
        return f"{shown} is not a provider; use {' or '.join(PROVIDERS)}", None
    return f"{shown} is not one of {listing}", None


def _range_message(key: str, value: object, schema: Mapping[str, Any], kind: Kind | None) -> str:
    low, high = schema.get("minimum"), schema.get("maximum")
    if low is not None and high is not None:
        unit = " seconds" if key == "duration" else ""
        if kind is Kind.EXTEND and key == "duration":
            unit = " seconds added"
        for_kind = f" for kind '{kind.value}'" if kind is not None and key == "duration" else ""
        return f"{key} {value} is out of range{for_kind} ({low}–{high}{unit})"
    if "exclusiveMinimum" in schema:
        return f"{key} must be greater than {schema['exclusiveMinimum']}, got {value}"
    return f"{key} must be at least {low}, got {value}"
