"""Which assets failed, under which key, and why: `status` and `why` say `failed` and
show the reason until the key changes or the asset is built."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from imaginebuild.atomic import atomic_write_bytes
from imaginebuild.untrusted import ENTRY_CAP, load_json, read_capped


@dataclass(frozen=True)
class Failure:
    """An asset's last failure: the action key it had, the error and its hint."""

    key: str
    error: str = ""
    hint: str | None = None


class FailureLog:
    """The failures file (`StateLayout.failures`): asset name → its last Failure.

    Older files map a name to the bare key; they read as failures without a reason.
    """

    def __init__(self, path: Path) -> None:
        self.path = path

    def read(self) -> dict[str, Failure]:
        """Every recorded failure; an unreadable file or entry counts as none."""
        try:
            data: Any = load_json(read_capped(self.path, ENTRY_CAP))
            items = data.items()
        except (OSError, ValueError, AttributeError):  # Untrusted is a ValueError
            return {}
        failures = {}
        for name, value in items:
            if isinstance(value, str):
                failures[str(name)] = Failure(value)
            elif isinstance(value, dict) and isinstance(value.get("key"), str):
                hint = value.get("hint")
                failures[str(name)] = Failure(
                    value["key"],
                    str(value.get("error") or ""),
                    hint if isinstance(hint, str) else None,
                )
        return failures

    def record(self, name: str, failure: Failure) -> None:
        """Remember `name`'s failure."""
        failures = self.read()
        failures[name] = failure
        self._write(failures)

    def clear(self, name: str) -> None:
        """Forget `name`'s failure (it was built or restored)."""
        failures = self.read()
        if name in failures:
            del failures[name]
            self._write(failures)

    def _write(self, failures: dict[str, Failure]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        data = {name: asdict(f) for name, f in failures.items()}
        atomic_write_bytes(self.path, json.dumps(data, sort_keys=True).encode())
