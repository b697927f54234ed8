"""Notation JWS verification with a Python-made CA and leaf: good and bad envelopes."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from core.signatures_notation import NotationRefusedError, verify_jws
from core.trust_policy import load_anchor
from tests.unit.core.notation_fixtures import (
    CA,
    CA_KEY,
    LEAF_KEY,
    LEAF_SUBJECT,
    NOW,
    TARGET,
    b64url,
    cert,
    pem,
)
from tests.unit.core.notation_fixtures import envelope as _envelope

ANCHOR = load_anchor("team-ca", pem(CA), [LEAF_SUBJECT])


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
    stranger = cert("root", stranger_key, "root", stranger_key, ca=True)
    leaf = cert("ci-signer", LEAF_KEY, "root", stranger_key, ca=False)
    reason = _refused(_envelope(chain=(leaf, stranger)))
    assert reason == "no certificate of the chain is a policy certificate (team-ca)"


def test_an_expired_certificate_is_refused() -> None:
    expired = cert("ci-signer", LEAF_KEY, "root", CA_KEY, ca=False, days=-1)
    assert "is not valid at" in _refused(_envelope(chain=(expired, CA)))


def test_an_untrusted_identity_is_refused() -> None:
    anchor = load_anchor("team-ca", pem(CA), ["x509.subject: C=DE, ST=BE, O=Example, CN=other"])
    assert "is not a trusted identity of 'team-ca'" in _refused(_envelope(), (anchor,))


def test_a_tampered_payload_is_refused() -> None:
    envelope = _envelope()
    other = {"targetArtifact": {**TARGET, "size": 1}}
    envelope["payload"] = b64url(json.dumps(other).encode())
    assert _refused(envelope) == "signature does not verify with the leaf certificate"


def test_an_expired_signature_is_refused() -> None:
    past = (NOW - timedelta(hours=1)).isoformat()
    header: dict[str, Any] = {
        "crit": ["io.cncf.notary.signingScheme", "io.cncf.notary.expiry"],
        "io.cncf.notary.expiry": past,
    }
    envelope = _envelope(**header)
    assert _refused(envelope) == f"signature expired at {past}"
