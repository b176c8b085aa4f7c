"""How a remote cache is reached from the environment: an S3 remote through a named AWS profile
(a shared credentials file, the generic endpoint and default region variables, as the AWS
tools read them) against the real S3 server on loopback; a URL whose protocol no backend
knows is a usage error before anything is read or written.
"""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

pytest.importorskip("s3fs", reason="the remote cache tests need the [s3] extra")

from conftest import CliResult, output_hashes
from s3server import ACCESS_KEY, BUCKET, REGION, SECRET_KEY, S3Server, start_s3

Cli = Callable[..., CliResult]


@pytest.fixture(scope="module")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    """One S3 server on loopback for the module."""
    server = start_s3(tmp_path_factory.mktemp("s3server"))
    yield server
    server.stop()


def profile_env(s3: S3Server, tmp_path: Path, machine: str) -> dict[str, str]:
    """A machine that reaches S3 through the profile `studio` and the generic AWS variables
    (no key in the environment)."""
    credentials = tmp_path / "aws-credentials"
    credentials.write_text(
        f"[studio]\naws_access_key_id = {ACCESS_KEY}\naws_secret_access_key = {SECRET_KEY}\n"
    )
    return {
        "AWS_PROFILE": "studio",
        "AWS_SHARED_CREDENTIALS_FILE": str(credentials),
        "AWS_CONFIG_FILE": str(tmp_path / "no-aws-config"),
        "AWS_ENDPOINT_URL": s3.endpoint,
        "AWS_DEFAULT_REGION": REGION,
        "IMAGINEBUILD_REMOTE": f"s3://{BUCKET}/profile-{uuid.uuid4().hex[:8]}",
        "IMAGINEBUILD_CACHE_DIR": str(tmp_path / f"cache-{machine}"),
    }


def test_an_s3_remote_through_a_named_profile_pushes_and_another_machine_checks_out(
    cli: Cli, chain_dir: Path, s3: S3Server, tmp_path: Path
) -> None:
    env_a = profile_env(s3, tmp_path, "a")
    assert cli("run", "--no-push", cwd=chain_dir, env=env_a).code == 0
    pushed = cli("--json", "push", cwd=chain_dir, env=env_a)
    assert pushed.code == 0, pushed.stderr
    assert {a["state"] for a in pushed.json["assets"]} == {"pushed"}

    other = tmp_path / "machine-b"
    other.mkdir()
    for name in ("mediafile.yaml", "mediafile.lock"):
        shutil.copyfile(chain_dir / name, other / name)
    shutil.copytree(chain_dir / "art", other / "art")
    env_b = {**env_a, "IMAGINEBUILD_CACHE_DIR": str(tmp_path / "cache-b")}
    checkout = cli("--json", "checkout", cwd=other, env=env_b)
    assert checkout.code == 0, checkout.stderr
    assert {a["state"] for a in checkout.json["assets"]} == {"restored"}
    assert output_hashes(other) == output_hashes(chain_dir)


def test_a_profile_without_its_keys_is_refused_by_the_server_and_the_push_fails(
    cli: Cli, chain_dir: Path, s3: S3Server, tmp_path: Path
) -> None:
    env = profile_env(s3, tmp_path, "a")
    (tmp_path / "aws-credentials").write_text(
        f"[studio]\naws_access_key_id = {ACCESS_KEY}\naws_secret_access_key = not-the-secret\n"
    )
    assert cli("run", "--no-push", cwd=chain_dir, env=env).code == 0
    # A process of its own: within one process fsspec reuses the filesystem opened with the
    # same options, credentials included (another test's).
    pushed = cli("push", cwd=chain_dir, env=env, real_process=True)
    assert pushed.code != 0
    assert "pushed 0" in pushed.stderr
    assert "not-the-secret" not in pushed.stderr + pushed.stdout


def test_a_remote_url_of_an_unknown_protocol_is_a_usage_error(
    cli: Cli, chain_dir: Path, tmp_path: Path
) -> None:
    assert cli("run", "--no-push", cwd=chain_dir).code == 0
    result = cli("push", cwd=chain_dir, env={"IMAGINEBUILD_REMOTE": "nosuch://bucket/team"})
    assert result.code == 2, result.stderr
    assert "error: remote cache nosuch://bucket/team: unusable URL" in result.stderr
    assert "Protocol not known: nosuch" in result.stderr
