"""Notation verification levels and offline revocation by CRLs (Python-made CA, leaf, CRLs)."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from core.errors import InvalidInputError
from core.signature_formats import Entry, Limits, Target, verify_entry
from core.signatures_notation import JWS, NotationRefusedError, Signed, verify_jws
from core.trust_policy import compile_policy, parse_document
from tests.unit.core.notation_fixtures import (
    CA,
    CA_KEY,
    LEAF,
    LEAF_KEY,
    LEAF_SUBJECT,
    NOW,
    TARGET,
    b64url,
    cert,
    crl,
    envelope,
    pem,
)

SERIAL = f"{LEAF.serial_number:x}"


def _anchors(*entries: dict[str, Any]) -> Any:
    document = {
        "certificates": [
            {"name": f"ca-{i}", "certificate": pem(CA), "trusted_identities": [LEAF_SUBJECT]}
            | entry
            for i, entry in enumerate(entries)
        ],
        "signatures": {"required_signers": 0},
    }
    return compile_policy(1, "team", 1, document).anchors


def _level(level: str, **override: str) -> dict[str, Any]:
    verification: dict[str, Any] = {"level": level}
    if override:
        verification["override"] = override
    return {"signature_verification": verification}


def _verify(entry: dict[str, Any], signed: dict[str, Any] | None = None) -> Signed:
    return verify_jws(signed or envelope(), _anchors(entry), TARGET)


def _refused(entry: dict[str, Any], signed: dict[str, Any] | None = None) -> str:
    with pytest.raises(NotationRefusedError) as raised:
        _verify(entry, signed)
    return str(raised.value)


REVOKING = {"crls": [crl(CA, CA_KEY, [LEAF.serial_number])]}


def test_a_revoked_leaf_is_refused_naming_its_serial_and_the_crl_issuer() -> None:
    reason = _refused(REVOKING)
    assert reason.startswith(f"certificate 'CN=ci-signer,O=Example,ST=BE,C=DE' (serial {SERIAL})")
    assert "is revoked by the CRL of 'CN=root,O=Example,ST=BE,C=DE'" in reason


def test_a_crl_not_listing_the_leaf_lets_it_verify_without_warnings() -> None:
    signed = _verify({"crls": [crl(CA, CA_KEY, [LEAF.serial_number + 1])]})
    assert signed.anchor.name == "ca-0"
    assert signed.warnings == ()


def test_a_revoked_leaf_under_permissive_counts_with_a_logged_warning() -> None:
    signed = _verify(REVOKING | _level("permissive"))
    assert signed.anchor.name == "ca-0"
    [warning] = signed.warnings
    assert warning.startswith("revocation: certificate ")
    assert f"(serial {SERIAL}) is revoked" in warning


def test_revocation_skipped_by_override_is_not_checked() -> None:
    assert _verify(REVOKING | _level("strict", revocation="skip")).warnings == ()


def test_a_crl_signed_by_another_key_leaves_the_status_unknown_which_strict_refuses() -> None:
    forger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    forged = {"crls": [crl(CA, forger, [])]}
    reason = _refused(forged)
    assert reason == (
        f"revocation status of certificate 'CN=ci-signer,O=Example,ST=BE,C=DE' (serial "
        f"{SERIAL}) is unknown: the CRL of 'CN=root,O=Example,ST=BE,C=DE' is not signed by "
        "its issuer"
    )
    # A forged CRL revoking the leaf does not revoke it either: it is only unknown.
    assert "is unknown" in _refused({"crls": [crl(CA, forger, [LEAF.serial_number])]})
    logged = _verify(forged | _level("strict", revocation="log"))
    assert logged.warnings == (f"revocation: {reason}",)


def test_a_stale_crl_leaves_the_status_unknown() -> None:
    stale = crl(
        CA,
        CA_KEY,
        [],
        this_update=NOW - timedelta(days=3),
        next_update=NOW - timedelta(days=1),
    )
    reason = _refused({"crls": [stale]})
    assert "is unknown: the CRL of 'CN=root,O=Example,ST=BE,C=DE' is not current at" in reason
    future = crl(CA, CA_KEY, [], this_update=NOW + timedelta(hours=1))
    assert "is not current" in _refused({"crls": [future]})
    assert _verify({"crls": [stale]} | _level("permissive")).warnings[0].startswith("revocation:")


def test_an_intermediate_revoked_by_the_roots_crl_refuses_its_leaves() -> None:
    mid_key = ec.generate_private_key(ec.SECP256R1())
    mid = cert("mid", mid_key, "root", CA_KEY, ca=True)
    leaf = cert("ci-signer", LEAF_KEY, "mid", mid_key, ca=False)
    signed = envelope(chain=(leaf, mid, CA))
    assert _verify({}, signed).warnings == ()
    reason = _refused({"crls": [crl(CA, CA_KEY, [mid.serial_number])]}, signed)
    assert reason.startswith("certificate 'CN=mid,O=Example,ST=BE,C=DE'")
    assert "is revoked" in reason
    # The leaf's own issuer publishes a CRL too: both are checked, root to leaf.
    both = {"crls": [crl(CA, CA_KEY, []), crl(mid, mid_key, [leaf.serial_number])]}
    assert _refused(both, signed).startswith("certificate 'CN=ci-signer,")


def test_a_self_signed_signing_certificate_is_checked_against_its_own_crl() -> None:
    alone = cert("ci-signer", LEAF_KEY, "ci-signer", LEAF_KEY, ca=False)
    signed = envelope(chain=(alone,))
    document = {
        "certificates": [
            {
                "name": "self",
                "certificate": pem(alone),
                "crls": [crl(alone, LEAF_KEY, [alone.serial_number])],
            }
        ],
        "signatures": {"required_signers": 0},
    }
    anchors = compile_policy(1, "team", 1, document).anchors
    with pytest.raises(NotationRefusedError, match=f"serial {alone.serial_number:x}.* is revoked"):
        verify_jws(signed, anchors, TARGET)


def _expiring() -> dict[str, Any]:
    past = (NOW - timedelta(hours=1)).isoformat()
    header: dict[str, Any] = {
        "crit": ["io.cncf.notary.signingScheme", "io.cncf.notary.expiry"],
        "io.cncf.notary.expiry": past,
    }
    return envelope(**header)


def test_expiry_is_enforced_by_strict_and_logged_by_permissive() -> None:
    expired = _expiring()
    assert _refused({}, expired).startswith("signature expired at ")
    [warning] = _verify(_level("permissive"), expired).warnings
    assert warning.startswith("expiry: signature expired at ")
    assert _refused(_level("permissive", expiry="enforce"), expired).startswith("signature expired")


def test_an_expired_certificate_is_logged_by_permissive() -> None:
    old = cert("ci-signer", LEAF_KEY, "root", CA_KEY, ca=False, days=-1)
    signed = envelope(chain=(old, CA))
    assert "is not valid at" in _refused({}, signed)
    [warning] = _verify(_level("permissive"), signed).warnings
    assert warning.startswith("authentic timestamp: certificate 'CN=ci-signer")


def test_audit_logs_a_chain_to_no_policy_certificate_and_counts_it() -> None:
    stranger_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    stranger = cert("root", stranger_key, "root", stranger_key, ca=True)
    leaf = cert("ci-signer", LEAF_KEY, "root", stranger_key, ca=False)
    signed = envelope(chain=(leaf, stranger))
    assert _refused(_level("permissive"), signed).startswith("no certificate of the chain")
    audited = _verify(_level("audit"), signed)
    assert audited.anchor.name == "ca-0"
    assert audited.warnings == (
        "authenticity: no certificate of the chain is a policy certificate (ca-0)",
    )
    # Integrity stays enforced under audit.
    tampered = envelope()
    tampered["payload"] = b64url(json.dumps({"targetArtifact": {**TARGET, "size": 1}}).encode())
    assert _refused(_level("audit"), tampered) == (
        "signature does not verify with the leaf certificate"
    )


def test_audit_logs_an_untrusted_identity() -> None:
    other = {"trusted_identities": ["x509.subject: C=DE, ST=BE, O=Example, CN=other"]}
    assert "is not a trusted identity" in _refused(other)
    [warning] = _verify(other | _level("audit")).warnings
    assert warning.startswith("authenticity: leaf subject ")


def test_a_skip_entry_counts_for_no_signer() -> None:
    assert _refused(_level("skip")) == (
        "policy certificate 'ca-0' is at verification level skip: its signatures are not "
        "verified and count for no signer"
    )


def test_logged_failures_are_kept_in_the_findings_facts() -> None:
    blob = json.dumps(envelope()).encode()
    entry = Entry("sha256:" + "ef" * 32, 0, "referrer", JWS, len(blob), blob)
    target = Target(str(TARGET["digest"]), "team/app", True, str(TARGET["mediaType"]), 413)
    anchors = _anchors(REVOKING | _level("permissive"))
    [finding] = verify_entry(entry, target, [], Limits(1 << 20, 32), anchors)
    assert finding.verified
    assert finding.signer == "ca-0"
    assert finding.facts["warnings"][0].startswith("revocation: certificate ")
    [refused] = verify_entry(entry, target, [], Limits(1 << 20, 32), _anchors(REVOKING))
    assert not refused.verified
    assert "is revoked by the CRL" in refused.reason


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"signature_verification": {"level": "lenient"}}, "signature_verification.level"),
        (_level("strict", integrity="log"), "integrity cannot be overridden"),
        (_level("strict", authenticity="skip"), "signature_verification.override.authenticity"),
        (_level("strict", expiry="skip"), "signature_verification.override.expiry"),
        (_level("skip", revocation="log"), "the skip level cannot be customized"),
        ({"crls": ["not a crl"]}, "CRL 0 is not a PEM X509 CRL"),
    ],
)
def test_bad_verification_settings_are_refused(entry: dict[str, Any], message: str) -> None:
    document = {
        "certificates": [{"name": "ca", "certificate": pem(CA)} | entry],
        "signatures": {"required_signers": 0},
    }
    with pytest.raises(InvalidInputError) as raised:
        parse_document(document)
    assert message in str(raised.value)
    assert str(raised.value.field).startswith("certificates.0.")
