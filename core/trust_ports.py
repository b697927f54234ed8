"""What content trust stores, and the port it stores it through (``storage.db.trust``).

Per project: one policy document with a revision that grows on every change. Per image
(repository and subject digest): the verification results of every signature and
attestation found for it, one row per (entry, signer), replaced as a whole each time the
image is verified again, so a reader sees the results of one complete verification.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final, Protocol

from core.signature_formats import Finding
from core.trust_events import SignatureEvent
from core.trust_policy import StoredResult

#: Outbox event of a changed (or removed) trust policy; its project's images are
#: verified again by the trust subscriber.
TRUST_POLICY_CHANGED: Final = "trust.policy_changed"


@dataclass(frozen=True, slots=True)
class StoredPolicy:
    """A project's stored policy document (JSON text) and its revision."""

    project_id: int
    project: str
    revision: int
    document: dict[str, Any]
    updated_by: str
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class ResultRecord:
    """One stored finding of an image (see ``core.signature_formats.Finding``)."""

    id: int
    repository: str
    subject_digest: str
    finding: Finding
    policy_revision: int
    verified_at: datetime


@dataclass(frozen=True, slots=True)
class Subject:
    """An image that signatures or attestations were found for."""

    repository: str
    digest: str


class TrustStore(Protocol):
    """Trust policies and verification results.

    Every method is one transaction. ``replace_results`` swaps an image's results
    atomically, so readers never see half of a verification.
    """

    def policy(self, project_id: int) -> StoredPolicy | None: ...

    def policies(self) -> list[StoredPolicy]:
        """Every project's policy (the pull gate's cache reloads these)."""
        ...

    def save_policy(self, project_id: int, document: dict[str, Any], by: str) -> StoredPolicy:
        """Store the document (revision + 1) and a ``trust.policy_changed`` outbox event."""
        ...

    def delete_policy(self, project_id: int, by: str) -> bool:
        """Remove the policy (with the outbox event); ``False`` when there was none."""
        ...

    def replace_results(
        self,
        project_id: int,
        subject: Subject,
        findings: Sequence[Finding],
        revision: int,
        now: datetime,
        announce: SignatureEvent | None = None,
    ) -> None:
        """Swap the image's results for ``findings``.

        ``announce`` (``core.trust_events``) is written to the outbox in the same
        transaction when the image has findings or had results before, so an image that
        never had signature material is not announced.
        """
        ...

    def results(self, repository: str, digest: str) -> list[ResultRecord]:
        """Every stored finding of an image, verified or not, in entry order."""
        ...

    def verified(self, repository: str, digest: str) -> list[StoredResult]:
        """The verified signers of an image: one indexed read (the pull gate's)."""
        ...

    def parents(self, repository: str, digest: str) -> list[str]:
        """Digests of the indexes of the repository that list this manifest."""
        ...

    def subjects_with_artifact(self, repository: str, artifact_digest: str) -> list[Subject]:
        """Images of the repository whose stored results came from this artifact."""
        ...

    def subjects(self, project_id: int, limit: int) -> list[Subject]:
        """Images of the project that have results or signature material, up to ``limit``."""
        ...
