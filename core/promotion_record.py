"""The promotion record: a verification summary attached to the promoted image.

An in-toto Statement v1 whose subject is the promoted image (target repository and
digest) and whose predicate is a SLSA Verification Summary v1
(``https://slsa.dev/verification_summary/v1``): the verifier (Moorage), when the
gates were decided, the resource, the gates as the policy and ``PASSED``. It is stored
as an OCI artifact (``artifactType`` ``application/vnd.in-toto+json``, the statement as
its one layer, the empty config) with the image as its ``subject``, so the referrers API
lists it. It is **unsigned** (registry-side signing is not built yet): a record, not
evidence for a verifier that does not trust the registry.

The bytes are a pure function of the request, the gates' results and the decision time
the workflow fixed, so a retried copy stores the same artifact (same digest) once.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Final

from core.digests import Digest
from core.promotion import GateResult, PromotionRequest

VSA_PREDICATE: Final = "https://slsa.dev/verification_summary/v1"
STATEMENT_TYPE: Final = "https://in-toto.io/Statement/v1"
RECORD_ARTIFACT_TYPE: Final = "application/vnd.in-toto+json"
EMPTY_CONFIG_TYPE: Final = "application/vnd.oci.empty.v1+json"
EMPTY_CONFIG: Final = b"{}"
VERIFIER_ID: Final = "https://moorage.dev/promotion/v1"


@dataclass(frozen=True, slots=True)
class PromotionRecord:
    """The record's blobs and manifest (exact bytes)."""

    statement: bytes
    manifest: bytes

    @property
    def blobs(self) -> dict[str, bytes]:
        return {
            str(Digest.of(EMPTY_CONFIG)): EMPTY_CONFIG,
            str(Digest.of(self.statement)): self.statement,
        }


def _dumps(value: object) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":")).encode()


def build_record(
    request: PromotionRequest,
    image_media_type: str,
    image_size: int,
    gates: list[GateResult],
    decided_at: str,
) -> PromotionRecord:
    """The record of ``request`` (see the module docstring)."""
    algorithm, _, hex_ = request.source_digest.partition(":")
    statement = _dumps(
        {
            "_type": STATEMENT_TYPE,
            "subject": [{"name": request.target_repository, "digest": {algorithm: hex_}}],
            "predicateType": VSA_PREDICATE,
            "predicate": {
                "verifier": {"id": VERIFIER_ID},
                "timeVerified": decided_at,
                "resourceUri": (
                    f"oci://{request.target_repository}:{request.target_tag}"
                    f"@{request.source_digest}"
                ),
                "policy": {"uri": f"{VERIFIER_ID}#gates"},
                "inputAttestations": [],
                "verificationResult": "PASSED",
                "verifiedLevels": [f"MOORAGE_GATE_{g.gate.upper()}" for g in gates if g.passed],
                "moorage": {
                    "promotion": request.id,
                    "source": f"{request.source_repository}@{request.source_digest}",
                    "requestedBy": request.requested_by,
                    "gates": [{"gate": g.gate, "reason": g.reason} for g in gates],
                },
            },
        }
    )
    manifest = _dumps(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "artifactType": RECORD_ARTIFACT_TYPE,
            "config": {
                "mediaType": EMPTY_CONFIG_TYPE,
                "digest": str(Digest.of(EMPTY_CONFIG)),
                "size": len(EMPTY_CONFIG),
            },
            "layers": [
                {
                    "mediaType": RECORD_ARTIFACT_TYPE,
                    "digest": str(Digest.of(statement)),
                    "size": len(statement),
                    "annotations": {"in-toto.io/predicate-type": VSA_PREDICATE},
                }
            ],
            "subject": {
                "mediaType": image_media_type,
                "digest": request.source_digest,
                "size": image_size,
            },
            "annotations": {"dev.moorage.promotion": request.id},
        }
    )
    return PromotionRecord(statement, manifest)
