"""Content credentials: signed outputs read back valid, AI-marked, trusted only by their root.

Every test that signs makes its own ES256 chain (tests/c2pa_certs.py), signs real
media (a Pillow PNG and JPEG, a one-second PyAV MP4) and reads the manifest back
with c2pa itself; nothing touches the network.
"""

from __future__ import annotations

import struct
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from imaginebuild.store.credentials import (
    ENV_CERT,
    ENV_KEY,
    INSTALL_HINT,
    PROVENANCE_LABEL,
    TRAINED_ALGORITHMIC_MEDIA,
    ManifestInfo,
    SigningConfig,
    check_signing_config,
    manifest_definition,
    read_manifest,
    sign_output,
)
from imaginebuild.errors import StoreError, UsageError

RECORD: dict[str, Any] = {
    "asset": "london",
    "kind": "image",
    "prompt": "A collage of London landmarks in a stenciled street-art style — «ünïcode»",
    "params": {"resolution": "1k", "aspect_ratio": "16:9", "count": 1, "variant": 0},
    "model": "grok-imagine-image",
    "provider": "xai",
    "inputs": [{"ref": "art/logo.png", "sha256": "ab" * 32}],
    "key": "cd" * 32,
    "request_ids": ["req-1", "req-2"],
    "cost_usd": 0.07,
    "started_at": "2026-01-02T03:04:05Z",
    "finished_at": "2026-01-02T03:04:09Z",
}


# ---------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def certs() -> Any:
    """The certificate helper, or a skip when the c2pa extra is not installed."""
    pytest.importorskip("c2pa")
    pytest.importorskip("cryptography")
    import c2pa_certs

    return c2pa_certs


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("credentials")


@pytest.fixture(scope="module")
def chain(certs: Any, folder: Path) -> Any:
    return certs.make_chain(folder / "chain")


@pytest.fixture(scope="module")
def config(chain: Any) -> SigningConfig:
    return SigningConfig(chain.certificate_chain, chain.private_key)


def _image(path: Path, fmt: str) -> Path:
    from PIL import Image, ImageDraw

    img = Image.new("RGB", (64, 64), (30, 60, 90))
    ImageDraw.Draw(img).ellipse((8, 8, 56, 56), fill=(220, 180, 40))
    img.save(path, fmt)
    return path


def _video(path: Path) -> Path:
    import av
    from PIL import Image

    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=24)
        stream.width, stream.height, stream.pix_fmt = 64, 64, "yuv420p"
        for i in range(24):
            frame = av.VideoFrame.from_image(Image.new("RGB", (64, 64), (i * 10, 40, 200 - i * 5)))
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


@pytest.fixture(scope="module")
def media(folder: Path) -> dict[str, Path]:
    """One unsigned file per supported media type."""
    return {
        "image/png": _image(folder / "still.png", "PNG"),
        "image/jpeg": _image(folder / "still.jpg", "JPEG"),
        "video/mp4": _video(folder / "clip.mp4"),
    }


SUFFIX = {"image/png": ".png", "image/jpeg": ".jpg", "video/mp4": ".mp4"}


@pytest.fixture(scope="module")
def signed(media: dict[str, Path], config: SigningConfig, folder: Path) -> dict[str, Path]:
    """Each medium signed once into out/ (the tests below only read these)."""
    out: dict[str, Path] = {}
    for media_type, src in media.items():
        dest = folder / "out" / f"asset{SUFFIX[media_type]}"
        sign_output(src, dest, media_type, RECORD, config)
        out[media_type] = dest
    return out


ALL_MEDIA = pytest.mark.parametrize("media_type", ["image/png", "image/jpeg", "video/mp4"])


# ------------------------------------------------------------ byte surgery


def _png_chunk_data(data: bytes, kind: bytes) -> int:
    """Offset of the first data byte of the first `kind` chunk of a PNG."""
    pos = 8
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        if data[pos + 4 : pos + 8] == kind:
            return pos + 8
        pos += 12 + length
    raise AssertionError(f"no {kind!r} chunk")


def _mp4_box_data(data: bytes, kind: bytes) -> int:
    """Offset of the first payload byte of the first top-level `kind` box of an MP4."""
    pos = 0
    while pos < len(data):
        (size,) = struct.unpack(">I", data[pos : pos + 4])
        if data[pos + 4 : pos + 8] == kind:
            return pos + 8
        pos += size
    raise AssertionError(f"no {kind!r} box")


def _jpeg_scan_data(data: bytes) -> int:
    """Offset of the first entropy-coded byte of the JPEG's own scan.

    Walks the segments, so the thumbnail JPEG inside the manifest (APP11) is skipped.
    """
    pos = 2
    while data[pos] == 0xFF:
        marker = data[pos + 1]
        (length,) = struct.unpack(">H", data[pos + 2 : pos + 4])
        if marker == 0xDA:
            return pos + 2 + length
        pos += 2 + length
    raise AssertionError("no start-of-scan segment")


MEDIA_DATA: dict[str, Callable[[bytes], int]] = {
    "image/png": lambda d: _png_chunk_data(d, b"IDAT") + 4,
    "image/jpeg": lambda d: _jpeg_scan_data(d) + 4,
    "video/mp4": lambda d: _mp4_box_data(d, b"mdat") + 16,
}


# -------------------------------------------------------------- the config


def test_no_signing_without_configuration() -> None:
    assert SigningConfig.from_env({}) is None
    assert SigningConfig.from_env({ENV_CERT: "", ENV_KEY: ""}) is None


def test_both_variables_make_a_config() -> None:
    config = SigningConfig.from_env({ENV_CERT: "certs/chain.pem", ENV_KEY: "certs/key.pem"})
    assert config == SigningConfig(Path("certs/chain.pem"), Path("certs/key.pem"), "es256")


@pytest.mark.parametrize(("given", "missing"), [(ENV_CERT, ENV_KEY), (ENV_KEY, ENV_CERT)])
def test_one_variable_without_the_other_is_a_usage_error(given: str, missing: str) -> None:
    with pytest.raises(UsageError) as err:
        SigningConfig.from_env({given: "some/file.pem"})
    assert f"{missing} is not" in err.value.message
    assert err.value.hint is not None and missing in err.value.hint
    assert err.value.exit_code == 2


def test_importing_the_module_does_not_import_c2pa() -> None:
    code = (
        "import sys, imaginebuild.store.credentials;"
        "print(sorted(m for m in ('c2pa', 'cryptography') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.strip() == "[]"


def test_missing_package_says_how_to_install(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setitem(sys.modules, "c2pa", None)  # makes `import c2pa` raise ImportError
    src = tmp_path / "a.png"
    src.write_bytes(b"\x89PNG\r\n\x1a\n")
    config = SigningConfig(tmp_path / "chain.pem", tmp_path / "key.pem")
    with pytest.raises(UsageError) as signing:
        sign_output(src, tmp_path / "out.png", "image/png", RECORD, config)
    with pytest.raises(UsageError) as reading:
        read_manifest(src)
    for err in (signing.value, reading.value):
        assert "'c2pa'" in err.message
        assert err.hint == INSTALL_HINT
    assert not (tmp_path / "out.png").exists()


def test_manifest_marks_the_output_as_ai_generated() -> None:
    definition = manifest_definition("london.png", RECORD)
    actions, provenance = definition["assertions"]
    (created,) = actions["data"]["actions"]
    assert created["action"] == "c2pa.created"
    assert created["digitalSourceType"] == TRAINED_ALGORITHMIC_MEDIA
    assert created["softwareAgent"]["name"] == "imaginebuild"
    assert provenance == {"label": PROVENANCE_LABEL, "data": RECORD}


# ------------------------------------------------------- signing and reading


@ALL_MEDIA
def test_signed_output_reads_back_valid_with_its_provenance(
    signed: dict[str, Path], media_type: str
) -> None:
    info = read_manifest(signed[media_type])
    assert info == ManifestInfo(
        valid=True,
        trusted=None,
        source_type=TRAINED_ALGORITHMIC_MEDIA,
        provenance=RECORD,
        errors=(),
    )


@ALL_MEDIA
def test_signed_output_is_trusted_by_its_root(
    signed: dict[str, Path], chain: Any, media_type: str
) -> None:
    info = read_manifest(signed[media_type], trust_anchors_pem=chain.root_pem)
    assert info.valid and info.trusted is True and info.errors == ()


def test_another_root_does_not_trust_it(
    signed: dict[str, Path], certs: Any, tmp_path: Path
) -> None:
    stranger = certs.make_chain(tmp_path / "stranger")
    info = read_manifest(signed["image/png"], trust_anchors_pem=stranger.root_pem)
    assert info.valid is True
    assert info.trusted is False
    assert any(e.startswith("signingCredential.untrusted") for e in info.errors)


def test_signed_media_still_decodes_to_the_same_content(
    signed: dict[str, Path], media: dict[str, Path]
) -> None:
    import av
    from PIL import Image

    for media_type in ("image/png", "image/jpeg"):
        with Image.open(media[media_type]) as a, Image.open(signed[media_type]) as b:
            assert a.tobytes() == b.tobytes()
    with av.open(str(signed["video/mp4"])) as container:
        frames = list(container.decode(video=0))
    assert len(frames) == 24 and (frames[0].width, frames[0].height) == (64, 64)


@ALL_MEDIA
def test_one_changed_byte_in_the_media_reads_invalid(
    signed: dict[str, Path], chain: Any, media_type: str, tmp_path: Path
) -> None:
    data = bytearray(signed[media_type].read_bytes())
    data[MEDIA_DATA[media_type](bytes(data))] ^= 0x01
    tampered = tmp_path / f"tampered{SUFFIX[media_type]}"
    tampered.write_bytes(bytes(data))
    info = read_manifest(tampered, trust_anchors_pem=chain.root_pem)
    assert info.valid is False
    assert any("Hash.mismatch" in e for e in info.errors), info.errors


def test_every_signing_differs_so_the_cache_keeps_the_unsigned_bytes(
    media: dict[str, Path], config: SigningConfig, tmp_path: Path
) -> None:
    a, b = tmp_path / "a.png", tmp_path / "b.png"
    sign_output(media["image/png"], a, "image/png", RECORD, config)
    sign_output(media["image/png"], b, "image/png", RECORD, config)
    assert a.read_bytes() != b.read_bytes()
    assert read_manifest(a).valid and read_manifest(b).valid


def test_signing_replaces_an_existing_output(
    media: dict[str, Path], config: SigningConfig, tmp_path: Path
) -> None:
    dest = tmp_path / "out" / "clip.mp4"
    dest.parent.mkdir()
    dest.write_bytes(b"stale")
    sign_output(media["video/mp4"], dest, "video/mp4", RECORD, config)
    assert read_manifest(dest).valid
    assert sorted(p.name for p in dest.parent.iterdir()) == ["clip.mp4"]


def test_a_file_without_credentials_reads_as_absent(media: dict[str, Path], certs: Any) -> None:
    info = read_manifest(media["image/png"])
    assert (info.present, info.valid, info.trusted, info.provenance) == (False, False, None, None)
    assert "no content credentials" in info.errors[0]


# ------------------------------------------------------------ refusals


def test_a_self_signed_leaf_is_refused(certs: Any, media: dict[str, Path], tmp_path: Path) -> None:
    lone = certs.self_signed_leaf(tmp_path / "lone")
    config = SigningConfig(lone.certificate_chain, lone.private_key)
    dest = tmp_path / "out.png"
    with pytest.raises(UsageError) as err:
        sign_output(media["image/png"], dest, "image/png", RECORD, config)
    assert "self-signed" in err.value.message
    assert err.value.hint is not None and "intermediate" in err.value.hint
    assert not dest.exists() and list(tmp_path.glob("*.tmp")) == []


def test_a_key_that_does_not_match_is_refused_without_quoting_it(
    certs: Any, chain: Any, tmp_path: Path
) -> None:
    other = certs.make_chain(tmp_path / "other")
    with pytest.raises(UsageError) as err:
        check_signing_config(SigningConfig(chain.certificate_chain, other.private_key))
    assert "is not the key of the signing certificate" in err.value.message
    key_body = other.private_key.read_text().splitlines()[1]
    assert key_body not in str(err.value) and "PRIVATE KEY" not in str(err.value)


def test_an_unreadable_key_file_is_refused_without_quoting_it(chain: Any, tmp_path: Path) -> None:
    bad = tmp_path / "bad.key"
    secret = (
        "-----BEGIN PRIVATE KEY-----\nc2VjcmV0LWtleS1tYXRlcmlhbA==\n-----END PRIVATE KEY-----\n"
    )
    bad.write_text(secret)
    with pytest.raises(UsageError) as err:
        check_signing_config(SigningConfig(chain.certificate_chain, bad))
    assert "not an unencrypted PEM private key" in err.value.message
    assert "c2VjcmV0" not in str(err.value) and err.value.__cause__ is None


def test_a_missing_certificate_file_names_its_path(chain: Any, tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.pem"
    with pytest.raises(UsageError, match=r"nowhere\.pem"):
        check_signing_config(SigningConfig(missing, chain.private_key))


def test_a_chain_out_of_order_is_refused(chain: Any, tmp_path: Path) -> None:
    pems = chain.certificate_chain.read_text().split("-----END CERTIFICATE-----\n")
    swapped = tmp_path / "swapped.pem"
    swapped.write_text("-----END CERTIFICATE-----\n".join([pems[1], pems[0], ""]))
    with pytest.raises(UsageError, match="out of order"):
        check_signing_config(SigningConfig(swapped, chain.private_key))


def test_an_expired_certificate_is_refused(chain: Any) -> None:
    import datetime as dt

    later = dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=365)
    with pytest.raises(UsageError, match="not valid now"):
        check_signing_config(SigningConfig(chain.certificate_chain, chain.private_key), later)


def test_an_algorithm_that_does_not_fit_the_key_is_refused(chain: Any) -> None:
    with pytest.raises(UsageError, match="es384 needs a secp384r1 key"):
        check_signing_config(SigningConfig(chain.certificate_chain, chain.private_key, "es384"))
    with pytest.raises(UsageError, match="unknown C2PA signing algorithm"):
        check_signing_config(SigningConfig(chain.certificate_chain, chain.private_key, "md5"))


def test_an_unsupported_media_type_is_refused(
    media: dict[str, Path], config: SigningConfig, tmp_path: Path
) -> None:
    with pytest.raises(StoreError, match="image/webp is not supported"):
        sign_output(media["image/png"], tmp_path / "x.webp", "image/webp", RECORD, config)
    assert list(tmp_path.iterdir()) == []


def test_a_c2pa_failure_leaves_the_old_output_in_place(
    media: dict[str, Path], config: SigningConfig, tmp_path: Path
) -> None:
    dest = tmp_path / "clip.png"
    dest.write_bytes(b"previous output")
    with pytest.raises(StoreError, match="cannot sign"):
        # MP4 bytes announced as PNG: c2pa cannot embed a manifest.
        sign_output(media["video/mp4"], dest, "image/png", RECORD, config)
    assert dest.read_bytes() == b"previous output"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.png"]


def test_a_record_that_is_not_json_is_refused(
    media: dict[str, Path], config: SigningConfig, tmp_path: Path
) -> None:
    with pytest.raises(StoreError, match="not JSON"):
        sign_output(media["image/png"], tmp_path / "a.png", "image/png", {"x": {1, 2}}, config)


def test_unusable_trust_anchors_are_a_usage_error(signed: dict[str, Path]) -> None:
    with pytest.raises(UsageError, match="trust anchors"):
        read_manifest(signed["image/png"], trust_anchors_pem="not a certificate")


def test_an_unreadable_file_is_a_store_error(certs: Any, tmp_path: Path) -> None:
    with pytest.raises(StoreError, match=r"gone\.png"):
        read_manifest(tmp_path / "gone.png")
