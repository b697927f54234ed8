"""Verification of cosign signatures and in-toto attestations, good and bad input."""

from __future__ import annotations

import base64
import json
from dataclasses import replace

import pytest

from core.signature_formats import (
    COSIGN_SIGN,
    SIGNATURE_ANNOTATION,
    SLSA_V1,
    Finding,
    Format,
    Kind,
    Limits,
    Target,
    verify_entry,
)
from core.signatures import TrustKey, load_key
from tests.unit.core.trust_fixtures import (
    BUILDER,
    OTHER,
    REPOSITORY,
    SOURCE,
    SUBJECT,
    PrivateKey,
    bundle_entry,
    dsse_entry,
    new_key,
    public_pem,
    simple_entry,
    simple_payload,
    statement,
)

LIMITS = Limits(envelope_max_bytes=64 * 1024, json_max_depth=64)
TARGET = Target(SUBJECT, REPOSITORY)


def _key(private: PrivateKey, name: str = "ci") -> TrustKey:
    return load_key(name, public_pem(private))


def _one(findings: list[Finding]) -> Finding:
    assert len(findings) == 1
    return findings[0]


@pytest.mark.parametrize("kind", ["ecdsa", "rsa", "ed25519"])
def test_a_simple_signing_signature_verifies_with_its_key(kind: str) -> None:
    private = new_key(kind)
    finding = _one(verify_entry(simple_entry(private), TARGET, [_key(private)], LIMITS))
    assert finding.verified, finding.reason
    assert finding.signer == "ci"
    assert finding.kind is Kind.SIGNATURE
    assert finding.format is Format.SIMPLE_SIGNING
    assert finding.facts["identity"] == f"127.0.0.1:5000/{REPOSITORY}"


def test_two_policy_entries_of_one_key_are_one_signer() -> None:
    private = new_key()
    keys = [_key(private, "a"), _key(private, "b")]
    assert len(verify_entry(simple_entry(private), TARGET, keys, LIMITS)) == 1


def test_a_signature_over_another_digest_is_refused() -> None:
    private = new_key()
    entry = simple_entry(private, simple_payload(digest=OTHER))
    finding = _one(verify_entry(entry, TARGET, [_key(private)], LIMITS))
    assert not finding.verified
    assert finding.reason == f"signature is over {OTHER}, not the subject {SUBJECT}"


def test_the_digest_key_is_read_case_insensitively() -> None:
    private = new_key()
    payload = simple_payload().replace(b"docker-manifest-digest", b"Docker-manifest-digest")
    assert _one(
        verify_entry(simple_entry(private, payload), TARGET, [_key(private)], LIMITS)
    ).verified


@pytest.mark.parametrize(
    "reference", ["127.0.0.1:5000/other/app", "registry.example.test/team/app2:v1", "team/other"]
)
def test_a_signature_copied_from_another_repository_or_project_is_refused(reference: str) -> None:
    private = new_key()
    entry = simple_entry(private, simple_payload(reference=reference))
    finding = _one(verify_entry(entry, TARGET, [_key(private)], LIMITS))
    assert not finding.verified
    assert finding.reason.startswith("signed for repository ")
    assert "(copied from elsewhere)" in finding.reason
    unbound = replace(TARGET, bind_repository=False)
    assert _one(verify_entry(entry, unbound, [_key(private)], LIMITS)).verified


def test_a_signature_by_another_key_is_refused() -> None:
    signer, trusted = new_key(), new_key("ed25519")
    finding = _one(verify_entry(simple_entry(signer), TARGET, [_key(trusted, "ci")], LIMITS))
    assert not finding.verified
    assert finding.reason == "signature does not verify with any policy key (ci)"


def test_a_tampered_payload_is_refused() -> None:
    private = new_key()
    original = simple_payload()
    tampered = original.replace(b'"optional": null', b'"optional": {"x": "y"}')
    entry = simple_entry(private, tampered, signed=original)
    finding = _one(verify_entry(entry, TARGET, [_key(private)], LIMITS))
    assert not finding.verified
    assert finding.reason == "signature does not verify with any policy key (ci)"


def test_an_envelope_over_the_limit_is_refused_unread() -> None:
    private = new_key()
    entry = replace(simple_entry(private), size=LIMITS.envelope_max_bytes + 1, blob=None)
    finding = _one(verify_entry(entry, TARGET, [_key(private)], LIMITS))
    assert not finding.verified
    assert finding.reason == (
        f"envelope of {LIMITS.envelope_max_bytes + 1} bytes exceeds the limit of "
        f"{LIMITS.envelope_max_bytes} bytes"
    )
    big = dsse_entry(private, statement(predicate={"pad": "x" * LIMITS.envelope_max_bytes}))
    assert "exceeds the limit" in _one(verify_entry(big, TARGET, [_key(private)], LIMITS)).reason


def test_a_payload_nested_ten_thousand_levels_is_refused() -> None:
    private = new_key()
    nested = b'{"critical": ' + b"[" * 10_000 + b"]" * 10_000 + b"}"
    limits = Limits(envelope_max_bytes=1024 * 1024, json_max_depth=64)
    finding = _one(verify_entry(simple_entry(private, nested), TARGET, [_key(private)], limits))
    assert not finding.verified
    assert finding.reason == "payload nests JSON deeper than 64 levels"
    deep = dsse_entry(private, b'{"a":' * 10_000 + b"1" + b"}" * 10_000)
    reason = _one(verify_entry(deep, TARGET, [_key(private)], limits)).reason
    assert reason == "statement nests JSON deeper than 64 levels"


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (simple_payload(extra="x"), "unknown critical field critical.extra"),
        (
            simple_payload().replace(b'"type"', b'"image2": {}, "type"'),
            "unknown critical field critical.image2",
        ),
        (
            simple_payload().replace(
                b'"docker-manifest-digest"', b'"x": 1, "docker-manifest-digest"'
            ),
            "unknown critical field critical.image.x",
        ),
        (json.dumps({"critical": {}, "extra": 1}).encode(), "unknown payload field 'extra'"),
    ],
)
def test_unknown_critical_fields_are_refused(payload: bytes, reason: str) -> None:
    private = new_key()
    finding = _one(verify_entry(simple_entry(private, payload), TARGET, [_key(private)], LIMITS))
    assert not finding.verified
    assert finding.reason == reason


def test_a_layer_without_its_signature_annotation_is_refused() -> None:
    private = new_key()
    entry = simple_entry(private)
    entry = replace(entry, annotations={SIGNATURE_ANNOTATION: ""})
    assert _one(verify_entry(entry, TARGET, [_key(private)], LIMITS)).reason == (
        "signature annotation is missing"
    )


def test_no_policy_key_leaves_a_signature_unverified() -> None:
    finding = _one(verify_entry(simple_entry(new_key()), TARGET, [], LIMITS))
    assert not finding.verified
    assert finding.reason == "no key of the trust policy to verify with"


@pytest.mark.parametrize("kind", ["ecdsa", "rsa", "ed25519"])
def test_a_slsa_provenance_attestation_verifies_with_its_builder_and_source(kind: str) -> None:
    private = new_key(kind)
    finding = _one(verify_entry(dsse_entry(private), TARGET, [_key(private)], LIMITS))
    assert finding.verified, finding.reason
    assert finding.kind is Kind.ATTESTATION
    assert finding.predicate_type == SLSA_V1
    assert finding.facts["builder_id"] == BUILDER
    assert SOURCE in finding.facts["sources"]


def test_an_attestation_about_another_image_is_refused() -> None:
    private = new_key()
    finding = _one(
        verify_entry(dsse_entry(private, statement(OTHER)), TARGET, [_key(private)], LIMITS)
    )
    assert not finding.verified
    assert finding.reason == f"statement is over {OTHER}, not the subject {SUBJECT}"


def test_a_provenance_without_a_builder_is_refused() -> None:
    private = new_key()
    entry = dsse_entry(private, statement(predicate={"buildDefinition": {}, "runDetails": {}}))
    finding = _one(verify_entry(entry, TARGET, [_key(private)], LIMITS))
    assert not finding.verified
    assert finding.reason == "SLSA provenance has no runDetails.builder.id"


def test_a_tampered_envelope_payload_is_refused() -> None:
    private = new_key()
    entry = dsse_entry(private)
    document = json.loads(entry.blob or b"")
    document["payload"] = base64.b64encode(
        statement(predicate={"runDetails": {"builder": {"id": "evil"}}})
    ).decode()
    body = json.dumps(document).encode()
    finding = _one(
        verify_entry(replace(entry, blob=body, size=len(body)), TARGET, [_key(private)], LIMITS)
    )
    assert not finding.verified
    assert finding.reason == "signature does not verify with any policy key (ci)"


def test_a_key_based_bundle_is_an_image_signature() -> None:
    private = new_key()
    finding = _one(verify_entry(bundle_entry(private), TARGET, [_key(private)], LIMITS))
    assert finding.verified, finding.reason
    assert finding.kind is Kind.SIGNATURE
    assert finding.format is Format.BUNDLE
    assert finding.predicate_type == COSIGN_SIGN


def test_a_keyless_bundle_with_a_broken_certificate_is_refused() -> None:
    """A policy key does not stand in for a bundle's certificate (keyless: its own tests)."""
    private = new_key()
    finding = _one(
        verify_entry(bundle_entry(private, keyless=True), TARGET, [_key(private)], LIMITS)
    )
    assert not finding.verified
    assert finding.reason == "bundle's certificate is not a DER certificate"
