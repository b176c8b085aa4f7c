"""Content credentials inside a run, through the CLI against the fake xAI server: outputs
come out signed (the cache keeps the unsigned bytes), and a signing setup that cannot
sign is refused before any call is made or anything is written.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from imaginebuild.testing.fake_xai import FakeXai
from tests.conftest import CliResult, read_lock, sha256_of

Cli = Callable[..., CliResult]
MEDIAFILE = """\
version: 1
provider: xai
assets:
  poster: {kind: image, prompt: A signed poster, resolution: 1k, aspect_ratio: "1:1"}
"""


@pytest.fixture(scope="module")
def certs() -> Any:
    """The certificate helper, or a skip when the c2pa extra is not installed."""
    pytest.importorskip("c2pa")
    pytest.importorskip("cryptography")
    import c2pa_certs

    return c2pa_certs


@pytest.fixture
def fake() -> Iterator[FakeXai]:
    with FakeXai() as server:
        yield server


def project(tmp_path: Path) -> Path:
    folder = tmp_path / "p"
    folder.mkdir()
    (folder / "mediafile.yaml").write_text(MEDIAFILE)
    return folder


def env_for(fake: FakeXai, cert: Path, key: Path) -> dict[str, str]:
    return {
        "XAI_BASE_URL": fake.base_url,
        "XAI_API_KEY": "xai-TEST-signing",
        "IMAGINEBUILD_C2PA_CERT": str(cert),
        "IMAGINEBUILD_C2PA_KEY": str(key),
    }


def test_a_run_signs_its_outputs_and_checkout_signs_them_again(
    cli: Cli, fake: FakeXai, certs: Any, tmp_path: Path, cache_dir: Path
) -> None:
    from imaginebuild.store.credentials import read_manifest

    chain = certs.make_chain(tmp_path / "certs")
    folder = project(tmp_path)
    env = env_for(fake, chain.certificate_chain, chain.private_key)
    run = cli("run", cwd=folder, env=env)
    assert run.code == 0, run.stderr
    out = folder / "out" / "poster.png"
    info = read_manifest(out, trust_anchors_pem=chain.root_pem)
    assert info.valid and info.trusted is True, info.errors
    assert info.provenance is not None and info.provenance["prompt"] == "A signed poster"
    locked = read_lock(folder)["assets"]["poster"]["outputs"][0]["sha256"]
    assert (cache_dir / "blobs" / locked[:2] / locked).is_file()  # the unsigned bytes
    assert sha256_of(out) != locked
    again = cli("--json", "run", cwd=folder, env=env)
    assert again.code == 0 and {a["state"] for a in again.json["assets"]} == {"up_to_date"}

    shutil.rmtree(folder / "out")
    calls = len(fake.log)
    checkout = cli("--json", "checkout", cwd=folder, env=env)
    assert checkout.code == 0, checkout.stderr
    assert read_manifest(out, trust_anchors_pem=chain.root_pem).trusted is True
    assert len(fake.log) == calls


EXPECTED = {
    "self-signed": "self-signed.pem is self-signed; C2PA refuses it",
    "missing key": "cannot read the C2PA private key",
    "only one variable": "IMAGINEBUILD_C2PA_CERT is set but IMAGINEBUILD_C2PA_KEY is not",
}


@pytest.mark.parametrize("broken", sorted(EXPECTED))
def test_a_signing_setup_that_cannot_sign_is_refused_before_any_call(
    cli: Cli, fake: FakeXai, certs: Any, tmp_path: Path, cache_dir: Path, broken: str
) -> None:
    folder = project(tmp_path)
    if broken == "self-signed":
        leaf = certs.self_signed_leaf(tmp_path / "certs")
        env = env_for(fake, leaf.certificate_chain, leaf.private_key)
    else:
        chain = certs.make_chain(tmp_path / "certs")
        env = env_for(fake, chain.certificate_chain, tmp_path / "no-such.key")
        if broken == "only one variable":
            env["IMAGINEBUILD_C2PA_KEY"] = ""
    result = cli("--json", "run", cwd=folder, env=env)
    assert result.code == 2, result.stderr
    assert EXPECTED[broken] in result.stderr
    assert json.loads(result.stdout)["exit_code"] == 2
    assert fake.log == []  # refused before any call
    assert not (folder / "out").exists() and not (folder / "mediafile.lock").exists()
    assert not (cache_dir / "blobs").exists()
