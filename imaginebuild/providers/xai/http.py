"""The xAI JSON API over httpx: retries by method, error bodies → imaginebuild errors, key hygiene.

Every httpx exception and HTTP status is translated here (or in download),
never further up. Messages never contain the API key: requests are never
stringified, and anything the server echoes back is redacted.

Retries follow xAI's own SDK (xai-org/xai-sdk-ts src/constants.ts and
src/http.ts @ 0092a5f7f313ed092ea1326ae147c22981165e82): a create call (POST)
is retried only when the API refused it before any work (429, honouring
`Retry-After`) or when it never left this machine (connect errors, connect and
pool timeouts). A read timeout, a cut-off answer or a 5xx after a POST may
have been billed: it is a `MaybeBilled` failure, never re-sent (the engine records
it in the ledger as maybe billed and does not send it again without `--force`). Reads (GET:
polls, downloads) retry 408 409 429 500 502 503 504 529 and timeouts.

    POST  429, not sent               retried with backoff
    POST  5xx, timeout, cut off       → MaybeBilled (recorded as possibly billed)
    GET   408 409 429 5xx 529, faults retried with backoff
    401, 400 "bad key"                → AuthError
    400 403 404 405 415 422           → RequestRejected (the server's message)
    400 "content policy"              → ModerationRefused
    retries exhausted                 → TransientError
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, replace
from typing import TypeVar

import httpx

from imaginebuild.errors import (
    AuthError,
    CallInfo,
    MaybeBilled,
    ModerationRefused,
    ProviderError,
    RequestRejected,
    TransientError,
    UsageError,
)
from imaginebuild.retry import RetryPolicy, parse_retry_after
from imaginebuild.urls import is_loopback_host
from imaginebuild.version import __version__

DEFAULT_BASE_URL = "https://api.x.ai/v1"
KEY_HINT = (
    "set XAI_API_KEY to a valid xAI API key (https://console.x.ai); a fully cached run needs none"
)

T = TypeVar("T")
# xai-sdk-ts src/constants.ts: RETRYABLE_STATUS (any method) and IDEMPOTENT_RETRY_STATUS (reads).
POST_RETRY_STATUSES = frozenset({429})
GET_RETRY_STATUSES = frozenset({408, 409, 429, 500, 502, 503, 504, 529})
USER_AGENT = f"imaginebuild/{__version__}"
REQUEST_ID_HEADER = "x-request-id"  # the API's id of a call, on every answer
# httpx failures raised before any byte of the request left: safe to retry even for a POST.
NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)
MAYBE_BILLED_HINT = (
    "the call may have been billed, so it was not sent again; it is recorded in the ledger "
    "as maybe billed. `imaginebuild run --force NAME` pays for a new call"
)


def is_retryable_read(status: int) -> bool:
    """Whether a GET answered with `status` is worth another try."""
    return status in GET_RETRY_STATUSES


SleepFn = Callable[[float], Awaitable[None]]


def check_url(url: str, what: str) -> str:
    """Return `url` without a trailing slash if it is https, or http on loopback."""
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL:
        raise UsageError(f"{what} {url!r} is not a URL") from None
    if parsed.scheme == "https" and parsed.host:
        return url.rstrip("/")
    if parsed.scheme == "http" and is_loopback_host(parsed.host):
        return url.rstrip("/")
    raise UsageError(
        f"{what} {url!r} must use https (plain http is allowed only on 127.0.0.1/localhost/::1)"
    )


def redact(text: str, secret: str | None) -> str:
    """`text` with every occurrence of `secret` masked."""
    if secret and len(secret) >= 4:
        return text.replace(secret, "***")
    return text


def scrub(error: ProviderError, secret: str) -> ProviderError:
    """`error` with the secret masked in its message, hint and details (the server may echo
    a key back, and job errors carry the server's words)."""
    error.message = redact(error.message, secret)
    error.args = (error.message,)
    if error.hint is not None:
        error.hint = redact(error.hint, secret)
    error.info.extra = {k: redact(v, secret) if isinstance(v, str) else v
                        for k, v in error.info.extra.items()}  # fmt: skip
    return error


def error_message(payload: bytes) -> tuple[str, str | None]:
    """The human message and machine code of an xAI error body (any of its three shapes)."""
    try:
        data = json.loads(payload)
    except ValueError:
        text = payload.decode("utf-8", "replace").strip()
        return (text[:300] or "(empty body)"), None
    if isinstance(data, dict):
        error = data.get("error")
        if isinstance(error, dict):  # OpenAI style {"error": {"message", "type", "code"}}
            code = error.get("code") or error.get("type")
            return str(error.get("message") or "(no message)"), None if code is None else str(code)
        if isinstance(error, str):  # native {"code", "error"} or plain {"error"}
            code = data.get("code")
            return error, None if code is None else str(code)
        if isinstance(data.get("message"), str):
            return str(data["message"]), None
    return json.dumps(data)[:300], None


def _mentions(message: str, words: tuple[str, ...]) -> bool:
    lowered = message.lower()
    return any(word in lowered for word in words)


def error_for_status(status: int, payload: bytes, info: CallInfo) -> ProviderError:
    """The imaginebuild error for a non-retryable (or exhausted) HTTP error status."""
    message, code = error_message(payload)
    info = replace(
        info, status_code=status, extra={**info.extra, "code": code} if code else info.extra
    )
    where = f"{info.endpoint or 'xAI API'}: HTTP {status}"
    if status == 401 or (status == 400 and _mentions(message, ("api key", "apikey", "api-key"))):
        return AuthError(
            f"{where}: the API key is missing or wrong ({message})", info=info, hint=KEY_HINT
        )
    if status in (400, 422) and _mentions(message, ("content policy", "moderation")):
        return ModerationRefused(
            f"{where}: refused on content-policy grounds: {message}", info=info
        )
    if status == 403:
        hint = "check that the key's team may use this model and has credits"
        return RequestRejected(f"{where}: not permitted: {message}", info=info, hint=hint)
    if status in GET_RETRY_STATUSES or status >= 500:
        return TransientError(f"{where}: {message}", info=info)
    return RequestRejected(f"{where}: {message}", info=info)


class Retryable(Exception):
    """A failure worth another try; `exhausted` builds the error once retries run out."""

    def __init__(
        self,
        reason: str,
        *,
        status: int | None = None,
        retry_after: float | None = None,
        exhausted: type[ProviderError] = TransientError,
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status
        self.retry_after = retry_after
        self.exhausted = exhausted


def transport_reason(exc: httpx.HTTPError) -> str:
    """A short description of an httpx failure (its type and message, never its request)."""
    detail = str(exc).strip()
    name = type(exc).__name__
    return f"{name}: {detail}" if detail else name


@dataclass
class Retrier:
    """Runs an attempt until it succeeds, raises a final error, or retries run out."""

    policy: RetryPolicy
    sleep: SleepFn = asyncio.sleep
    rng: random.Random | None = None
    secret: str | None = None

    async def run(
        self, attempt_fn: Callable[[], Awaitable[T]], info: CallInfo, what: str
    ) -> tuple[T, int]:
        """`(result, retries made)`; raises the Retryable's `exhausted` error at the end."""
        rng = self.rng or random.Random()  # noqa: S311 (jitter, not cryptography)
        attempt = 0
        while True:
            try:
                return await attempt_fn(), attempt
            except Retryable as exc:
                if not self.policy.allows(attempt):
                    final = replace(info, retries=attempt, status_code=exc.status)
                    message = redact(f"{what}: {exc.reason} (after {attempt} retries)", self.secret)
                    raise exc.exhausted(
                        message,
                        info=final,
                        hint="the service is busy or unreachable; run again later",
                    ) from None
                await self.sleep(self.policy.delay(attempt, exc.retry_after, rng))
                attempt += 1


@dataclass(frozen=True)
class ApiResponse:
    """A successful JSON answer: status, parsed object (None for an empty body), retries."""

    status: int
    data: Mapping[str, object] | None
    retries: int
    seconds: float
    request_id: str | None = None  # the `x-request-id` header


class XaiHttp:
    """One pooled httpx client speaking to the xAI API with a bearer key."""

    def __init__(
        self,
        client: httpx.AsyncClient,
        base_url: str,
        api_key: str,
        retrier: Retrier,
    ) -> None:
        self.client = client
        self.base_url = base_url
        self.key = api_key
        self.retrier = retrier

    async def call(
        self,
        method: str,
        path: str,
        body: Mapping[str, object] | None,
        info: CallInfo,
        before_send: Callable[[], Awaitable[None]] | None = None,
        timeout: float | None = None,
    ) -> ApiResponse:
        """Send one API request with the retries its method allows; a 2xx JSON object (or an
        empty body) comes back. `before_send` is awaited before each attempt (pacing and the
        team's submission slot). A POST whose answer was lost raises MaybeBilled."""
        started = time.monotonic()
        retry_statuses = GET_RETRY_STATUSES if method == "GET" else POST_RETRY_STATUSES

        async def attempt() -> ApiResponse:
            if before_send is not None:
                await before_send()
            status, payload, headers = await self._send(method, path, body, info, timeout)
            request_id = headers.get(REQUEST_ID_HEADER) or None
            if status in retry_statuses:
                retry_after = parse_retry_after(headers.get("retry-after", ""), time.time())
                message, _ = error_message(payload)
                raise Retryable(f"HTTP {status}: {message}", status=status, retry_after=retry_after)
            if status >= 500 and method != "GET":
                message, _ = error_message(payload)
                where = replace(info, status_code=status, request_id=request_id)
                text = f"{path}: HTTP {status} after the request was sent: {message}"
                raise MaybeBilled(redact(text, self.key), info=where, hint=MAYBE_BILLED_HINT)
            if status >= 300:
                raise scrub(error_for_status(status, payload, replace(info, request_id=request_id)),
                            self.key)  # fmt: skip
            data = _parse_object(payload)
            if data is _MALFORMED:
                if method == "GET":
                    raise Retryable(f"HTTP {status}: the body is not a JSON object", status=status)
                raise MaybeBilled(
                    f"{path}: HTTP {status} with a body that is not a JSON object",
                    info=replace(info, status_code=status, request_id=request_id),
                    hint=MAYBE_BILLED_HINT,
                )
            parsed = data if isinstance(data, dict) else None
            return ApiResponse(status, parsed, 0, 0.0, request_id)

        result, retries = await self.retrier.run(attempt, info, f"{method} {path}")
        return replace(result, retries=retries, seconds=time.monotonic() - started)

    async def _send(
        self,
        method: str,
        path: str,
        body: Mapping[str, object] | None,
        info: CallInfo,
        timeout: float | None = None,
    ) -> tuple[int, bytes, httpx.Headers]:
        headers = {"Authorization": f"Bearer {self.key}", "User-Agent": USER_AGENT}
        limit = (
            httpx.Timeout(timeout, connect=min(10.0, timeout)) if timeout else self.client.timeout
        )
        request = self.client.build_request(
            method, self.base_url + path, json=body, headers=headers, timeout=limit
        )
        try:
            response = await self.client.send(request, stream=True)
        except NOT_SENT as exc:  # nothing reached the API: a retry cannot pay twice
            raise Retryable(redact(transport_reason(exc), self.key)) from None
        except httpx.TransportError as exc:
            reason = redact(transport_reason(exc), self.key)
            if method == "GET":
                timed_out = isinstance(exc, httpx.TimeoutException)
                raise Retryable(f"timed out ({reason})" if timed_out else reason) from None
            raise MaybeBilled(
                f"{path}: the answer was lost after the request was sent ({reason})",
                info=info, hint=MAYBE_BILLED_HINT,
            ) from None  # fmt: skip
        except httpx.HTTPError as exc:
            raise ProviderError(redact(f"{path}: {transport_reason(exc)}", self.key)) from None
        try:
            content = await response.aread()
        except httpx.HTTPError as exc:
            reason = redact(transport_reason(exc), self.key)
            if method != "GET":
                request_id = response.headers.get(REQUEST_ID_HEADER) or None
                raise MaybeBilled(
                    f"{path}: HTTP {response.status_code} but the answer was cut off ({reason})",
                    info=replace(info, status_code=response.status_code, request_id=request_id),
                    hint=MAYBE_BILLED_HINT,
                ) from None
            raise Retryable(reason, status=response.status_code) from None
        finally:
            await response.aclose()
        return response.status_code, content, response.headers


_MALFORMED = object()


def _parse_object(payload: bytes) -> object:
    """A JSON object from a body, None for an empty body, `_MALFORMED` otherwise."""
    if not payload.strip():
        return None
    try:
        data = json.loads(payload)
    except ValueError:
        return _MALFORMED
    return data if isinstance(data, dict) else _MALFORMED
