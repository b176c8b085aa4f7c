"""Make throwaway ES256 certificate chains (root → intermediate → leaf) for signing tests.

The leaf carries what C2PA requires of a signer: digitalSignature key usage, the
emailProtection extended key usage, CA:FALSE; the CAs carry keyCertSign and CA:TRUE.
`self_signed_leaf` makes the certificate the validator must refuse.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

_VALID_FOR = dt.timedelta(days=30)


@dataclass(frozen=True)
class Chain:
    """PEM files written for one chain, plus the root's PEM text (the trust anchor)."""

    certificate_chain: Path
    private_key: Path
    root_pem: str


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "US"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "imaginebuild tests"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _key_usage(*, ca: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=not ca,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=ca,
        crl_sign=ca,
        encipher_only=False,
        decipher_only=False,
    )


def _certificate(
    subject: str,
    key: ec.EllipticCurvePrivateKey,
    issuer: x509.Name,
    issuer_key: ec.EllipticCurvePrivateKey,
    *,
    ca: bool,
    path_length: int | None = None,
) -> x509.Certificate:
    now = dt.datetime.now(dt.timezone.utc) - dt.timedelta(minutes=5)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + _VALID_FOR)
        .add_extension(x509.BasicConstraints(ca=ca, path_length=path_length), critical=True)
        .add_extension(_key_usage(ca=ca), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()),
            critical=False,
        )
    )
    if not ca:
        builder = builder.add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]), critical=False
        )
    return builder.sign(issuer_key, hashes.SHA256())


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )


def make_chain(folder: Path) -> Chain:
    """Write `chain.pem` (leaf, then intermediate) and `leaf.key` into `folder`."""
    root_key, inter_key, leaf_key = (ec.generate_private_key(ec.SECP256R1()) for _ in range(3))
    root_name = _name("imaginebuild test root")
    root = _certificate(
        "imaginebuild test root", root_key, root_name, root_key, ca=True, path_length=1
    )
    inter = _certificate(
        "imaginebuild test intermediate", inter_key, root.subject, root_key, ca=True, path_length=0
    )
    leaf = _certificate("imaginebuild test signer", leaf_key, inter.subject, inter_key, ca=False)
    folder.mkdir(parents=True, exist_ok=True)
    chain_path, key_path = folder / "chain.pem", folder / "leaf.key"
    chain_path.write_bytes(_pem(leaf) + _pem(inter))
    _write_key(key_path, leaf_key)
    return Chain(chain_path, key_path, _pem(root).decode("ascii"))


def self_signed_leaf(folder: Path) -> Chain:
    """Write a leaf certificate that signs itself (no CA above it) and its key."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = _name("imaginebuild self-signed signer")
    leaf = _certificate("imaginebuild self-signed signer", key, name, key, ca=False)
    folder.mkdir(parents=True, exist_ok=True)
    chain_path, key_path = folder / "self-signed.pem", folder / "self-signed.key"
    chain_path.write_bytes(_pem(leaf))
    _write_key(key_path, key)
    return Chain(chain_path, key_path, _pem(leaf).decode("ascii"))
