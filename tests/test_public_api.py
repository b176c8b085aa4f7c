"""The public API: a sorted __all__, every name importable, and import stays light."""

from __future__ import annotations

import subprocess
import sys

import imaginebuild


def test_all_is_sorted_and_every_name_resolves() -> None:
    assert imaginebuild.__all__ == sorted(imaginebuild.__all__)
    for name in imaginebuild.__all__:
        assert getattr(imaginebuild, name) is not None


def test_errors_keep_their_exit_codes() -> None:
    assert imaginebuild.MediafileError([]).exit_code == 2
    assert imaginebuild.BudgetExceeded("x").exit_code == 3
    assert imaginebuild.Interrupted("x").exit_code == 130


def test_importing_the_package_loads_no_engine() -> None:
    code = (
        "import sys, imaginebuild; "
        "print(sorted(m for m in sys.modules if m.startswith('imaginebuild')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "['imaginebuild', 'imaginebuild.version']"
