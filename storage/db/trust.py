"""The SQL implementation of ``core.trust_ports.TrustStore``.

Each method is one transaction. A policy change writes its outbox event in the same
transaction, so a committed change is always followed by a verification round. An
image's results are deleted and inserted in one transaction, with the event announcing
its verdict (``core.trust_events``).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import bindparam, delete, select, union, update

from core.signature_formats import Finding, Format, Kind
from core.trust_events import SignatureEvent
from core.trust_policy import StoredResult
from core.trust_ports import TRUST_POLICY_CHANGED, ResultRecord, StoredPolicy, Subject
from core.trust_verify import subject_of_tag
from storage.db.engine import Engines
from storage.db.repos.base import table_of
from storage.db.repos.outbox import SqlOutbox
from storage.db.tables import Manifest, ManifestChild, Project, Repository, Tag
from storage.db.trust_tables import TrustPolicyRow, TrustResultRow

POLICY, RESULT = table_of(TrustPolicyRow), table_of(TrustResultRow)
_PROJECT, _REPOSITORY, _MANIFEST = table_of(Project), table_of(Repository), table_of(Manifest)
_TAG, _CHILD = table_of(Tag), table_of(ManifestChild)

_POLICY_QUERY = select(POLICY, _PROJECT.c.name.label("project")).join(
    _PROJECT, _PROJECT.c.id == POLICY.c.project_id
)
#: The pull gate's read: verified signers of one image (index ``ix_trust_result_subject``).
_VERIFIED = select(
    RESULT.c.kind, RESULT.c.fingerprint, RESULT.c.predicate_type, RESULT.c.facts
).where(
    RESULT.c.repository == bindparam("repository"),
    RESULT.c.subject_digest == bindparam("digest"),
    RESULT.c.verified.is_(True),
)
_SIGNATURE_TAGS = ("sha256-%.sig", "sha256-%.att")


def _utc(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _policy(row: Any) -> StoredPolicy:
    return StoredPolicy(
        row.project_id,
        row.project,
        row.revision,
        json.loads(row.document),
        row.updated_by,
        _utc(row.updated_at),
    )


def _record(row: Any) -> ResultRecord:
    finding = Finding(
        artifact_digest=row.artifact_digest,
        index=row.entry,
        location=row.location,
        kind=Kind(row.kind),
        format=Format(row.format),
        predicate_type=row.predicate_type,
        signer=row.signer,
        fingerprint=row.fingerprint,
        verified=bool(row.verified),
        reason=row.reason,
        facts=json.loads(row.facts),
    )
    return ResultRecord(
        row.id,
        row.repository,
        row.subject_digest,
        finding,
        row.policy_revision,
        _utc(row.verified_at),
    )


class SqlTrustStore:
    """Trust policies and verification results over the installation's engines."""

    def __init__(self, engines: Engines) -> None:
        self._engines = engines

    def policy(self, project_id: int) -> StoredPolicy | None:
        with self._engines.read.connect() as c:
            row = c.execute(_POLICY_QUERY.where(POLICY.c.project_id == project_id)).first()
        return None if row is None else _policy(row)

    def policies(self) -> list[StoredPolicy]:
        with self._engines.read.connect() as c:
            rows = c.execute(_POLICY_QUERY.order_by(POLICY.c.project_id)).all()
        return [_policy(row) for row in rows]

    def save_policy(self, project_id: int, document: dict[str, Any], by: str) -> StoredPolicy:
        text = json.dumps(document, sort_keys=True)
        now = datetime.now(UTC)
        with self._engines.writing() as c, c.begin():
            revision = c.execute(
                select(POLICY.c.revision).where(POLICY.c.project_id == project_id)
            ).scalar()
            values = {"document": text, "updated_by": by, "updated_at": now}
            if revision is None:
                c.execute(POLICY.insert().values(project_id=project_id, revision=1, **values))
            else:
                c.execute(
                    update(POLICY)
                    .where(POLICY.c.project_id == project_id)
                    .values(revision=revision + 1, **values)
                )
            SqlOutbox(c).add(TRUST_POLICY_CHANGED, project_id=project_id)
        found = self.policy(project_id)
        assert found is not None  # noqa: S101 - just written
        return found

    def delete_policy(self, project_id: int, by: str) -> bool:
        del by  # the audit log records who (the API's audit hook)
        with self._engines.writing() as c, c.begin():
            gone = c.execute(delete(POLICY).where(POLICY.c.project_id == project_id)).rowcount
            if gone:
                SqlOutbox(c).add(TRUST_POLICY_CHANGED, project_id=project_id)
        return bool(gone)

    def replace_results(
        self,
        project_id: int,
        subject: Subject,
        findings: Sequence[Finding],
        revision: int,
        now: datetime,
        announce: SignatureEvent | None = None,
    ) -> None:
        rows = [
            {
                "project_id": project_id,
                "repository": subject.repository,
                "subject_digest": subject.digest,
                "artifact_digest": f.artifact_digest,
                "entry": f.index,
                "location": f.location,
                "kind": str(f.kind),
                "format": str(f.format),
                "predicate_type": f.predicate_type,
                "signer": f.signer,
                "fingerprint": f.fingerprint,
                "verified": f.verified,
                "reason": f.reason[:1024],
                "facts": json.dumps(f.facts, sort_keys=True),
                "policy_revision": revision,
                "verified_at": now,
            }
            for f in findings
        ]
        with self._engines.writing() as c, c.begin():
            if project_id:
                # NOTE: one writer per project at a time (PostgreSQL row lock; SQLite
                # serializes writers anyway), so two attempts never both insert.
                c.execute(
                    select(_PROJECT.c.id).where(_PROJECT.c.id == project_id).with_for_update()
                )
            gone = c.execute(
                delete(RESULT).where(
                    RESULT.c.repository == subject.repository,
                    RESULT.c.subject_digest == subject.digest,
                )
            ).rowcount
            if rows:
                c.execute(RESULT.insert(), rows)
            if announce is not None and (rows or gone):
                SqlOutbox(c).add(
                    announce.kind,
                    project_id=project_id,
                    repository=subject.repository,
                    digest=subject.digest,
                    data=announce.data,
                )

    def results(self, repository: str, digest: str) -> list[ResultRecord]:
        query = (
            select(RESULT)
            .where(RESULT.c.repository == repository, RESULT.c.subject_digest == digest)
            .order_by(RESULT.c.id)
        )
        with self._engines.read.connect() as c:
            return [_record(row) for row in c.execute(query)]

    def verified(self, repository: str, digest: str) -> list[StoredResult]:
        with self._engines.read.connect() as c:
            rows = c.execute(_VERIFIED, {"repository": repository, "digest": digest}).all()
        return [
            StoredResult(row.kind, row.fingerprint, row.predicate_type, json.loads(row.facts))
            for row in rows
        ]

    def parents(self, repository: str, digest: str) -> list[str]:
        parent = _MANIFEST.alias("parent")
        child = _MANIFEST.alias("child")
        query = (
            select(parent.c.digest)
            .join(_CHILD, _CHILD.c.parent_id == parent.c.id)
            .join(child, child.c.id == _CHILD.c.child_id)
            .join(_REPOSITORY, _REPOSITORY.c.id == child.c.repository_id)
            .where(_REPOSITORY.c.name == repository, child.c.digest == digest)
            .limit(100)
        )
        with self._engines.read.connect() as c:
            return list(c.execute(query).scalars())

    def subjects_with_artifact(self, repository: str, artifact_digest: str) -> list[Subject]:
        query = (
            select(RESULT.c.subject_digest)
            .where(RESULT.c.repository == repository, RESULT.c.artifact_digest == artifact_digest)
            .distinct()
        )
        with self._engines.read.connect() as c:
            return [Subject(repository, d) for d in c.execute(query).scalars()]

    def subjects(self, project_id: int, limit: int) -> list[Subject]:
        in_project = _REPOSITORY.c.project_id == project_id
        referred = (
            select(_REPOSITORY.c.name, _MANIFEST.c.subject_digest.label("digest"))
            .join(_MANIFEST, _MANIFEST.c.repository_id == _REPOSITORY.c.id)
            .where(in_project, _MANIFEST.c.subject_digest.is_not(None))
        )
        tagged = (
            select(_REPOSITORY.c.name, _TAG.c.name.label("digest"))
            .join(_TAG, _TAG.c.repository_id == _REPOSITORY.c.id)
            .where(
                in_project,
                _TAG.c.name.like(_SIGNATURE_TAGS[0]) | _TAG.c.name.like(_SIGNATURE_TAGS[1]),
            )
        )
        stored = select(
            RESULT.c.repository.label("name"), RESULT.c.subject_digest.label("digest")
        ).where(RESULT.c.project_id == project_id)
        found: set[tuple[str, str]] = set()
        with self._engines.read.connect() as c:
            for name, found_digest in c.execute(union(referred, tagged, stored).limit(limit * 3)):
                tagged_digest = subject_of_tag(found_digest)
                found.add((name, tagged_digest or found_digest))
        return [Subject(name, digest) for name, digest in sorted(found)[:limit]]
