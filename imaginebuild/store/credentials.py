"""Content credentials: embed a signed C2PA manifest in materialized outputs and read it back.

The manifest marks an output as AI-generated (a `c2pa.created` action whose
`digitalSourceType` is IPTC's trainedAlgorithmicMedia), names imaginebuild as the
software agent and carries the engine's provenance record as a custom assertion.
Signed bytes differ on every signing, so the cache keeps unsigned outputs and
signing happens when an output is materialized.

c2pa-python and cryptography belong to the optional `c2pa` extra: both are
imported inside the functions that need them, never at import time, and their
errors are translated here. The signing key is read only to sign; no message
ever quotes it.

    SigningConfig.from_env ─► check_signing_config (early, before any call)
                                        │
    sign_output(src, dest, record) ─────┴─► c2pa Builder + Signer ─► dest (atomic)
    read_manifest(path, anchors) ──────────► c2pa Reader ─► ManifestInfo
"""

from __future__ import annotations

import datetime as dt
import importlib
import itertools
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

from imaginebuild.atomic import atomic_writer
from imaginebuild.errors import StoreError, UsageError
from imaginebuild.mediaprobe import sniff
from imaginebuild.version import __version__

if TYPE_CHECKING:
    from cryptography import x509

ENV_CERT = "IMAGINEBUILD_C2PA_CERT"
ENV_KEY = "IMAGINEBUILD_C2PA_KEY"
INSTALL_HINT = "pip install imaginebuild[c2pa]"
TRAINED_ALGORITHMIC_MEDIA = "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia"
PROVENANCE_LABEL = "org.imaginebuild.provenance"
SUPPORTED_MEDIA = ("image/jpeg", "image/png", "video/mp4")

# c2pa's algorithm names, and the key each one needs (curve name for EC keys).
_KEY_FOR_ALGORITHM = {
    "es256": "secp256r1",
    "es384": "secp384r1",
    "es512": "secp521r1",
    "ps256": "rsa",
    "ps384": "rsa",
    "ps512": "rsa",
    "ed25519": "ed25519",
}
_ACTIONS_LABELS = ("c2pa.actions", "c2pa.actions.v2")
_UNTRUSTED = "signingCredential.untrusted"
# Reading never reaches the network: no remote manifests, no OCSP.
_OFFLINE_VERIFY = {"remote_manifest_fetch": False, "ocsp_fetch": False}


@dataclass(frozen=True)
class SigningConfig:
    """Where the signing certificate chain (PEM, leaf first) and its private key (PEM) live."""

    certificate_chain: Path
    private_key: Path
    algorithm: str = "es256"

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> SigningConfig | None:
        """Read IMAGINEBUILD_C2PA_CERT and IMAGINEBUILD_C2PA_KEY; None when neither is set."""
        cert, key = env.get(ENV_CERT, ""), env.get(ENV_KEY, "")
        if not cert and not key:
            return None
        if not cert or not key:
            given, missing = (ENV_CERT, ENV_KEY) if cert else (ENV_KEY, ENV_CERT)
            raise UsageError(
                f"{given} is set but {missing} is not; content credentials need both",
                hint=f"set {ENV_CERT} to the certificate chain (PEM, leaf first) and "
                f"{ENV_KEY} to its private key (PEM), or unset both to skip signing",
            )
        return cls(Path(cert), Path(key))


@dataclass(frozen=True)
class ManifestInfo:
    """What a file's content credentials say.

    `valid`: a manifest is present and its signature and hashes check out.
    `trusted`: the signer chains to one of the given trust anchors; None when no
    anchors were given. `errors`: every failed check as `code: explanation`.
    """

    valid: bool
    trusted: bool | None
    source_type: str | None
    provenance: dict[str, Any] | None
    errors: tuple[str, ...]
    present: bool = True


def _import(name: str) -> ModuleType:
    """Import a module of the `c2pa` extra, or say how to install it."""
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        raise UsageError(
            f"content credentials need the optional package {name!r}, which is not installed",
            hint=INSTALL_HINT,
        ) from exc


def _read_config_file(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise UsageError(
            f"cannot read the C2PA {what} {path}: {exc.strerror or exc}",
            hint=f"point {ENV_CERT} / {ENV_KEY} at readable PEM files",
        ) from None


def _load_chain(config: SigningConfig) -> tuple[bytes, list[x509.Certificate]]:
    x509_mod = _import("cryptography.x509")
    data = _read_config_file(config.certificate_chain, "certificate chain")
    try:
        certs: list[x509.Certificate] = x509_mod.load_pem_x509_certificates(data)
    except ValueError:
        raise UsageError(
            f"{config.certificate_chain} is not a PEM certificate chain",
            hint="export the leaf certificate, then its intermediates, as PEM",
        ) from None
    return data, certs


def _load_key(config: SigningConfig) -> tuple[bytes, Any]:
    serialization = _import("cryptography.hazmat.primitives.serialization")
    data = _read_config_file(config.private_key, "private key")
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError):
        # The library's message could echo parts of the file: say only what is wrong.
        raise UsageError(
            f"{config.private_key} is not an unencrypted PEM private key",
            hint="export the signing key as PEM (PKCS#8) without a passphrase",
        ) from None
    return data, key


def _key_kind(key: Any) -> str:
    ec = _import("cryptography.hazmat.primitives.asymmetric.ec")
    rsa = _import("cryptography.hazmat.primitives.asymmetric.rsa")
    ed25519 = _import("cryptography.hazmat.primitives.asymmetric.ed25519")
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return str(key.curve.name)
    if isinstance(key, rsa.RSAPrivateKey):
        return "rsa"
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return "ed25519"
    return type(key).__name__


def _check_chain(
    config: SigningConfig, certs: list[x509.Certificate], key: Any, now: dt.datetime
) -> None:
    """The checks c2pa would make late or not at all, each with a message that says what next."""
    serialization = _import("cryptography.hazmat.primitives.serialization")
    chain = config.certificate_chain
    if not certs:
        raise UsageError(f"{chain} holds no certificate")
    leaf = certs[0]
    if leaf.issuer == leaf.subject:
        raise UsageError(
            f"the signing certificate in {chain} is self-signed; C2PA refuses it",
            hint="sign with a leaf certificate issued by a CA (root → intermediate → leaf)",
        )
    for cert, issuer in itertools.pairwise(certs):
        if cert.issuer != issuer.subject:
            raise UsageError(
                f"the certificates in {chain} are out of order",
                hint="put the leaf first, then each issuer in turn (the root may be left out)",
            )
    if not now <= leaf.not_valid_after_utc or now < leaf.not_valid_before_utc:
        raise UsageError(
            f"the signing certificate in {chain} is not valid now "
            f"({leaf.not_valid_before_utc:%Y-%m-%d} to {leaf.not_valid_after_utc:%Y-%m-%d})"
        )
    raw = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    if key.public_key().public_bytes(*raw) != leaf.public_key().public_bytes(*raw):
        raise UsageError(
            f"{config.private_key} is not the key of the signing certificate in {chain}"
        )
    wanted, kind = _KEY_FOR_ALGORITHM[config.algorithm], _key_kind(key)
    if kind != wanted:
        raise UsageError(
            f"algorithm {config.algorithm} needs a {wanted} key; {config.private_key} holds {kind}"
        )


def check_signing_config(config: SigningConfig, now: dt.datetime | None = None) -> None:
    """Check the chain and key are usable for signing; call it before any paid call.

    Raises UsageError (missing package, unreadable or malformed files, a
    self-signed or expired leaf, a key that does not match, a wrong algorithm).
    """
    _signing_material(config, now)


def _signing_material(config: SigningConfig, now: dt.datetime | None) -> tuple[bytes, bytes]:
    algorithm = config.algorithm.lower()
    if algorithm not in _KEY_FOR_ALGORITHM:
        raise UsageError(
            f"unknown C2PA signing algorithm {config.algorithm!r}",
            hint=f"use one of {', '.join(_KEY_FOR_ALGORITHM)}",
        )
    config = SigningConfig(config.certificate_chain, config.private_key, algorithm)
    chain_pem, certs = _load_chain(config)
    key_pem, key = _load_key(config)
    _check_chain(config, certs, key, now or dt.datetime.now(dt.timezone.utc))
    return chain_pem, key_pem


def manifest_definition(title: str, record: Mapping[str, object]) -> dict[str, Any]:
    """The C2PA manifest definition for one generated output (pure)."""
    agent = {"name": "imaginebuild", "version": __version__}
    created = {
        "action": "c2pa.created",
        "digitalSourceType": TRAINED_ALGORITHMIC_MEDIA,
        "softwareAgent": agent,
    }
    return {
        "claim_generator_info": [agent],
        "title": title,
        "assertions": [
            {"label": "c2pa.actions", "data": {"actions": [created]}},
            {"label": PROVENANCE_LABEL, "data": dict(record)},
        ],
    }


def sign_output(
    src: Path,
    dest: Path,
    media_type: str,
    record: Mapping[str, object],
    config: SigningConfig,
) -> None:
    """Write a copy of `src` to `dest`, atomically, with a signed C2PA manifest embedded.

    Raises UsageError when the extra is missing or the certificate/key are
    unusable, StoreError when the media type is not signable, a file cannot be
    read or written, or c2pa refuses to sign.
    """
    if media_type not in SUPPORTED_MEDIA:
        raise StoreError(
            f"cannot add content credentials to {dest}: {media_type} is not supported "
            f"(supported: {', '.join(SUPPORTED_MEDIA)})"
        )
    try:
        definition = json.dumps(manifest_definition(dest.name, record), allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise StoreError(f"the provenance record of {dest} is not JSON: {exc}") from exc
    c2pa = _import("c2pa")
    chain_pem, key_pem = _signing_material(config, None)
    try:
        info = c2pa.C2paSignerInfo(config.algorithm.lower(), chain_pem, key_pem, None)
        with (
            c2pa.Signer.from_info(info) as signer,
            c2pa.Builder(definition) as builder,
            src.open("rb") as source,
            atomic_writer(dest, readable=True) as out,
        ):
            builder.sign(signer, media_type, source, out)
    except c2pa.C2paError as exc:
        raise StoreError(f"cannot sign {dest}: {exc}") from None
    except OSError as exc:
        raise StoreError(f"cannot write signed {dest} from {src}: {exc}") from exc


def _trust_settings(trust_anchors_pem: str | None) -> dict[str, Any]:
    verify: dict[str, Any] = dict(_OFFLINE_VERIFY)
    settings: dict[str, Any] = {"verify": verify}
    if trust_anchors_pem is not None:
        verify["verify_trust"] = True
        settings["trust"] = {"trust_anchors": trust_anchors_pem}
    return settings


def _failures(store: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    results = store.get("validation_results") or {}
    active = results.get("activeManifest") or {}
    failures = list(active.get("failure") or [])
    return failures or list(store.get("validation_status") or [])


def manifest_info(store: Mapping[str, Any], *, anchors_given: bool) -> ManifestInfo:
    """Summarize a c2pa manifest store (the Reader's JSON, parsed) as a ManifestInfo (pure)."""
    failures = _failures(store)
    codes = {str(f.get("code")) for f in failures}
    errors = tuple(
        f"{f.get('code')}: {f.get('explanation', '')}".rstrip(": ")
        for f in failures
        if anchors_given or f.get("code") != _UNTRUSTED
    )
    state = store.get("validation_state")
    valid = state in ("Valid", "Trusted") and not (codes - {_UNTRUSTED})
    trusted = (state == "Trusted") if anchors_given else None
    manifest = (store.get("manifests") or {}).get(store.get("active_manifest")) or {}
    source_type, provenance = None, None
    for assertion in manifest.get("assertions") or []:
        data = assertion.get("data")
        if assertion.get("label") in _ACTIONS_LABELS and isinstance(data, dict):
            source_type = source_type or _created_source_type(data)
        elif assertion.get("label") == PROVENANCE_LABEL and isinstance(data, dict):
            provenance = data
    return ManifestInfo(valid, trusted, source_type, provenance, errors)


def _created_source_type(actions: Mapping[str, Any]) -> str | None:
    for action in actions.get("actions") or []:
        if isinstance(action, dict) and action.get("action") == "c2pa.created":
            source = action.get("digitalSourceType")
            return str(source) if source is not None else None
    return None


def read_manifest(path: Path, trust_anchors_pem: str | None = None) -> ManifestInfo:
    """Read and verify the content credentials embedded in `path`, offline.

    A file without a manifest reads as `present=False, valid=False`; a damaged
    manifest reads as invalid with its errors. Trust is judged only against
    `trust_anchors_pem` (PEM certificates) when given. Raises UsageError when
    the extra is missing or the anchors are not PEM, StoreError when `path`
    cannot be read.
    """
    c2pa = _import("c2pa")
    try:
        with path.open("rb") as f:
            media_type = sniff(f.read(16))
            f.seek(0)
            context = _context(c2pa, trust_anchors_pem)
            try:
                with context, c2pa.Reader(media_type, f, None, context) as reader:
                    store = json.loads(reader.json())
            except c2pa.C2paError.ManifestNotFound:
                return ManifestInfo(
                    False, None, None, None, (f"{path.name} carries no content credentials",), False
                )
            except c2pa.C2paError as exc:
                return ManifestInfo(False, None, None, None, (str(exc),))
    except OSError as exc:
        raise StoreError(f"cannot read {path}: {exc.strerror or exc}") from exc
    return manifest_info(store, anchors_given=trust_anchors_pem is not None)


def _context(c2pa: Any, trust_anchors_pem: str | None) -> Any:
    try:
        return c2pa.Context.from_dict(_trust_settings(trust_anchors_pem))
    except c2pa.C2paError as exc:
        raise UsageError(f"the C2PA trust anchors are not usable: {exc}") from None
