"""Project policies (table ``project_policy``) and the reads that apply them.

Quota usage, the projects holding a quota or policy, a repository's artifacts (retention).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import bindparam, func, select

from core.control_records import Usage
from storage.db.control_tables import ProjectPolicy
from storage.db.direct import DirectStatement
from storage.db.repos.base import SqlRepository, table_of
from storage.db.tables import (
    Blob,
    Manifest,
    ManifestChild,
    Project,
    Repository,
    RepositoryBlob,
    Tag,
)

POLICY = table_of(ProjectPolicy)
_PROJECT, _REPOSITORY, _BLOB = table_of(Project), table_of(Repository), table_of(Blob)
_REPO_BLOB, _MANIFEST = table_of(RepositoryBlob), table_of(Manifest)
_TAG, _CHILD = table_of(Tag), table_of(ManifestChild)
#: A project's policy of one kind (a new manifest reads its quota policy).
_POLICY_BODY = DirectStatement(
    select(POLICY.c.body).where(
        POLICY.c.project_id == bindparam("project_id"), POLICY.c.kind == bindparam("kind")
    )
)


class SqlPolicies(SqlRepository):
    """See ``core.control_ports.PolicyRepository``."""

    __slots__ = ()

    def get(self, project_id: int, kind: str) -> str | None:
        rows = _POLICY_BODY.rows(self._c, {"project_id": project_id, "kind": kind})
        return rows[0][0] if rows else None

    def set(self, project_id: int, kind: str, body: str, now: datetime) -> None:
        statement = self._insert(POLICY).values(
            project_id=project_id, kind=kind, body=body, updated_at=now
        )
        statement = statement.on_conflict_do_update(
            index_elements=[POLICY.c.project_id, POLICY.c.kind],
            set_={"body": body, "updated_at": now},
        )
        self._c.execute(statement)

    def usage(self, project_id: int) -> Usage:
        repos = select(_REPOSITORY.c.id).where(_REPOSITORY.c.project_id == project_id)
        linked = select(_REPO_BLOB.c.blob_id).where(_REPO_BLOB.c.repository_id.in_(repos))
        blob_bytes = select(func.coalesce(func.sum(_BLOB.c.size), 0)).where(
            _BLOB.c.project_id == project_id, _BLOB.c.id.in_(linked)
        )
        manifests = select(
            func.coalesce(func.sum(_MANIFEST.c.size), 0).label("manifest_bytes"),
            func.count(_MANIFEST.c.id).label("artifacts"),
        ).where(_MANIFEST.c.repository_id.in_(repos))
        blobs = int(self._c.execute(blob_bytes).scalar_one())
        stored = self._c.execute(manifests).one()
        return Usage(bytes=blobs + int(stored.manifest_bytes), artifacts=int(stored.artifacts))

    def linked_blob_ids_in_project(self, project_id: int, digests: list[str]) -> list[int]:
        repos = select(_REPOSITORY.c.id).where(_REPOSITORY.c.project_id == project_id)
        query = (
            select(_BLOB.c.id)
            .join(_REPO_BLOB, _REPO_BLOB.c.blob_id == _BLOB.c.id)
            .where(
                _BLOB.c.project_id == project_id,
                _BLOB.c.digest.in_(digests),
                _REPO_BLOB.c.repository_id.in_(repos),
            )
            .distinct()
        )
        return list(self._c.execute(query).scalars())

    def quota_projects(self) -> list[tuple[int, str, str]]:
        query = (
            select(_PROJECT.c.id, _PROJECT.c.name, POLICY.c.body)
            .join(POLICY, POLICY.c.project_id == _PROJECT.c.id)
            .where(POLICY.c.kind == "quota")
            .order_by(_PROJECT.c.id)
        )
        return [(row.id, row.name, row.body) for row in self._c.execute(query)]

    def policy_projects(self, kind: str) -> list[str]:
        query = (
            select(_PROJECT.c.name)
            .join(POLICY, POLICY.c.project_id == _PROJECT.c.id)
            .where(POLICY.c.kind == kind)
            .order_by(_PROJECT.c.name)
        )
        return list(self._c.execute(query).scalars())

    def artifacts(
        self, repository_id: int
    ) -> list[tuple[str, datetime, list[str], bool, datetime | None]]:
        manifests = select(
            _MANIFEST.c.id,
            _MANIFEST.c.digest,
            _MANIFEST.c.created_at,
            _MANIFEST.c.subject_digest,
            _MANIFEST.c.pulled_at,
        ).where(_MANIFEST.c.repository_id == repository_id)
        tags: dict[int, list[tuple[str, datetime]]] = {}
        tag_rows = select(_TAG.c.manifest_id, _TAG.c.name, _TAG.c.updated_at).where(
            _TAG.c.repository_id == repository_id
        )
        for tag in self._c.execute(tag_rows):
            tags.setdefault(tag.manifest_id, []).append((tag.name, tag.updated_at))
        children = select(_CHILD.c.child_id).join(_MANIFEST, _MANIFEST.c.id == _CHILD.c.parent_id)
        listed = set(
            self._c.execute(children.where(_MANIFEST.c.repository_id == repository_id)).scalars()
        )
        found = []
        for row in self._c.execute(manifests):
            own = tags.get(row.id, [])
            pushed = max([row.created_at, *(updated for _, updated in own)])
            dependent = row.id in listed or row.subject_digest is not None
            tags_of = sorted(name for name, _ in own)
            found.append((row.digest, pushed, tags_of, dependent, row.pulled_at))
        return found

    def linked_blob_sizes(self, project_id: int) -> list[tuple[str, int]]:
        repos = select(_REPOSITORY.c.id).where(_REPOSITORY.c.project_id == project_id)
        linked = select(_REPO_BLOB.c.blob_id).where(_REPO_BLOB.c.repository_id.in_(repos))
        query = (
            select(_BLOB.c.digest, _BLOB.c.size)
            .where(_BLOB.c.project_id == project_id, _BLOB.c.id.in_(linked))
            .order_by(_BLOB.c.digest)
        )
        return [(row.digest, int(row.size)) for row in self._c.execute(query)]
