"""Trust policy documents and the pull verdict from stored results."""

from __future__ import annotations

from typing import Any

import pytest

from core.errors import InvalidInputError
from core.signature_formats import SLSA_V1
from core.trust_policy import StoredResult, compile_policy, evaluate, parse_document
from tests.unit.core.trust_fixtures import BUILDER, SOURCE, new_key, public_pem

CI, RELEASE, OTHER = new_key(), new_key("ed25519"), new_key("rsa")


def _policy(**document: Any) -> Any:
    keys = [
        {"name": "ci", "public_key": public_pem(CI)},
        {"name": "release", "public_key": public_pem(RELEASE)},
    ]
    return compile_policy(1, "team", 1, {"keys": keys, **document})


def _signed_by(*names: str, policy: Any) -> list[StoredResult]:
    by_name = {k.name: k.fingerprint for k in policy.keys}
    return [StoredResult("signature", by_name[n], None) for n in names]


def test_distinct_signers_are_counted_not_signatures() -> None:
    policy = _policy(signatures={"required_signers": 2})
    twice = _signed_by("ci", "ci", policy=policy)
    verdict = evaluate(policy, twice)
    assert not verdict.allowed
    assert verdict.failed == (
        "signatures: 1 of 2 required distinct signers verified (trusted: ci, release)"
    )
    assert evaluate(policy, _signed_by("ci", "release", policy=policy)).allowed


def test_only_the_listed_signers_count() -> None:
    policy = _policy(signatures={"required_signers": 1, "signers": ["release"]})
    assert not evaluate(policy, _signed_by("ci", policy=policy)).allowed
    assert evaluate(policy, _signed_by("release", policy=policy)).allowed


def test_a_required_provenance_must_name_the_builder_and_source() -> None:
    rule = {
        "predicate_type": SLSA_V1,
        "signers": ["ci"],
        "builder_id": BUILDER,
        "source": "git+https://git.example.test/team/**",
    }
    policy = _policy(signatures={"required_signers": 0}, attestations=[rule])
    ci = policy.keys[0].fingerprint
    good = StoredResult("attestation", ci, SLSA_V1, {"builder_id": BUILDER, "sources": [SOURCE]})
    assert evaluate(policy, [good]).allowed
    other_builder = StoredResult(
        "attestation", ci, SLSA_V1, {"builder_id": "x", "sources": [SOURCE]}
    )
    verdict = evaluate(policy, [other_builder])
    assert verdict.failed == (
        f"attestation required: {SLSA_V1}, builder {BUILDER}, "
        "source git+https://git.example.test/team/** (none verified)"
    )
    other_source = StoredResult(
        "attestation", ci, SLSA_V1, {"builder_id": BUILDER, "sources": ["git+https://evil/x"]}
    )
    assert not evaluate(policy, [other_source]).allowed
    release = policy.keys[1].fingerprint
    wrong_signer = StoredResult(
        "attestation", release, SLSA_V1, {"builder_id": BUILDER, "sources": [SOURCE]}
    )
    assert not evaluate(policy, [wrong_signer]).allowed


@pytest.mark.parametrize(
    ("document", "field"),
    [
        ({"keys": [{"name": "a", "public_key": "nope"}]}, "keys.0.public_key"),
        ({"signatures": {"signers": ["ghost"]}}, "signatures.signers"),
        ({"unknown": 1}, "unknown"),
        ({"signatures": {"required_signers": 3}}, "signatures.required_signers"),
        (
            {"attestations": [{"predicate_type": SLSA_V1, "signers": ["x"]}]},
            "attestations.0.signers",
        ),
    ],
)
def test_bad_documents_name_the_field(document: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidInputError) as raised:
        parse_document(document)
    assert raised.value.field == field


def test_a_short_rsa_key_is_refused() -> None:
    from cryptography.hazmat.primitives.asymmetric import rsa

    small = rsa.generate_private_key(public_exponent=65537, key_size=1024)  # noqa: S505 - the point of the test
    with pytest.raises(InvalidInputError, match="at least 2048 bits"):
        parse_document({"keys": [{"name": "a", "public_key": public_pem(small)}]})
