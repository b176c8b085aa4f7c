"""Numbers in a mediafile are read as YAML 1.1 spells them, exactly as PyYAML's safe loader
reads them (the mediafile loader has its own composer-based reader): hexadecimal, binary,
old-style octal, base 60, underscores, signs, exponents and infinities. What a user writes
is what `show` prints of the built asset's prompt after `${var}` expansion.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import yaml
from conftest import CliResult

Cli = Callable[..., CliResult]

SPELLINGS = {
    "hex": "0x1F",
    "binary": "0b101",
    "octal": "017",
    "minutes": "1:30",
    "minutes_float": "1:30.5",
    "negative_minutes": "-1:00",
    "underscored": "1_000",
    "negative_hex": "-0x10",
    "infinity": "-.inf",
    "signed": "+12",
    "exponent": "6.02e+23",
    "zero": "0",
}


def test_every_yaml_1_1_number_spelling_reads_as_pyyaml_reads_it(cli: Cli, tmp_path: Path) -> None:
    names = sorted(SPELLINGS)
    text = (
        "version: 1\nprovider: local\nvars:\n"
        + "".join(f"  {name}: {SPELLINGS[name]}\n" for name in names)
        + 'assets:\n  card:\n    kind: image\n    prompt: "'
        + " | ".join(f"${{{name}}}" for name in names)
        + '"\n'
    )
    (tmp_path / "mediafile.yaml").write_text(text)
    expected = yaml.safe_load(text)["vars"]
    assert expected["hex"] == 31 and expected["minutes"] == 90  # the spellings mean numbers

    assert cli("run", cwd=tmp_path).code == 0
    shown = cli("--json", "show", "card", cwd=tmp_path)
    assert shown.code == 0, shown.stderr
    prompt = shown.json["prompt"]
    assert prompt.split(" | ") == [str(expected[name]) for name in names]
