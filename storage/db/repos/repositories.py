"""Repositories of a project (table ``repository``), read with their project's storage id."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Executable, bindparam, select

from core.records import RepositoryRecord
from storage.db.direct import DirectStatement
from storage.db.nowait import Prepared
from storage.db.repos.base import RecordMap, SqlRepository, insert_ignore, now, table_of
from storage.db.tables import Project, Repository

REPOSITORY, _PROJECT = table_of(Repository), table_of(Project)

#: The repository record's columns, labelled with the record's field names.
REPOSITORY_COLUMNS = (
    REPOSITORY.c.id.label("id"),
    REPOSITORY.c.project_id.label("project_id"),
    REPOSITORY.c.name.label("name"),
    _PROJECT.c.storage_id.label("storage_id"),
)
#: A repository joined with its project (what :data:`REPOSITORY_COLUMNS` select from).
WITH_PROJECT = REPOSITORY.join(_PROJECT, _PROJECT.c.id == REPOSITORY.c.project_id)

_Q_REPOSITORY = (
    select(*REPOSITORY_COLUMNS)
    .select_from(WITH_PROJECT)
    .where(REPOSITORY.c.name == bindparam("name"))
)
_RECORD = RecordMap(RepositoryRecord, _Q_REPOSITORY)
#: The same read on the unit of work's cursor (every push and pull resolves a name).
_D_REPOSITORY = DirectStatement(_Q_REPOSITORY)
#: The same read, compiled for the event loop reader (``storage.db.nowait``).
NOWAIT_REPOSITORY = Prepared.of(_Q_REPOSITORY)
_INSERT_IGNORE = insert_ignore(REPOSITORY)


def repository_record(row: Any) -> RepositoryRecord:
    """A row selecting :data:`REPOSITORY_COLUMNS` as a record."""
    return _RECORD(row)


def _catalog_query(after: bool, public_only: bool) -> Executable:
    query = select(REPOSITORY.c.name)
    if after:
        query = query.where(REPOSITORY.c.name > bindparam("last"))
    if public_only:
        public = select(_PROJECT.c.id).where(_PROJECT.c.public.is_(True))
        query = query.where(REPOSITORY.c.project_id.in_(public))
    return query.order_by(REPOSITORY.c.name).limit(bindparam("limit"))


_Q_CATALOG = {
    (after, public): _catalog_query(after, public)
    for after in (False, True)
    for public in (False, True)
}


class SqlRepositories(SqlRepository):
    """See ``core.ports.RepositoryRepository``."""

    __slots__ = ()

    def get(self, name: str) -> RepositoryRecord | None:
        rows = _D_REPOSITORY.rows(self._c, {"name": name})
        return _RECORD(rows[0]) if rows else None

    def ensure(self, project_id: int, name: str) -> RepositoryRecord:
        existing = self.get(name)
        if existing is not None:
            return existing
        values = {"project_id": project_id, "name": name, "created_at": now()}
        self._c.execute(_INSERT_IGNORE[self._dialect], values)
        created = self.get(name)
        if created is None:  # pragma: no cover - the insert above guarantees a row
            raise RuntimeError(f"repository {name} vanished")
        return created

    def catalog(self, last: str | None, limit: int, public_only: bool) -> list[str]:
        query = _Q_CATALOG[last is not None, public_only]
        return list(self._c.execute(query, {"last": last, "limit": limit}).scalars())

    def names(self, project_ids: set[int] | None, last: str | None, limit: int) -> list[str]:
        query = select(REPOSITORY.c.name).order_by(REPOSITORY.c.name)
        if project_ids is not None:
            query = query.where(REPOSITORY.c.project_id.in_(sorted(project_ids)))
        if last is not None:
            query = query.where(REPOSITORY.c.name > last)
        return list(self._c.execute(query.limit(limit)).scalars())

    def of_project(self, project_id: int) -> list[RepositoryRecord]:
        query = (
            select(*REPOSITORY_COLUMNS)
            .select_from(WITH_PROJECT)
            .where(REPOSITORY.c.project_id == project_id)
            .order_by(REPOSITORY.c.name)
        )
        return [_RECORD(row) for row in self._c.execute(query)]
