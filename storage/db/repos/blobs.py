"""Blobs of a project and their links into repositories (``blob``, ``repository_blob``)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import bindparam, delete, select

from core.records import BlobRecord, RepositoryRecord
from storage.db.nowait import Prepared
from storage.db.repos.base import RecordMap, SqlRepository, insert_ignore, now, table_of
from storage.db.repos.repositories import REPOSITORY, REPOSITORY_COLUMNS, WITH_PROJECT
from storage.db.tables import Blob, RepositoryBlob

BLOB, REPO_BLOB = table_of(Blob), table_of(RepositoryBlob)

_BLOB_COLUMNS = (BLOB.c.id, BLOB.c.project_id, BLOB.c.digest, BLOB.c.size)
_Q_LINKED_BLOB = (
    select(*_BLOB_COLUMNS)
    .join(REPO_BLOB, REPO_BLOB.c.blob_id == BLOB.c.id)
    .where(REPO_BLOB.c.repository_id == bindparam("repository_id"), BLOB.c.digest == bindparam("d"))
)
_Q_PROJECT_BLOB = select(*_BLOB_COLUMNS).where(
    BLOB.c.project_id == bindparam("project_id"), BLOB.c.digest == bindparam("d")
)
_RECORD = RecordMap(BlobRecord, _Q_PROJECT_BLOB)
#: The repository by name and, if linked to it, its project's blob by digest: one
#: statement of indexed lookups (blob by project and digest, link by its primary key).
#: A blob linked from another project is not found here; ``linked`` finds any.
_Q_NAMED_BLOB = (
    select(*REPOSITORY_COLUMNS, *(column.label(f"b_{column.key}") for column in _BLOB_COLUMNS))
    .select_from(
        WITH_PROJECT.outerjoin(
            BLOB, (BLOB.c.project_id == REPOSITORY.c.project_id) & (BLOB.c.digest == bindparam("d"))
        ).outerjoin(
            REPO_BLOB,
            (REPO_BLOB.c.repository_id == REPOSITORY.c.id) & (REPO_BLOB.c.blob_id == BLOB.c.id),
        )
    )
    .add_columns(REPO_BLOB.c.blob_id.label("linked"))
    .where(REPOSITORY.c.name == bindparam("name"))
)
#: The same read, compiled for the event loop reader (``storage.db.nowait``).
NOWAIT_NAMED_BLOB = Prepared.of(_Q_NAMED_BLOB)
_NAMED_REPOSITORY = RecordMap(RepositoryRecord, _Q_NAMED_BLOB)
_NAMED_BLOB = RecordMap(BlobRecord, _Q_NAMED_BLOB, prefix="b_")
_LINKED_INDEX = [column.key for column in _Q_NAMED_BLOB.selected_columns].index("linked")
_INSERT_BLOB, _INSERT_LINK = insert_ignore(BLOB), insert_ignore(REPO_BLOB)


def named_blob(row: Any) -> tuple[RepositoryRecord, BlobRecord | None] | None:
    """A row of :data:`NOWAIT_NAMED_BLOB`: the repository and, if linked to it, the blob."""
    if row is None:
        return None
    linked = row[_LINKED_INDEX] is not None
    return _NAMED_REPOSITORY(row), (_NAMED_BLOB(row) if linked else None)


class SqlBlobs(SqlRepository):
    """See ``core.ports.BlobRepository``."""

    __slots__ = ()

    def linked(self, repository_id: int, digest: str) -> BlobRecord | None:
        params = {"repository_id": repository_id, "d": digest}
        row = self._c.execute(_Q_LINKED_BLOB, params).first()
        return _RECORD(row) if row else None

    def in_project(self, project_id: int, digest: str) -> BlobRecord | None:
        row = self._c.execute(_Q_PROJECT_BLOB, {"project_id": project_id, "d": digest}).first()
        return _RECORD(row) if row else None

    def add(self, project_id: int, digest: str, size: int) -> BlobRecord:
        values = {"project_id": project_id, "digest": digest, "size": size, "created_at": now()}
        self._c.execute(_INSERT_BLOB[self._dialect], values)
        blob = self.in_project(project_id, digest)
        if blob is None:  # pragma: no cover - the insert above guarantees a row
            raise RuntimeError(f"blob {digest} vanished")
        return blob

    def link(self, repository_id: int, blob_id: int) -> None:
        values = {"repository_id": repository_id, "blob_id": blob_id, "created_at": now()}
        self._c.execute(_INSERT_LINK[self._dialect], values)

    def unlink(self, repository_id: int, digest: str) -> bool:
        blob_ids = select(BLOB.c.id).where(BLOB.c.digest == digest)
        result = self._c.execute(
            delete(REPO_BLOB).where(
                REPO_BLOB.c.repository_id == repository_id, REPO_BLOB.c.blob_id.in_(blob_ids)
            )
        )
        return bool(result.rowcount)
