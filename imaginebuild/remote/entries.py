"""The remote form of an action entry: versioned JSON with the key-format version,
checked on read like everything fetched from a remote, and the hex-only names that
blob and action objects are filed under."""

from __future__ import annotations

import json

from imaginebuild.errors import StoreError
from imaginebuild.store.cache import ActionEntry
from imaginebuild.untrusted import Untrusted, is_sha256, load_json
from imaginebuild.version import KEY_FORMAT_VERSION

REMOTE_FORMAT = "imaginebuild-remote-action"
REMOTE_FORMAT_VERSION = 1


def check_name(value: str, what: str) -> str:
    """`value` if it is a sha256 (a blob hash or an action key), else StoreError.

    Names become object paths; refusing anything but hex keeps a hostile entry
    from steering a download outside the store."""
    if not is_sha256(value):
        raise StoreError(f"not a valid {what}: {value[:80]!r}")
    return value


def encode_entry(entry: ActionEntry) -> bytes:
    """The remote form of an action entry: versioned, with the key-format version."""
    doc = {
        "format": REMOTE_FORMAT,
        "v": REMOTE_FORMAT_VERSION,
        "key_format": KEY_FORMAT_VERSION,
        "entry": entry.to_json(),
    }
    return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode("utf-8")


def decode_entry(raw: bytes, key: str) -> ActionEntry:
    """Parse and validate a remote entry for `key`; StoreError says what is wrong."""
    try:
        doc = load_json(raw)
    except Untrusted as exc:
        raise StoreError(str(exc)) from exc
    if not isinstance(doc, dict) or doc.get("format") != REMOTE_FORMAT:
        raise StoreError("not an imaginebuild remote action entry")
    if doc.get("v") != REMOTE_FORMAT_VERSION:
        raise StoreError(f"remote entry format {doc.get('v')!r} is not {REMOTE_FORMAT_VERSION}")
    if doc.get("key_format") != KEY_FORMAT_VERSION:
        raise StoreError(f"key format {doc.get('key_format')!r} is not {KEY_FORMAT_VERSION}")
    body = doc.get("entry")
    if not isinstance(body, dict):
        raise StoreError("the entry is missing")
    entry = ActionEntry.from_json(body)
    if entry.key != key:
        raise StoreError(f"it is filed under {key[:12]} but names key {entry.key[:12]}")
    if not entry.outputs:
        raise StoreError("it names no outputs")
    for blob in (*entry.outputs, *(b for take in entry.takes for b in take)):
        if not is_sha256(blob.sha256) or blob.size < 0:
            raise StoreError(f"it names an invalid blob {blob.sha256[:80]!r}")
    return entry
