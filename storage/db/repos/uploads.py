"""Blob uploads in progress (table ``upload``): the durable offset and running hash of each."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import bindparam, delete, func, select, update

from core.records import UploadRecord
from storage.db.repos.base import RecordMap, SqlRepository, dialect_inserts, table_of
from storage.db.tables import Upload

UPLOAD = table_of(Upload)

_Q_UPLOAD = select(UPLOAD).where(UPLOAD.c.id == bindparam("upload_id"))
_RECORD = RecordMap(UploadRecord, _Q_UPLOAD)
_Q_ADVANCE_UPLOAD = (
    update(UPLOAD)
    .where(UPLOAD.c.id == bindparam("upload_id"), UPLOAD.c.offset == bindparam("old_offset"))
    .values(
        offset=bindparam("new_offset"),
        expires_at=bindparam("new_expires_at"),
        hash_offset=bindparam("new_hash_offset"),
        hash_state=bindparam("new_hash_state"),
    )
)
_Q_DELETE_UPLOAD = delete(UPLOAD).where(UPLOAD.c.id == bindparam("upload_id"))
_Q_COUNT_UPLOADS = (
    select(func.count()).select_from(UPLOAD).where(UPLOAD.c.project_id == bindparam("project_id"))
)
_INSERT_UPLOAD = dialect_inserts(UPLOAD)


class SqlUploads(SqlRepository):
    """See ``core.ports.UploadRepository``."""

    __slots__ = ()

    def add(self, upload: UploadRecord) -> None:
        values = {
            "id": upload.id,
            "project_id": upload.project_id,
            "repository": upload.repository,
            "offset": upload.offset,
            "created_at": upload.created_at,
            "expires_at": upload.expires_at,
        }
        self._c.execute(_INSERT_UPLOAD[self._dialect], values)

    def get(self, upload_id: str) -> UploadRecord | None:
        row = self._c.execute(_Q_UPLOAD, {"upload_id": upload_id}).first()
        return _RECORD(row) if row else None

    def advance(
        self,
        upload_id: str,
        old_offset: int,
        new_offset: int,
        expires_at: datetime,
        hash_state: bytes | None = None,
    ) -> bool:
        params = {
            "upload_id": upload_id,
            "old_offset": old_offset,
            "new_offset": new_offset,
            "new_expires_at": expires_at,
            "new_hash_offset": None if hash_state is None else new_offset,
            "new_hash_state": hash_state,
        }
        return bool(self._c.execute(_Q_ADVANCE_UPLOAD, params).rowcount)

    def delete(self, upload_id: str) -> None:
        self._c.execute(_Q_DELETE_UPLOAD, {"upload_id": upload_id})

    def count(self, project_id: int) -> int:
        return int(self._c.execute(_Q_COUNT_UPLOADS, {"project_id": project_id}).scalar_one())

    def expired(self, now: datetime, limit: int) -> list[UploadRecord]:
        query = select(UPLOAD).where(UPLOAD.c.expires_at < now).order_by(UPLOAD.c.expires_at)
        return [_RECORD(row) for row in self._c.execute(query.limit(limit))]
