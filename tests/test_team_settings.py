"""The team settings from the environment are checked before they are used: a coordinator
URL of an unknown kind, a team id with a character outside the allowed set, a runner TTL
that is not a number of seconds in range. Each is refused with the variable named and no
call to the API; a `sqlite:` coordinator is a file of the user's choosing.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import CliResult

from imaginebuild.testing.fake_xai import FakeXai

Cli = Callable[..., CliResult]

ONE_IMAGE = "version: 1\nprovider: xai\nassets:\n  poster: {kind: image, prompt: a lighthouse}\n"


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        (
            {"IMAGINEBUILD_COORDINATOR": "ftp://team.example/x"},
            "IMAGINEBUILD_COORDINATOR='ftp://team.example/x' is not a coordinator",
        ),
        (
            {"IMAGINEBUILD_TEAM": "studio/night"},
            "IMAGINEBUILD_TEAM='studio/night': use up to 64 letters, digits, '-', '_' or '.'",
        ),
        (
            {"IMAGINEBUILD_TEAM": "t" * 65},
            f"IMAGINEBUILD_TEAM='{'t' * 65}': use up to 64 letters, digits, '-', '_' or '.'",
        ),
    ],
)
def test_team_status_refuses_a_bad_team_setting(
    cli: Cli, tmp_path: Path, setting: dict[str, str], message: str
) -> None:
    result = cli("team", "status", cwd=tmp_path, env=setting)
    assert result.code == 2, result.stderr
    assert f"error: {message}" in result.stderr
    assert not (tmp_path / "user-cache" / "imaginebuild").exists()  # no coordinator opened


BAD_SETTINGS = [
    {"IMAGINEBUILD_COORDINATOR": "ftp://team.example/x"},
    {"IMAGINEBUILD_TEAM": "studio/night"},
    {"IMAGINEBUILD_COORDINATOR_TTL": "soon"},
]


@pytest.mark.parametrize("setting", BAD_SETTINGS)
def test_run_refuses_a_bad_team_setting_before_any_step(
    cli: Cli, fake: FakeXai, tmp_path: Path, setting: dict[str, str]
) -> None:
    (tmp_path / "mediafile.yaml").write_text(ONE_IMAGE)
    env = {"XAI_BASE_URL": fake.base_url, "XAI_API_KEY": "xai-TEST-team-set", **setting}
    result = cli("run", cwd=tmp_path, env=env)
    assert result.code == 2, result.stderr
    [name] = setting
    assert f"error: {name}=" in result.stderr
    assert fake.log == [] and not (tmp_path / "out").exists()
    assert not (tmp_path / "user-cache" / "imaginebuild").exists()  # no coordinator opened


@pytest.mark.parametrize("setting", BAD_SETTINGS)
def test_no_coordinator_ignores_the_team_settings(
    cli: Cli, fake: FakeXai, tmp_path: Path, setting: dict[str, str]
) -> None:
    (tmp_path / "mediafile.yaml").write_text(ONE_IMAGE)
    env = {"XAI_BASE_URL": fake.base_url, "XAI_API_KEY": "xai-TEST-team-set", **setting}
    result = cli("run", "--no-coordinator", cwd=tmp_path, env=env)
    assert result.code == 0, result.stderr
    assert (tmp_path / "out" / "poster.png").is_file()


def test_a_sqlite_coordinator_is_the_file_it_names(cli: Cli, tmp_path: Path) -> None:
    target = tmp_path / "shared" / "team.sqlite3"
    target.parent.mkdir()
    result = cli(
        "team", "status", cwd=tmp_path,
        env={"IMAGINEBUILD_COORDINATOR": f"sqlite://{target}", "IMAGINEBUILD_TEAM": "night.crew"},
    )  # fmt: skip
    assert result.code == 0, result.stderr
    assert f"team night.crew on embedded {target}" in result.stdout
    assert target.is_file()


@pytest.mark.parametrize("ttl", ["soon", "0", "86401", "nan"])
def test_a_bad_runner_ttl_refuses_the_run_before_any_call(
    cli: Cli, fake: FakeXai, tmp_path: Path, ttl: str
) -> None:
    (tmp_path / "mediafile.yaml").write_text(ONE_IMAGE)
    env = {
        "XAI_BASE_URL": fake.base_url,
        "XAI_API_KEY": "xai-TEST-team-ttl",
        "IMAGINEBUILD_COORDINATOR_TTL": ttl,
    }
    result = cli("run", cwd=tmp_path, env=env)
    assert result.code == 2, result.stderr
    assert (
        f"error: IMAGINEBUILD_COORDINATOR_TTL='{ttl}' must be a number of seconds from 0.1 to 86400"
    ) in result.stderr
    assert fake.log == [] and fake.bills == []
    assert not (tmp_path / "out").exists()


def test_team_set_restores_a_default_rate_and_lifts_a_cap_and_refuses_a_negative_one(
    cli: Cli, tmp_path: Path
) -> None:
    file = tmp_path / "team.sqlite3"
    env = {"IMAGINEBUILD_COORDINATOR": f"sqlite:{file}"}
    done = cli(
        "--json", "team", "set", "--max-usd-per-day", "50", "--rate", "grok-imagine-image=3/2",
        cwd=tmp_path, env=env,
    )  # fmt: skip
    assert done.code == 0, done.stderr
    assert done.json["caps"]["rates"] == {"grok-imagine-image": "3/2"}
    status = cli("team", "status", cwd=tmp_path, env=env)
    assert "rate grok-imagine-image: 0 of 3 in the last 2" in status.stdout
    assert "of $50.00" in status.stdout

    reset = cli(
        "--json", "team", "set", "--rate", "grok-imagine-image=default",
        "--max-usd-per-day", "none", cwd=tmp_path, env=env,
    )  # fmt: skip
    assert reset.code == 0, reset.stderr
    assert reset.json["caps"] == {"max_per_day_ticks": None, "max_total_ticks": None, "rates": {}}
    assert "rate grok-imagine-image" not in cli("team", "status", cwd=tmp_path, env=env).stdout

    negative = cli("team", "set", "--max-usd-total", "-5", cwd=tmp_path, env=env)
    assert negative.code == 2
    assert "error: --max-usd-total '-5' must not be negative" in negative.stderr
    after = cli("--json", "team", "status", cwd=tmp_path, env=env)
    assert after.json["caps"]["max_total_ticks"] is None  # nothing changed
