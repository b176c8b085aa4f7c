"""The remote cache through the CLI, end to end against the real S3 server on loopback:
`push`, `checkout` and `pull` on a fresh machine, `gc --remote`, and a run whose remote
fails midway (the run goes on without it and says so).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

pytest.importorskip("s3fs", reason="the remote cache tests need the [s3] extra")

from conftest import SUBPROCESS_TIMEOUT_S, CliResult, edit_yaml, output_hashes, wait_for_state
from s3server import ACCESS_KEY, BUCKET, REGION, SECRET_KEY, FaultProxy, S3Server, start_s3

from imaginebuild.testing.fake_xai import FakeXai, Fault, Route

Cli = Callable[..., CliResult]


@pytest.fixture(scope="module")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    """One S3 server on loopback for the module."""
    server = start_s3(tmp_path_factory.mktemp("s3server"))
    yield server
    server.stop()


def remote_env(endpoint: str, tmp_path: Path, machine: str) -> dict[str, str]:
    """A machine's environment: the team's remote prefix, its own local cache."""
    return {
        "AWS_ACCESS_KEY_ID": ACCESS_KEY,
        "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
        "AWS_ENDPOINT_URL_S3": endpoint,
        "AWS_REGION": REGION,
        "IMAGINEBUILD_REMOTE": f"s3://{BUCKET}/{tmp_path.name}-{uuid.uuid4().hex[:8]}",
        "IMAGINEBUILD_CACHE_DIR": str(tmp_path / f"cache-{machine}"),
    }


def fresh_clone(source: Path, dest: Path) -> Path:
    """What `git clone` gives another machine: the mediafile, the lockfile, the art."""
    dest.mkdir()
    for name in ("mediafile.yaml", "mediafile.lock"):
        shutil.copyfile(source / name, dest / name)
    shutil.copytree(source / "art", dest / "art")
    return dest


def test_push_then_checkout_and_pull_on_another_machine_then_gc_remote(
    cli: Cli, chain_dir: Path, s3: S3Server, tmp_path: Path
) -> None:
    env_a = remote_env(s3.endpoint, tmp_path, "a")
    assert cli("run", "--no-push", cwd=chain_dir, env=env_a).code == 0
    pushed = cli("--json", "push", cwd=chain_dir, env=env_a)
    assert pushed.code == 0, pushed.stderr
    assert {a["state"] for a in pushed.json["assets"]} == {"pushed"}
    again = cli("push", cwd=chain_dir, env=env_a)
    assert "pushed 0, already there 4, skipped 0, failed 0" in again.stderr

    env_b = {**env_a, "IMAGINEBUILD_CACHE_DIR": str(tmp_path / "cache-b")}
    b = fresh_clone(chain_dir, tmp_path / "machine-b")
    checkout = cli("--json", "checkout", cwd=b, env=env_b)
    assert checkout.code == 0, checkout.stderr
    assert {a["state"] for a in checkout.json["assets"]} == {"restored"}
    assert output_hashes(b) == output_hashes(chain_dir)

    env_c = {**env_a, "IMAGINEBUILD_CACHE_DIR": str(tmp_path / "cache-c")}
    c = fresh_clone(chain_dir, tmp_path / "machine-c")
    pull = cli("--json", "pull", cwd=c, env=env_c)
    assert pull.code == 0, pull.stderr
    assert pull.json["command"] == "pull"
    assert output_hashes(c) == output_hashes(chain_dir)
    shutil.rmtree(c / "out")  # pull brought the action entries: an offline run restores
    offline = cli("--json", "run", "--offline", cwd=c, env={**env_c, "IMAGINEBUILD_REMOTE": ""})
    assert offline.code == 0, offline.stderr
    assert {a["state"] for a in offline.json["assets"]} == {"restored"}

    nothing = cli("--json", "gc", "--remote", cwd=chain_dir, env=env_a)
    assert nothing.code == 0, nothing.stderr
    assert (nothing.json["actions"], nothing.json["blobs"]) == (0, 0)
    edit_yaml(chain_dir / "mediafile.yaml", "A lighthouse at dawn", "A lighthouse at dusk")
    assert cli("run", cwd=chain_dir, env=env_a).code == 0  # pushes the new take of `other`
    dry = cli("gc", "--remote", cwd=chain_dir, env=env_a)
    assert dry.code == 0, dry.stderr
    # the old take's entry goes; its blob is younger than the remote's minimum age (it
    # may belong to a push in progress), so it stays
    assert "would drop 1 action entries and 0 blobs" in dry.stdout
    assert "gc --remote --yes" in dry.stderr
    done = cli("--json", "gc", "--remote", "--yes", cwd=chain_dir, env=env_a)
    assert done.code == 0, done.stderr
    assert (done.json["actions"], done.json["dry_run"]) == (1, False)
    after = cli("--json", "gc", "--remote", cwd=chain_dir, env=env_a)
    assert after.json["actions"] == 0


def test_remote_commands_without_a_remote_are_usage_errors(cli: Cli, chain_dir: Path) -> None:
    for argv in (["push"], ["gc", "--remote"]):
        result = cli(*argv, cwd=chain_dir)
        assert result.code == 2, (argv, result.stderr)
        assert "needs a remote cache" in result.stderr and "IMAGINEBUILD_REMOTE" in result.stderr


def test_a_run_whose_remote_fails_midway_goes_on_without_it(
    clean_env: dict[str, str], s3: S3Server, tmp_path: Path
) -> None:
    """The remote answers the run's first lookups, then every link to it is cut while
    the first call is in flight (its first poll hangs until the client's read timeout;
    a GET is retried): the push fails, the run says it continues without the remote
    cache, builds the rest and exits 0."""
    proxy = FaultProxy(int(s3.endpoint.rsplit(":", 1)[1]))
    project = tmp_path / "p"
    project.mkdir()
    (project / "mediafile.yaml").write_text(
        "version: 1\nprovider: xai\n"
        "providers:\n  xai: {max_retries: 1, request_timeout: 10, poll_interval: 0.01}\n"
        "assets:\n  a: {kind: image, prompt: first}\n  b: {kind: image, prompt: second}\n"
    )
    try:
        with FakeXai() as fake:
            fake.inject(Route.IMAGE_POLL, Fault.hang())  # the first poll waits for the client
            env = {
                **clean_env,
                **remote_env(proxy.endpoint, tmp_path, "a"),
                "XAI_BASE_URL": fake.base_url,
                "XAI_API_KEY": "xai-TEST-remote-midway",
            }
            err = tmp_path / "run.err"
            with err.open("wb") as sink:
                run = subprocess.Popen(
                    [sys.executable, "-m", "imaginebuild", "--json", "run", "-j", "1"],
                    cwd=project, env=env, stdout=subprocess.PIPE, stderr=sink,
                )  # fmt: skip
            wait_for_state(
                lambda: fake.pending_faults() == 0,  # the hang is taken as the poll arrives
                "the first call in flight",
                child=run,
                log=err.read_text,
            )
            proxy.arm(0)  # from now on every link to the remote is cut
            out, _ = run.communicate(timeout=SUBPROCESS_TIMEOUT_S * 2)
            stderr = err.read_text()
            assert run.returncode == 0, stderr
            assert stderr.count("continuing without the remote cache") == 1, stderr
            states = {a["name"]: a["state"] for a in json.loads(out)["assets"]}
            assert states == {"a": "built", "b": "built"}
            assert [r.status for r in fake.requests(Route.IMAGES)] == [200, 200]  # one each
    finally:
        proxy.close()
