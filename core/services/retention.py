"""Retention runs: evaluate a project's rules and delete what no rule retains.

Deletion goes through ``ManifestService`` (by digest), so each deletion writes its
outbox event and GC reviews and is checked against immutability in its own write
transaction; a tag made immutable between the plan and the deletion still wins. A
retried run recomputes the plan from the current rows, so repeating it is harmless.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from core.digests import Digest
from core.errors import NotFoundError, OCIErrorCode, RegistryError
from core.names import Reference
from core.policies import ImmutabilityPolicy
from core.ports import Metadata
from core.records import RepositoryRecord
from core.retention import Artifact, Decision, RetentionPolicy, evaluate
from core.services.immutability import IMMUTABILITY
from core.services.manifests import ManifestService

RETENTION: str = "retention"


@dataclass
class RetentionReport:
    retained: int = 0
    deleted: int = 0
    items: list[dict[str, Any]] = field(default_factory=list)


class RetentionService:
    """Plan and apply retention for one project."""

    def __init__(self, metadata: Metadata, manifests: ManifestService) -> None:
        self._metadata = metadata
        self._manifests = manifests

    def plan(self, project: str, now: datetime) -> list[tuple[RepositoryRecord, Decision]]:
        """Every artifact of the project with the rule that keeps it or why it goes."""
        with self._metadata.read() as session:
            record = session.project(project)
            if record is None:
                raise NotFoundError(f"project {project!r} not found")
            policy = RetentionPolicy.load(session.policy(record.id, RETENTION))
            immutability = ImmutabilityPolicy.load(session.policy(record.id, IMMUTABILITY))
            planned: list[tuple[RepositoryRecord, Decision]] = []
            for repository in session.project_repositories(record.id):
                artifacts = [
                    Artifact(repository.name, digest, tuple(tags), pushed, dependent, pulled)
                    for digest, pushed, tags, dependent, pulled in session.artifacts(repository.id)
                ]
                decisions = evaluate(policy, immutability, artifacts, now)
                planned.extend((repository, decision) for decision in decisions)
        return planned

    def run(self, project: str, now: datetime, dry_run: bool) -> RetentionReport:
        """Apply (or, dry, only report) the plan."""
        report = RetentionReport()
        for repository, decision in self.plan(project, now):
            action, reason = (
                ("retain", decision.reason) if decision.retain else ("delete", decision.reason)
            )
            if not decision.retain and not dry_run:
                action, reason = self._delete(repository, decision)
            if action == "delete":
                report.deleted += 1
            else:
                report.retained += 1
            artifact = decision.artifact
            report.items.append(
                {
                    "repository": artifact.repository,
                    "digest": artifact.digest,
                    "tags": list(artifact.tags),
                    "pushed_at": artifact.pushed_at.isoformat(),
                    "pulled_at": artifact.pulled_at.isoformat() if artifact.pulled_at else None,
                    "action": action,
                    "reason": reason,
                }
            )
        return report

    def _delete(self, repository: RepositoryRecord, decision: Decision) -> tuple[str, str]:
        reference = Reference(digest=Digest.parse(decision.artifact.digest))
        try:
            self._manifests.delete(repository, reference)
        except RegistryError as error:
            if error.code == OCIErrorCode.MANIFEST_UNKNOWN:
                return "delete", f"{decision.reason} (already gone)"
            return "retain", error.message
        return "delete", decision.reason
