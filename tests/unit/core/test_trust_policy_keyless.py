"""Keyless trusted roots in a trust policy: the document, and signers counted by identity."""

from __future__ import annotations

import json
from typing import Any

import pytest
from cryptography.hazmat.primitives.serialization import Encoding

from core.errors import InvalidInputError
from core.signature_formats import BUNDLE_V03, Entry, Limits, Target, verify_entry
from core.trust_policy import StoredResult, TrustPolicy, compile_policy, evaluate, parse_document
from tests.unit.core.sigstore_fixtures import (
    EMAIL,
    ISSUER,
    Fulcio,
    Log,
    dsse_bundle,
    keyless_document,
    new_fulcio,
    new_leaf,
)
from tests.unit.core.trust_fixtures import REPOSITORY, SUBJECT, new_key, public_pem

FULCIO: Fulcio = new_fulcio()
LOG = Log()
OTHER_EMAIL = "second@example.test"
LIMITS = Limits(envelope_max_bytes=256 * 1024, json_max_depth=64)


def _policy(identities: list[dict[str, str]], **rules: Any) -> TrustPolicy:
    document = {
        "keys": [{"name": "ci", "public_key": public_pem(new_key())}],
        "keyless": [keyless_document("gha", FULCIO, LOG, identities)],
        **rules,
    }
    return compile_policy(1, "team", 1, document)


def _signed(policy: TrustPolicy, email: str) -> StoredResult:
    """A signature by ``email`` verified under the policy, as the store gives it back."""
    key, cert = new_leaf(FULCIO, email=email)
    body = json.dumps(dsse_bundle(key, cert, LOG)).encode()
    entry = Entry("sha256:" + "55" * 32, 0, "referrer", BUNDLE_V03, len(body), body)
    [finding] = verify_entry(
        entry, Target(SUBJECT, REPOSITORY), list(policy.keys), LIMITS, (), policy.keyless
    )
    assert finding.verified, finding.reason
    assert finding.fingerprint is not None
    return StoredResult(str(finding.kind), finding.fingerprint, None, finding.facts)


def test_distinct_keyless_identities_are_distinct_signers() -> None:
    identities = [{"issuer": ISSUER, "subject_regexp": r".*@example\.test"}]
    policy = _policy(identities, signatures={"required_signers": 2, "signers": ["gha"]})
    first, again = _signed(policy, EMAIL), _signed(policy, EMAIL)
    verdict = evaluate(policy, [first, again])
    assert verdict.failed == (
        "signatures: 1 of 2 required distinct signers verified (trusted: gha)"
    )
    assert evaluate(policy, [first, _signed(policy, OTHER_EMAIL)]).allowed


def test_a_keyless_signer_counts_only_for_its_root() -> None:
    identities = [{"issuer": ISSUER, "subject": EMAIL}]
    policy = _policy(identities, signatures={"required_signers": 1, "signers": ["ci"]})
    assert not evaluate(policy, [_signed(policy, EMAIL)]).allowed
    named = _policy(identities, signatures={"required_signers": 1, "signers": ["gha"]})
    result = _signed(named, EMAIL)
    assert evaluate(named, [result]).allowed
    # the root's configuration changed (another identity): earlier results do not count
    changed = _policy(
        [{"issuer": ISSUER, "subject": OTHER_EMAIL}],
        signatures={"required_signers": 1, "signers": ["gha"]},
    )
    assert not evaluate(changed, [result]).allowed


def test_a_keyless_root_can_satisfy_an_attestation_rule() -> None:
    identities = [{"issuer": ISSUER, "subject": EMAIL}]
    rule = {"predicate_type": "https://example.test/p", "signers": ["gha"]}
    policy = _policy(identities, signatures={"required_signers": 0}, attestations=[rule])
    fingerprint = _signed(policy, EMAIL).fingerprint
    attested = StoredResult("attestation", fingerprint, "https://example.test/p")
    assert evaluate(policy, [attested]).allowed


def _document(**changes: Any) -> dict[str, Any]:
    root = keyless_document("gha", FULCIO, LOG) | changes
    return {"keyless": [root]}


@pytest.mark.parametrize(
    ("document", "field", "message"),
    [
        (
            _document(identities=[{"issuer": ISSUER, "issuer_regexp": ".*", "subject": EMAIL}]),
            "keyless.0.identities.0",
            "exactly one of issuer and issuer_regexp",
        ),
        (
            _document(identities=[{"issuer": ISSUER}]),
            "keyless.0.identities.0",
            "exactly one of subject and subject_regexp",
        ),
        (
            _document(identities=[{"issuer": ISSUER, "subject_regexp": "(unclosed"}]),
            "keyless.0.identities.0",
            "subject_regexp is not a regular expression",
        ),
        (_document(certificate_chain="nope"), "keyless.0", "is not PEM certificates"),
        (
            _document(certificate_chain=FULCIO.intermediate.public_bytes(Encoding.PEM).decode()),
            "keyless.0",
            "holds no self-signed root",
        ),
        (_document(log_keys=["nope"]), "keyless.0", "log key 0 is unusable"),
        (_document(log_keys=[]), "keyless.0.log_keys", "at least 1"),
        (
            {**_document(), "signatures": {"required_signers": 2, "signers": ["gha"]}},
            "signatures.required_signers",
            "2 signers required but only 1",
        ),
    ],
)
def test_bad_keyless_entries_name_the_field(
    document: dict[str, Any], field: str, message: str
) -> None:
    with pytest.raises(InvalidInputError) as raised:
        parse_document(document)
    assert raised.value.field == field
    assert message in str(raised.value)


def test_a_pattern_identity_can_require_several_signers() -> None:
    identities = [{"issuer": ISSUER, "subject_regexp": ".*"}]
    document = parse_document(
        {**_document(identities=identities), "signatures": {"required_signers": 3}}
    )
    assert document.keyless[0].identities[0].subject_regexp == ".*"


def test_a_keyless_name_may_not_repeat_a_key_name() -> None:
    document = _document()
    document["keys"] = [{"name": "gha", "public_key": public_pem(new_key())}]
    with pytest.raises(InvalidInputError, match="share a name"):
        parse_document(document)
