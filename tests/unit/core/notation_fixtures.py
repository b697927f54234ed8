"""Notation signatures made in Python: a CA, a leaf, JWS envelopes and CRLs."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from core.signatures_notation import PAYLOAD_TYPE

NOW = datetime.now(UTC)
TARGET = {
    "digest": "sha256:" + "ab" * 32,
    "mediaType": "application/vnd.oci.image.manifest.v1+json",
    "size": 413,
}
LEAF_SUBJECT = "x509.subject: C=DE, ST=BE, O=Example, CN=ci-signer"


def name(cn: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "DE"),
            x509.NameAttribute(NameOID.STATE_OR_PROVINCE_NAME, "BE"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Example"),
            x509.NameAttribute(NameOID.COMMON_NAME, cn),
        ]
    )


def cert(
    subject: str, key: Any, issuer: str, issuer_key: Any, *, ca: bool, days: int = 1
) -> x509.Certificate:
    builder = (
        x509.CertificateBuilder()
        .subject_name(name(subject))
        .issuer_name(name(issuer))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - timedelta(days=2))
        .not_valid_after(NOW + timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=not ca,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=ca,
                crl_sign=ca,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
    )
    if not ca:
        builder = builder.add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CODE_SIGNING]), critical=False
        )
    return builder.sign(issuer_key, hashes.SHA256())


CA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
CA = cert("root", CA_KEY, "root", CA_KEY, ca=True, days=30)
LEAF_KEY = ec.generate_private_key(ec.SECP256R1())
LEAF = cert("ci-signer", LEAF_KEY, "root", CA_KEY, ca=False)


def pem(cert: x509.Certificate) -> str:
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def envelope(
    *,
    key: Any = LEAF_KEY,
    chain: tuple[x509.Certificate, ...] = (LEAF, CA),
    target: dict[str, Any] | None = None,
    **header: Any,
) -> dict[str, Any]:
    protected = {
        "alg": "ES256",
        "cty": PAYLOAD_TYPE,
        "crit": ["io.cncf.notary.signingScheme"],
        "io.cncf.notary.signingScheme": "notary.x509",
        "io.cncf.notary.signingTime": NOW.isoformat(),
        **header,
    }
    protected_b64 = b64url(json.dumps(protected).encode())
    payload_b64 = b64url(json.dumps({"targetArtifact": target or TARGET}).encode())
    signing_input = f"{protected_b64}.{payload_b64}".encode()
    if isinstance(key, rsa.RSAPrivateKey):
        pss = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32)
        signature = key.sign(signing_input, pss, hashes.SHA256())
    else:
        r, s = decode_dss_signature(key.sign(signing_input, ec.ECDSA(hashes.SHA256())))
        signature = r.to_bytes(32, "big") + s.to_bytes(32, "big")
    x5c = [base64.b64encode(c.public_bytes(serialization.Encoding.DER)).decode() for c in chain]
    return {
        "payload": payload_b64,
        "protected": protected_b64,
        "header": {"x5c": x5c, "io.cncf.notary.signingAgent": "test"},
        "signature": b64url(signature),
    }


def crl(
    issuer: x509.Certificate,
    key: Any,
    serials: Iterable[int] = (),
    *,
    this_update: datetime | None = None,
    next_update: datetime | None = None,
) -> str:
    """A PEM CRL of ``issuer``'s name signed with ``key``, revoking ``serials``."""
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(issuer.subject)
        .last_update(this_update or NOW - timedelta(hours=1))
        .next_update(next_update or NOW + timedelta(days=1))
    )
    for serial in serials:
        revoked = (
            x509.RevokedCertificateBuilder()
            .serial_number(serial)
            .revocation_date(NOW - timedelta(hours=2))
            .build()
        )
        builder = builder.add_revoked_certificate(revoked)
    return builder.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM).decode()
