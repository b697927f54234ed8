"""Retention runs: evaluate a project's rules and delete what no rule retains.

Only repositories selected by at least one enabled rule are read, listed and acted on
(``RetentionPolicy.selects``); every other repository of the project is left untouched
and does not appear in the report. Dry runs and real runs share ``plan``, so a dry run
lists exactly the deletions a real run on the same rows makes.

Deletion goes through ``ManifestService`` (by digest), so each deletion writes its
outbox event and GC reviews and is checked against immutability in its own write
transaction; a tag made immutable between the plan and the deletion still wins. A
retried run recomputes the plan from the current rows, so repeating it is harmless.

A recorded run (one with a run id) deletes in batches, each in one write transaction
together with the entries it adds to the run's row (``core.services.retention_runs``),
and re-checks each artifact's tags in that transaction: an artifact tagged otherwise
since the plan is retained.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final

from core.digests import Digest
from core.errors import NotFoundError, OCIErrorCode, RegistryError
from core.names import Reference
from core.policies import ImmutabilityPolicy
from core.ports import Metadata, UnitOfWork
from core.records import RepositoryRecord
from core.retention import Artifact, Decision, RetentionPolicy, evaluate
from core.services.changes import ChangeRecorder
from core.services.immutability import IMMUTABILITY
from core.services.manifest_removal import remove_manifest
from core.services.manifests import ManifestService
from core.services.retention_runs import record_deletions

RETENTION: str = "retention"
#: Deletions a recorded run makes in one write transaction (with its progress).
DELETE_BATCH: Final = 20


@dataclass
class RetentionReport:
    retained: int = 0
    deleted: int = 0
    items: list[dict[str, Any]] = field(default_factory=list)

    def add(self, item: dict[str, Any]) -> None:
        if item["action"] == "delete":
            self.deleted += 1
        else:
            self.retained += 1
        self.items.append(item)


def _idle() -> None:
    """The default heartbeat: nothing to tell."""


def _item(decision: Decision, action: str, reason: str) -> dict[str, Any]:
    artifact = decision.artifact
    return {
        "repository": artifact.repository,
        "digest": artifact.digest,
        "tags": list(artifact.tags),
        "pushed_at": artifact.pushed_at.isoformat(),
        "pulled_at": artifact.pulled_at.isoformat() if artifact.pulled_at else None,
        "action": action,
        "reason": reason,
    }


class RetentionService:
    """Plan and apply retention for one project."""

    def __init__(
        self,
        metadata: Metadata,
        manifests: ManifestService,
        changes: ChangeRecorder | None,
    ) -> None:
        """``changes`` (the data plane's recorder) is needed by recorded runs only."""
        self._metadata = metadata
        self._manifests = manifests
        self._changes = changes

    def plan(
        self, project: str, now: datetime, heartbeat: Callable[[], None] = _idle
    ) -> list[tuple[RepositoryRecord, Decision]]:
        """Every artifact of the selected repositories, with the rule keeping it or why it goes.

        Repositories no enabled rule selects are skipped (neither read nor listed).
        """
        with self._metadata.read() as session:
            record = session.projects.get(project)
            if record is None:
                raise NotFoundError(f"project {project!r} not found")
            policy = RetentionPolicy.load(session.policies.get(record.id, RETENTION))
            immutability = ImmutabilityPolicy.load(session.policies.get(record.id, IMMUTABILITY))
            planned: list[tuple[RepositoryRecord, Decision]] = []
            for repository in session.repositories.of_project(record.id):
                if not policy.selects(repository.name):
                    continue
                artifacts = [
                    Artifact(repository.name, digest, tuple(tags), pushed, dependent, pulled)
                    for digest, pushed, tags, dependent, pulled in session.policies.artifacts(
                        repository.id
                    )
                ]
                decisions = evaluate(policy, immutability, artifacts, now)
                planned.extend((repository, decision) for decision in decisions)
                heartbeat()
        return planned

    def run(
        self,
        project: str,
        now: datetime,
        dry_run: bool,
        *,
        run_id: str | None = None,
        heartbeat: Callable[[], None] = _idle,
    ) -> RetentionReport:
        """Apply (or, dry, only report) the plan; list every planned artifact in order.

        With ``run_id`` the deletions are recorded in the run's row as they commit
        (``heartbeat`` is called after each batch).
        """
        planned = self.plan(project, now, heartbeat)
        outcomes: dict[int, tuple[str, str]] = {}
        batch: list[int] = []
        for index, (repository, decision) in enumerate(planned):
            if decision.retain or dry_run:
                outcomes[index] = ("retain" if decision.retain else "delete", decision.reason)
            elif run_id is None:
                outcomes[index] = self._delete(repository, decision)
            else:
                batch.append(index)
        for start in range(0, len(batch), DELETE_BATCH):
            indexes = batch[start : start + DELETE_BATCH]
            done = self._delete_recorded(str(run_id), [planned[i] for i in indexes])
            outcomes.update(zip(indexes, done, strict=True))
            heartbeat()
        report = RetentionReport()
        for index, (_, decision) in enumerate(planned):
            report.add(_item(decision, *outcomes[index]))
        return report

    def _delete_recorded(
        self, run_id: str, batch: list[tuple[RepositoryRecord, Decision]]
    ) -> list[tuple[str, str]]:
        """Delete a batch and record its deletions in the run's row, in one transaction."""
        changes = self._changes
        if changes is None:
            raise ValueError("a recorded retention run needs the change recorder")
        with self._metadata.write() as session:
            done = [
                self._delete_in(session, changes, repository, decision)
                for repository, decision in batch
            ]
            deleted = [
                _item(decision, action, reason)
                for (_, decision), (action, reason) in zip(batch, done, strict=True)
                if action == "delete"
            ]
            record_deletions(session, run_id, deleted)
            session.commit()
        return done

    @staticmethod
    def _delete_in(
        session: UnitOfWork,
        changes: ChangeRecorder,
        repository: RepositoryRecord,
        decision: Decision,
    ) -> tuple[str, str]:
        artifact = decision.artifact
        if session.manifests.get(repository.id, artifact.digest) is None:
            return "delete", f"{decision.reason} (already gone)"
        if sorted(session.tags.of_manifest(repository.id, artifact.digest)) != sorted(
            artifact.tags
        ):
            return "retain", "tagged otherwise since the plan; the next run decides"
        try:
            remove_manifest(session, changes, repository, artifact.digest, by=RETENTION)
        except RegistryError as error:
            return "retain", error.message
        return "delete", decision.reason

    def _delete(self, repository: RepositoryRecord, decision: Decision) -> tuple[str, str]:
        reference = Reference(digest=Digest.parse(decision.artifact.digest))
        try:
            self._manifests.delete(repository, reference)
        except RegistryError as error:
            if error.code == OCIErrorCode.MANIFEST_UNKNOWN:
                return "delete", f"{decision.reason} (already gone)"
            return "retain", error.message
        return "delete", decision.reason
