"""Which assets failed, under which key: `status` says `failed` until the key changes."""

from __future__ import annotations

import json
from pathlib import Path

from imaginebuild.atomic import atomic_write_bytes


class FailureLog:
    """The failures file (`StateLayout.failures`): asset name → the key its last failure had."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def read(self) -> dict[str, str]:
        """Every recorded failure; an unreadable file counts as none."""
        try:
            data = json.loads(self.path.read_text())
            return {str(k): str(v) for k, v in data.items()}
        except (OSError, ValueError, AttributeError):
            return {}

    def record(self, name: str, key: str) -> None:
        """Remember that `name` failed with `key`."""
        failures = self.read()
        failures[name] = key
        self._write(failures)

    def clear(self, name: str) -> None:
        """Forget `name`'s failure (it was built or restored)."""
        failures = self.read()
        if name in failures:
            del failures[name]
            self._write(failures)

    def _write(self, failures: dict[str, str]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(self.path, json.dumps(failures, sort_keys=True).encode())
