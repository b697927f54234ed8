"""The registry's notation signatures: a stable certificate, an envelope notation accepts."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID

from core.notation_signing import (
    THUMBPRINT_ANNOTATION,
    certificate_pem,
    jws_envelope,
    signature_manifest,
    signed_by,
    thumbprint,
)
from core.promotion_signing import new_private_key
from core.signatures_notation import NOTARY_SIGNATURE, NotationRefusedError, verify_jws
from core.trust_policy import load_anchor

CREATED = "2026-12-03T10:00:00.123456+00:00"
SIGNED = datetime(2026, 12, 3, 11, 0, tzinfo=UTC)
TARGET = {
    "mediaType": "application/vnd.oci.image.manifest.v1+json",
    "digest": "sha256:" + "ab" * 32,
    "size": 1234,
}


def test_the_certificate_is_the_same_every_time_and_a_code_signing_one() -> None:
    private, _ = new_private_key()
    pem = certificate_pem(private, 7, 2, CREATED)
    assert certificate_pem(private, 7, 2, CREATED) == pem
    cert = x509.load_pem_x509_certificate(pem.encode())
    assert cert.subject == cert.issuer
    assert (
        cert.subject.rfc4514_string()
        == "CN=Moorage project 7 signing key v2,O=Moorage,ST=Moorage,C=ZZ"
    )
    assert cert.not_valid_before_utc == datetime(2026, 12, 3, 10, 0, tzinfo=UTC)
    usage = cert.extensions.get_extension_for_class(x509.KeyUsage)
    assert usage.critical
    assert usage.value.digital_signature
    assert not usage.value.key_cert_sign
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.CODE_SIGNING]
    other, _ = new_private_key()
    assert certificate_pem(other, 7, 2, CREATED) != pem


def test_the_envelope_verifies_for_its_target_only() -> None:
    private, _ = new_private_key()
    pem = certificate_pem(private, 7, 1, CREATED)
    envelope = json.loads(jws_envelope(private, pem, TARGET, SIGNED))
    anchor = load_anchor("registry", pem, ["*"])
    signed = verify_jws(envelope, [anchor], TARGET)
    assert signed.anchor.name == "registry"
    assert "CN=Moorage project 7 signing key v1" in signed.leaf_subject
    with pytest.raises(NotationRefusedError):
        verify_jws(envelope, [anchor], TARGET | {"digest": "sha256:" + "cd" * 32})
    stranger = load_anchor("other", certificate_pem(new_private_key()[0], 8, 1, CREATED), ["*"])
    with pytest.raises(NotationRefusedError):
        verify_jws(envelope, [stranger], TARGET)


def test_the_referrer_names_its_subject_certificate_and_key() -> None:
    private, _ = new_private_key()
    pem = certificate_pem(private, 7, 1, CREATED)
    envelope = jws_envelope(private, pem, TARGET, SIGNED)
    manifest = json.loads(signature_manifest(envelope, TARGET, pem, "sha256:key", SIGNED))
    assert manifest["artifactType"] == NOTARY_SIGNATURE
    assert manifest["subject"] == TARGET
    assert json.loads(manifest["annotations"][THUMBPRINT_ANNOTATION]) == [thumbprint(pem)]
    assert signed_by(manifest, "sha256:key")
    assert not signed_by(manifest, "sha256:other")
    assert not signed_by({**manifest, "artifactType": "application/x"}, "sha256:key")
