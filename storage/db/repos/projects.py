"""Projects: the tenants of the registry (table ``project``)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import bindparam, delete, select, update

from core.records import ProjectRecord
from storage.db.repos.base import RecordMap, SqlRepository, now, table_of
from storage.db.tables import (
    Blob,
    Manifest,
    ManifestBlob,
    ManifestChild,
    Project,
    Repository,
    RepositoryBlob,
    Tag,
    Upload,
)

PROJECT = table_of(Project)
_REPOSITORY, _BLOB, _REPO_BLOB = table_of(Repository), table_of(Blob), table_of(RepositoryBlob)
_MANIFEST, _TAG, _MANIFEST_BLOB = table_of(Manifest), table_of(Tag), table_of(ManifestBlob)
_MANIFEST_CHILD, _UPLOAD = table_of(ManifestChild), table_of(Upload)

_Q_PROJECT = select(PROJECT).where(PROJECT.c.name == bindparam("name"))
_Q_STORAGE_ID = select(PROJECT.c.storage_id).where(PROJECT.c.id == bindparam("project_id"))
_PROJECT_RECORD = RecordMap(ProjectRecord, _Q_PROJECT)


class SqlProjects(SqlRepository):
    """See ``core.ports.ProjectRepository``."""

    __slots__ = ()

    def get(self, name: str) -> ProjectRecord | None:
        row = self._c.execute(_Q_PROJECT, {"name": name}).first()
        return _PROJECT_RECORD(row) if row else None

    def add(self, name: str, public: bool, storage_id: str) -> ProjectRecord | None:
        created_at = now()
        statement: Any = self._insert(PROJECT).values(
            name=name, public=public, storage_id=storage_id, created_at=created_at
        )
        result = self._c.execute(statement.on_conflict_do_nothing().returning(PROJECT.c.id))
        project_id = result.scalar()
        if project_id is None:
            return None
        return ProjectRecord(project_id, name, public, storage_id, created_at)

    def delete(self, project_id: int) -> None:
        # NOTE: explicit deletes keep SQLite and PostgreSQL alike without relying on cascades.
        repos = select(_REPOSITORY.c.id).where(_REPOSITORY.c.project_id == project_id)
        manifests = select(_MANIFEST.c.id).where(_MANIFEST.c.repository_id.in_(repos))
        self._c.execute(delete(_TAG).where(_TAG.c.repository_id.in_(repos)))
        self._c.execute(delete(_MANIFEST_BLOB).where(_MANIFEST_BLOB.c.manifest_id.in_(manifests)))
        self._c.execute(delete(_MANIFEST_CHILD).where(_MANIFEST_CHILD.c.parent_id.in_(manifests)))
        self._c.execute(delete(_MANIFEST).where(_MANIFEST.c.repository_id.in_(repos)))
        self._c.execute(delete(_REPO_BLOB).where(_REPO_BLOB.c.repository_id.in_(repos)))
        self._c.execute(delete(_UPLOAD).where(_UPLOAD.c.project_id == project_id))
        self._c.execute(delete(_REPOSITORY).where(_REPOSITORY.c.project_id == project_id))
        self._c.execute(delete(_BLOB).where(_BLOB.c.project_id == project_id))
        self._c.execute(delete(PROJECT).where(PROJECT.c.id == project_id))

    def storage_id(self, project_id: int) -> str | None:
        return self._c.execute(_Q_STORAGE_ID, {"project_id": project_id}).scalar()

    def page(self, last: str | None, limit: int, public_only: bool) -> list[ProjectRecord]:
        query = select(PROJECT).order_by(PROJECT.c.name).limit(limit)
        if last is not None:
            query = query.where(PROJECT.c.name > last)
        if public_only:
            query = query.where(PROJECT.c.public.is_(True))
        return [_PROJECT_RECORD(row) for row in self._c.execute(query)]

    def set_public(self, name: str, public: bool) -> bool:
        query = update(PROJECT).where(PROJECT.c.name == name).values(public=public)
        return bool(self._c.execute(query).rowcount)

    def ids(self, names: list[str]) -> set[int]:
        if not names:
            return set()
        query = select(PROJECT.c.id).where(PROJECT.c.name.in_(names))
        return set(self._c.execute(query).scalars())

    def lock(self, project_id: int) -> None:
        if self._dialect == "postgresql":
            query = select(PROJECT.c.id).where(PROJECT.c.id == project_id).with_for_update()
            self._c.execute(query)
        # NOTE: SQLite write transactions already hold the database's single write lock.
