"""The object store a remote-cache URL names, opened through fsspec (imported only here),
with the backend's options read from the environment the way the backend reads its own."""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any

from imaginebuild.errors import UsageError
from imaginebuild.remote.sync import redact

_EXTRAS = {"s3": "s3", "s3a": "s3"}  # the package extra that installs each backend


def _storage_options(protocol: str, env: Mapping[str, str]) -> dict[str, Any]:
    """Backend options read from `env` the way the backend would read its own environment."""
    if protocol not in ("s3", "s3a"):
        return {}
    options: dict[str, Any] = {
        # Listings are never cached: another machine may push at any moment.
        "use_listings_cache": False,
        # One attempt per request in botocore (and in s3fs, below): retries live in
        # Transport alone, so their number and backoff are ours and testable.
        "config_kwargs": {"connect_timeout": 5, "read_timeout": 60, "retries": {"max_attempts": 1}},
    }
    client: dict[str, Any] = {}
    endpoint = env.get("AWS_ENDPOINT_URL_S3") or env.get("AWS_ENDPOINT_URL")
    if endpoint:
        client["endpoint_url"] = endpoint
    region = env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION")
    if region:
        client["region_name"] = region
    if client:
        options["client_kwargs"] = client
    if env.get("AWS_ACCESS_KEY_ID") and env.get("AWS_SECRET_ACCESS_KEY"):
        options["key"] = env["AWS_ACCESS_KEY_ID"]
        options["secret"] = env["AWS_SECRET_ACCESS_KEY"]
        if env.get("AWS_SESSION_TOKEN"):
            options["token"] = env["AWS_SESSION_TOKEN"]
    elif env.get("AWS_PROFILE"):
        options["profile"] = env["AWS_PROFILE"]
    return options


def open_fs(url: str, env: Mapping[str, str]) -> tuple[Any, str]:
    """The fsspec filesystem and root path for `url` (fsspec is imported only here)."""
    protocol = url.split("://", 1)[0].lower() if "://" in url else "file"
    extra = _EXTRAS.get(protocol)
    install = (
        f"pip install 'imaginebuild[{extra}]'"
        if extra
        else f"install the fsspec backend for {protocol}://"
    )
    try:
        fsspec = importlib.import_module("fsspec")
    except ImportError as exc:
        raise UsageError(
            f"remote cache {redact(url)} needs fsspec, which is not installed", hint=install
        ) from exc
    try:
        fs, root = fsspec.core.url_to_fs(url, **_storage_options(protocol, env))
    except ImportError as exc:
        raise UsageError(
            f"remote cache {redact(url)}: the package for {protocol}:// is not installed",
            hint=install,
        ) from exc
    except (ValueError, TypeError) as exc:
        raise UsageError(f"remote cache {redact(url)}: unusable URL ({exc})") from exc
    if protocol in ("s3", "s3a") and hasattr(fs, "retries"):
        fs.retries = 1  # s3fs's own retry loop (5 tries by default) would multiply ours
    return fs, str(root).rstrip("/")
