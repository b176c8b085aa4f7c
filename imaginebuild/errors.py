"""The exception tree of imaginebuild; every class knows its exit code.

    ImaginebuildError                 exit 1   base; anything unexpected in a step
    ├── UsageError                    exit 2   bad command line, unknown target, no mediafile
    ├── MediafileError                exit 2   invalid mediafile; carries every Diagnostic at once
    ├── LockfileError                 exit 2   unreadable or wrong-version mediafile.lock
    ├── PolicyError                   exit 3   refused before calling
    │   ├── BudgetExceeded                     a call could pass budget.max_usd / --max-cost
    │   │   └── TeamCapReached                 a call could pass the team's cap (in the coordinator)
    │   ├── CoordinatorUnavailable             the team coordinator cannot be reached: no paid call
    │   ├── LockfileWouldChange                --locked and the lockfile would change
    │   ├── UnsettledCall                      the key's last call may have been billed: --force
    │   └── OfflineCallNeeded                  --offline and a provider call is needed
    ├── StoreError                    exit 1   the cache is unreadable, or a blob is corrupt
    │   ├── CorruptBlob                        a blob's bytes do not match its sha256
    │   └── EnvironmentFailure        exit 74  disk full, permission, read-only: names the path
    ├── InputError                    exit 1   an input file or URL cannot be read or fetched
    ├── AssetOnHold                   exit 1   a rejected take or a hand retouch waits for a word
    ├── ProviderError                 exit 1   a provider call failed; carries asset / request id
    │   ├── AuthError                          missing or rejected API key (never shows the key)
    │   ├── RequestRejected                    400/403/404/422: the API refused the request
    │   ├── ModerationRefused                  the API withheld the output on policy grounds
    │   ├── TransientError                     429/5xx/connection faults left after all retries
    │   ├── JobFailed                          an async job ended in status "failed"
    │   ├── JobExpired                         an async job's result is gone (resubmit on request)
    │   ├── JobTimeout                         an async job passed its overall deadline
    │   └── InvalidMedia                       a result is empty, truncated or does not decode
    │       ├── DownloadCutOff                 a result's download broke off (fetch it again)
    │       └── RejectedTake                   it failed the check; kept as a rejected take
    └── Interrupted                   exit 130 Ctrl-C; finished steps are kept

Foreign errors (yaml, jsonschema, httpx, diskcache, PyAV) are translated into
these at the module that calls the foreign library; none escapes it.
"""

from __future__ import annotations

from dataclasses import dataclass, field


class ImaginebuildError(Exception):
    """Base of every error imaginebuild raises on purpose."""

    exit_code: int = 1
    hint: str | None = None

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if hint is not None:
            self.hint = hint

    def __str__(self) -> str:
        return self.message


class UsageError(ImaginebuildError):
    """The command line asks for something impossible (unknown target, missing file)."""

    exit_code = 2


@dataclass(frozen=True)
class Diagnostic:
    """One located problem in a mediafile: `file:line:col: path: message` plus a hint."""

    file: str
    line: int
    column: int
    path: str
    message: str
    hint: str | None = None

    def format(self) -> str:
        """Render as `file:line:col: path: message` (the hint goes on its own line)."""
        where = f"{self.file}:{self.line}:{self.column}"
        head = f"{where}: {self.path}: {self.message}" if self.path else f"{where}: {self.message}"
        return head if self.hint is None else f"{head}\n  hint: {self.hint}"

    def to_json(self) -> dict[str, object]:
        """A JSON-ready dict of every field."""
        return {
            "file": self.file,
            "line": self.line,
            "column": self.column,
            "path": self.path,
            "message": self.message,
            "hint": self.hint,
        }


class MediafileError(ImaginebuildError):
    """The mediafile is invalid; `diagnostics` holds every problem found, in file order."""

    exit_code = 2

    def __init__(self, diagnostics: list[Diagnostic]) -> None:
        self.diagnostics = sorted(diagnostics, key=lambda d: (d.file, d.line, d.column, d.path))
        count = len(self.diagnostics)
        body = "\n".join(d.format() for d in self.diagnostics)
        noun = "error" if count == 1 else "errors"
        super().__init__(f"{body}\n{count} {noun} in the mediafile; nothing was built")


class LockfileError(ImaginebuildError):
    """mediafile.lock cannot be read, or was written by an incompatible version."""

    exit_code = 2


class PolicyError(ImaginebuildError):
    """A run was refused by policy before a call was made."""

    exit_code = 3


class BudgetExceeded(PolicyError):
    """Starting a call could pass the budget; nothing more was started."""


class TeamCapReached(BudgetExceeded):
    """Starting a call could pass a team cap kept by the coordinator (per day or in total)."""


class CoordinatorUnavailable(PolicyError):
    """The team coordinator cannot be reached or answered nonsense: no new paid call starts."""


class LockfileWouldChange(PolicyError):
    """`--locked` was given and the run would change mediafile.lock."""


class UnsettledCall(PolicyError):
    """The key's last call may have been billed and its answer was lost: it is not sent
    again (and paid again) unless `--force` asks for it."""


class OfflineCallNeeded(PolicyError):
    """`--offline` was given and an asset needs a provider call."""


class StoreError(ImaginebuildError):
    """The local cache cannot be read or written."""


class CorruptBlob(StoreError):
    """A cached blob does not hash to its name; it is dropped, never served."""


class EnvironmentFailure(StoreError):
    """The machine refused: disk full, permission denied, a read-only file system, a
    path that is a file where a folder should be. Not the user's input, not a bug."""

    exit_code = 74  # EX_IOERR (sysexits.h)


class InputError(ImaginebuildError):
    """An input file or URL of an asset cannot be read, fetched or is not allowed."""


class AssetOnHold(ImaginebuildError):
    """An asset waits for the user's word before anything is paid for or overwritten: a
    rejected take (`accept NAME` or `run --force NAME`), or an output retouched by hand
    (`adopt NAME` or `run --force NAME`)."""


@dataclass
class CallInfo:
    """Where a provider failure happened, for messages and the ledger."""

    asset: str | None = None
    request_id: str | None = None
    endpoint: str | None = None
    status_code: int | None = None
    retries: int = 0
    cost_ticks: int | None = None  # what the API billed before failing (moderation is billed)
    extra: dict[str, object] = field(default_factory=dict)


class ProviderError(ImaginebuildError):
    """A provider call failed; `info` says which asset, request and endpoint."""

    def __init__(
        self, message: str, *, info: CallInfo | None = None, hint: str | None = None
    ) -> None:
        super().__init__(message, hint=hint)
        self.info = info or CallInfo()


class AuthError(ProviderError):
    """The API key is missing or was rejected (401/400 for a bad key)."""


class RequestRejected(ProviderError):
    """The API refused the request as invalid or not permitted; retrying will not help."""


class ModerationRefused(ProviderError):
    """The API withheld the output on content-policy grounds."""


class TransientError(ProviderError):
    """Rate limits, server errors or network faults that outlasted every retry."""


class MaybeBilled(ProviderError):
    """A call reached the API, or may have, and its answer was lost (a read timeout, a
    cut-off answer, a 5xx after a POST): it may have been billed, so it is recorded as
    such and never re-sent automatically."""


class JobFailed(ProviderError):
    """An asynchronous job ended with status `failed`."""


class JobExpired(ProviderError):
    """An asynchronous job's result is no longer available; resubmitting costs money."""


class JobTimeout(ProviderError):
    """An asynchronous job did not finish before its overall deadline."""


class InvalidMedia(ProviderError):
    """A result is empty, truncated, oversized or does not decode as its media type."""


class DownloadCutOff(InvalidMedia):
    """A result's download broke off or came back short: the result itself may be fine,
    and fetching it again from its URL costs nothing."""


class RejectedTake(InvalidMedia):
    """A result failed the output check and is kept as a rejected take of its action key:
    what was paid for stays (`accept NAME` uses it, `run --force NAME` pays again)."""


class Interrupted(ImaginebuildError):
    """The run was interrupted (Ctrl-C / SIGTERM); finished steps are kept."""

    exit_code = 130
