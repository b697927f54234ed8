"""The verdict an image's verification is announced with (``signature.verified``/``refused``)."""

from __future__ import annotations

import json

from core import events
from core.signature_formats import Finding, Format, Kind
from core.trust_events import NOTHING_VERIFIED, signature_event
from core.trust_policy import compile_policy
from tests.unit.core.trust_fixtures import new_key, public_pem

DIGEST = "sha256:" + "ab" * 32


def _finding(signer: str | None, fingerprint: str | None, *, verified: bool) -> Finding:
    return Finding(
        artifact_digest=DIGEST,
        index=0,
        location="tag",
        kind=Kind.SIGNATURE,
        format=Format.SIMPLE_SIGNING,
        predicate_type=None,
        signer=signer,
        fingerprint=fingerprint,
        verified=verified,
        reason="" if verified else "no trusted key verifies the signature",
    )


def test_without_a_policy_one_verified_signature_is_enough() -> None:
    found = signature_event([_finding("ci", "sha256:1", verified=True)], None)
    assert found.kind == events.SIGNATURE_VERIFIED
    data = json.loads(found.data)
    assert data == {
        "verdict": "verified",
        "policy_revision": None,
        "entries": 1,
        "verified": 1,
        "signers": ["ci"],
    }


def test_without_a_policy_nothing_verified_is_refused() -> None:
    found = signature_event([_finding(None, None, verified=False)], None)
    assert found.kind == events.SIGNATURE_REFUSED
    data = json.loads(found.data)
    assert (data["verdict"], data["verified"], data["reason"]) == ("refused", 0, NOTHING_VERIFIED)


def test_the_policy_decides_and_says_what_failed() -> None:
    ci, release = new_key(), new_key()
    document = {
        "keys": [
            {"name": "ci", "public_key": public_pem(ci)},
            {"name": "release", "public_key": public_pem(release)},
        ],
        "signatures": {"required_signers": 2},
    }
    policy = compile_policy(1, "team", 3, document)
    one = [_finding("ci", policy.keys[0].fingerprint, verified=True)]
    refused = signature_event(one, policy)
    assert refused.kind == events.SIGNATURE_REFUSED
    data = json.loads(refused.data)
    assert data["policy_revision"] == 3
    assert data["signers"] == ["ci"]
    assert "1 of 2 required distinct signers" in data["reason"]
    both = [*one, _finding("release", policy.keys[1].fingerprint, verified=True)]
    assert signature_event(both, policy).kind == events.SIGNATURE_VERIFIED
