"""The outbox event an image's verification is announced by (``signature.verified``/``refused``).

The trust store writes it in the transaction that replaces the image's results
(``core.trust_ports.TrustStore.replace_results``), so a subscriber sees the verdict exactly
when the results behind it are visible. Every verification of an image that has (or had)
signature material is announced, since its verdict may have changed: a new signature, a
deleted one, a changed policy.

The verdict is the project policy's (``core.trust_policy.evaluate``) when the project has
one; without a policy an image is ``verified`` when at least one of its signatures or
attestations verified.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from core import events
from core.signature_formats import Finding
from core.trust_policy import StoredResult, TrustPolicy, Verdict, evaluate

#: Why an image without a policy is refused.
NOTHING_VERIFIED: Final = "no signature or attestation verified"


@dataclass(frozen=True, slots=True)
class SignatureEvent:
    """An outbox event of a verification: its kind and JSON data (``details``)."""

    kind: str
    data: str


def signature_event(findings: Sequence[Finding], policy: TrustPolicy | None) -> SignatureEvent:
    """The event announcing the verdict of an image whose findings are ``findings``.

    Data: ``verdict`` (``verified`` or ``refused``), ``policy_revision`` (``None``
    without a policy), ``entries`` (findings, verified or not), ``verified`` (verified
    findings), ``signers`` (their signer names) and, of a refused image, the ``reason``.
    """
    verified = [f for f in findings if f.verified]
    if policy is not None:
        verdict = evaluate(policy, [_stored(f) for f in verified])
    else:
        verdict = Verdict(allowed=bool(verified), failed=None if verified else NOTHING_VERIFIED)
    details: dict[str, object] = {
        "verdict": "verified" if verdict.allowed else "refused",
        "policy_revision": None if policy is None else policy.revision,
        "entries": len(findings),
        "verified": len(verified),
        "signers": sorted({f.signer for f in verified if f.signer}),
    }
    if not verdict.allowed:
        details["reason"] = verdict.failed or "refused"
    kind = events.SIGNATURE_VERIFIED if verdict.allowed else events.SIGNATURE_REFUSED
    return SignatureEvent(kind, json.dumps(details, separators=(",", ":")))


def _stored(finding: Finding) -> StoredResult:
    """A verified finding as the policy reads it back from the store."""
    return StoredResult(
        str(finding.kind), finding.fingerprint or "", finding.predicate_type, finding.facts
    )
