"""Notation JWS verification with a Python-made CA and leaf: good and bad envelopes."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from core.signatures_notation import PAYLOAD_TYPE, NotationRefusedError, verify_jws
from core.trust_policy import load_anchor

NOW = datetime.now(UTC)
TARGET = {
    "digest": "sha256:" + "ab" * 32,
    "mediaType": "application/vnd.oci.image.manifest.v1+json",
    "size": 413,
}
LEAF_SUBJECT = "x509.subject: C=DE, ST=BE, O=Example, CN=ci-signer"


def _name(cn: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "DE"),
            x509.NameAttribute(NameOID.STATE_OR_PROVINCE_NAME, "BE"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Example"),
            x509.NameAttribute(NameOID.COMMON_NAME, cn),
        ]
    )


def _cert(
    subject: str, key: Any, issuer: str, issuer_key: Any, *, ca: bool, days: int = 1
) -> x509.Certificate:
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(_name(issuer))
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
                crl_sign=False,
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
CA = _cert("root", CA_KEY, "root", CA_KEY, ca=True, days=30)
LEAF_KEY = ec.generate_private_key(ec.SECP256R1())
LEAF = _cert("ci-signer", LEAF_KEY, "root", CA_KEY, ca=False)


def _pem(cert: x509.Certificate) -> str:
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _envelope(
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
    protected_b64 = _b64url(json.dumps(protected).encode())
    payload_b64 = _b64url(json.dumps({"targetArtifact": target or TARGET}).encode())
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
        "signature": _b64url(signature),
    }


ANCHOR = load_anchor("team-ca", _pem(CA), [LEAF_SUBJECT])


def test_a_signature_chaining_to_the_policy_certificate_verifies() -> None:
    signed = verify_jws(_envelope(), [ANCHOR], TARGET)
    assert signed.anchor.name == "team-ca"
    assert "CN=ci-signer" in signed.leaf_subject


def _refused(envelope: dict[str, Any], anchors: Any = (ANCHOR,), target: Any = None) -> str:
    with pytest.raises(NotationRefusedError) as raised:
        verify_jws(envelope, anchors, target or TARGET)
    return str(raised.value)


def test_unknown_critical_headers_are_refused() -> None:
    envelope = _envelope(crit=["io.cncf.notary.signingScheme", "io.example.new"])
    assert _refused(envelope) == "unknown critical header 'io.example.new'"


def test_an_alg_other_than_the_leaf_keys_is_refused() -> None:
    assert _refused(_envelope(alg="PS256")) == "alg 'PS256' does not match the ES256 leaf key"


def test_a_signature_over_another_manifest_is_refused() -> None:
    other = {**TARGET, "digest": "sha256:" + "cd" * 32}
    assert _refused(_envelope(target=other)).startswith("signature is over digest 'sha256:cdcd")


def test_a_chain_to_another_root_is_refused() -> None:
    stranger_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    stranger = _cert("root", stranger_key, "root", stranger_key, ca=True)
    leaf = _cert("ci-signer", LEAF_KEY, "root", stranger_key, ca=False)
    reason = _refused(_envelope(chain=(leaf, stranger)))
    assert reason == "no certificate of the chain is a policy certificate (team-ca)"


def test_an_expired_certificate_is_refused() -> None:
    expired = _cert("ci-signer", LEAF_KEY, "root", CA_KEY, ca=False, days=-1)
    assert "is not valid at" in _refused(_envelope(chain=(expired, CA)))


def test_an_untrusted_identity_is_refused() -> None:
    anchor = load_anchor("team-ca", _pem(CA), ["x509.subject: C=DE, ST=BE, O=Example, CN=other"])
    assert "is not a trusted identity of 'team-ca'" in _refused(_envelope(), (anchor,))


def test_a_tampered_payload_is_refused() -> None:
    envelope = _envelope()
    other = {"targetArtifact": {**TARGET, "size": 1}}
    envelope["payload"] = _b64url(json.dumps(other).encode())
    assert _refused(envelope) == "signature does not verify with the leaf certificate"


def test_an_expired_signature_is_refused() -> None:
    past = (NOW - timedelta(hours=1)).isoformat()
    header: dict[str, Any] = {
        "crit": ["io.cncf.notary.signingScheme", "io.cncf.notary.expiry"],
        "io.cncf.notary.expiry": past,
    }
    envelope = _envelope(**header)
    assert _refused(envelope) == f"signature expired at {past}"
