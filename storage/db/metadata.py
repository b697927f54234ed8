"""The SQL implementation of the metadata port (``core.ports.Metadata``).

Queries use SQLAlchemy Core on the SQLModel tables: each read is one indexed query,
and racing identical inserts resolve with ``ON CONFLICT`` on both SQLite and PostgreSQL.

The data plane's statements are built once, at import, with ``bindparam`` placeholders:
building a statement and computing its cache key cost far more than running it, and a
prebuilt statement hits SQLAlchemy's compiled cache with its key memoised.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any, TypeVar

from sqlalchemy import Connection, Executable, Table, bindparam, delete, func, select, text, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.sql.dml import Insert

from core.ports import ReadWouldWait
from core.records import (
    BlobRecord,
    ManifestRecord,
    NewManifest,
    ProjectRecord,
    RepositoryRecord,
    StoredRef,
    UploadRecord,
    UserRecord,
)
from storage.db.engine import Engines
from storage.db.gc_queries import CollectorQueries
from storage.db.group_commit import GroupCommit
from storage.db.nowait import NowaitReader, Prepared
from storage.db.outbox_queries import OutboxQueries
from storage.db.tables import (
    Blob,
    Manifest,
    ManifestBlob,
    ManifestChild,
    Project,
    Repository,
    RepositoryBlob,
    SigningKey,
    Tag,
    Upload,
    User,
)
from storage.db.value_lists import DIALECTS, in_list, list_value


def _t(model: Any) -> Table:
    table: Table = model.__table__
    return table


PROJECT, REPOSITORY, BLOB, REPO_BLOB = _t(Project), _t(Repository), _t(Blob), _t(RepositoryBlob)
MANIFEST, TAG, MANIFEST_BLOB, MANIFEST_CHILD = (
    _t(Manifest),
    _t(Tag),
    _t(ManifestBlob),
    _t(ManifestChild),
)
UPLOAD, USER, SIGNING_KEY = _t(Upload), _t(User), _t(SigningKey)

_MANIFEST_COLUMNS = (
    MANIFEST.c.id,
    MANIFEST.c.repository_id,
    MANIFEST.c.digest,
    MANIFEST.c.media_type,
    MANIFEST.c.artifact_type,
    MANIFEST.c.subject_digest,
    MANIFEST.c.annotations,
    MANIFEST.c.size,
    MANIFEST.c.payload,
    MANIFEST.c.pulled_at,
)


def _manifest_record(row: Any) -> ManifestRecord:
    # NOTE: ``Any``: SQLAlchemy types rows of more than nine columns as open-ended tuples.
    return ManifestRecord(*row)


def _named(row: Any) -> tuple[RepositoryRecord, ManifestRecord | None] | None:
    """A row of the named-manifest reads: the repository and, if found, its manifest."""
    if row is None:
        return None
    repository = RepositoryRecord(*row[:4])
    # NOTE: the outer join leaves every manifest column NULL when there is no match.
    return repository, (None if row[4] is None else _manifest_record(row[4:]))


def _now() -> datetime:
    return datetime.now().astimezone()


def _param(name: str) -> Any:
    return bindparam(name)


_T = TypeVar("_T")
_BLOB_COLUMNS = (BLOB.c.id, BLOB.c.project_id, BLOB.c.digest, BLOB.c.size)
_Q_PROJECT = select(PROJECT).where(PROJECT.c.name == _param("name"))
_Q_STORAGE_ID = select(PROJECT.c.storage_id).where(PROJECT.c.id == _param("project_id"))
_Q_REPOSITORY = (
    select(REPOSITORY.c.id, REPOSITORY.c.project_id, REPOSITORY.c.name, PROJECT.c.storage_id)
    .join(PROJECT, PROJECT.c.id == REPOSITORY.c.project_id)
    .where(REPOSITORY.c.name == _param("name"))
)
_Q_LINKED_BLOB = (
    select(*_BLOB_COLUMNS)
    .join(REPO_BLOB, REPO_BLOB.c.blob_id == BLOB.c.id)
    .where(REPO_BLOB.c.repository_id == _param("repository_id"), BLOB.c.digest == _param("d"))
)
_Q_PROJECT_BLOB = select(*_BLOB_COLUMNS).where(
    BLOB.c.project_id == _param("project_id"), BLOB.c.digest == _param("d")
)
_Q_LINKED_BLOBS = {
    dialect: select(BLOB.c.digest, BLOB.c.id, BLOB.c.size)
    .join(REPO_BLOB, REPO_BLOB.c.blob_id == BLOB.c.id)
    .where(
        REPO_BLOB.c.repository_id == _param("repository_id"), in_list(BLOB.c.digest, "ds", dialect)
    )
    for dialect in DIALECTS
}
_Q_MANIFEST = select(*_MANIFEST_COLUMNS).where(
    MANIFEST.c.repository_id == _param("repository_id"), MANIFEST.c.digest == _param("d")
)
_REPOSITORY_COLUMNS = (
    REPOSITORY.c.id,
    REPOSITORY.c.project_id,
    REPOSITORY.c.name,
    PROJECT.c.storage_id,
)
_NAMED_REPOSITORY = REPOSITORY.join(PROJECT, PROJECT.c.id == REPOSITORY.c.project_id)
#: The repository by name and, if present, its manifest by digest: one indexed statement.
_Q_NAMED_MANIFEST = (
    select(*_REPOSITORY_COLUMNS, *_MANIFEST_COLUMNS)
    .select_from(
        _NAMED_REPOSITORY.outerjoin(
            MANIFEST,
            (MANIFEST.c.repository_id == REPOSITORY.c.id) & (MANIFEST.c.digest == _param("d")),
        )
    )
    .where(REPOSITORY.c.name == _param("name"))
)
#: The repository by name and, if the tag exists, the manifest it points at.
_Q_NAMED_TAGGED_MANIFEST = (
    select(*_REPOSITORY_COLUMNS, *_MANIFEST_COLUMNS)
    .select_from(
        _NAMED_REPOSITORY.outerjoin(
            TAG, (TAG.c.repository_id == REPOSITORY.c.id) & (TAG.c.name == _param("tag"))
        ).outerjoin(MANIFEST, MANIFEST.c.id == TAG.c.manifest_id)
    )
    .where(REPOSITORY.c.name == _param("name"))
)
#: The same two reads, compiled for the event loop reader (``storage.db.nowait``).
_NOWAIT_NAMED_MANIFEST = Prepared.of(_Q_NAMED_MANIFEST)
_NOWAIT_REPOSITORY = Prepared.of(_Q_REPOSITORY)
_NOWAIT_NAMED_TAGGED_MANIFEST = Prepared.of(_Q_NAMED_TAGGED_MANIFEST)
_Q_MANIFEST_IDS = {
    dialect: select(MANIFEST.c.digest, MANIFEST.c.id).where(
        MANIFEST.c.repository_id == _param("repository_id"),
        in_list(MANIFEST.c.digest, "ds", dialect),
    )
    for dialect in DIALECTS
}
_Q_MANIFEST_REFS = {
    dialect: select(MANIFEST.c.digest, MANIFEST.c.id, MANIFEST.c.size).where(
        MANIFEST.c.repository_id == _param("repository_id"),
        in_list(MANIFEST.c.digest, "ds", dialect),
    )
    for dialect in DIALECTS
}
_Q_UPLOAD = select(UPLOAD).where(UPLOAD.c.id == _param("upload_id"))
_Q_ADVANCE_UPLOAD = (
    update(UPLOAD)
    .where(UPLOAD.c.id == _param("upload_id"), UPLOAD.c.offset == _param("old_offset"))
    .values(offset=_param("new_offset"), expires_at=_param("new_expires_at"))
)
_Q_DELETE_UPLOAD = delete(UPLOAD).where(UPLOAD.c.id == _param("upload_id"))
_Q_COUNT_UPLOADS = (
    select(func.count()).select_from(UPLOAD).where(UPLOAD.c.project_id == _param("project_id"))
)
_Q_DELETE_TAG = delete(TAG).where(
    TAG.c.repository_id == _param("repository_id"), TAG.c.name == _param("tag")
)
_Q_USER = select(
    USER.c.id, USER.c.username, USER.c.password_hash, USER.c.is_admin, USER.c.disabled
).where(USER.c.username == _param("username"))
_Q_REPLACE_PASSWORD_HASH = (
    update(USER)
    .where(USER.c.username == _param("rehash_user"), USER.c.password_hash == _param("old_hash"))
    .values(password_hash=_param("new_hash"))
)


def _tags_query(after: bool) -> Executable:
    query = select(TAG.c.name).where(TAG.c.repository_id == _param("repository_id"))
    if after:
        query = query.where(TAG.c.name > _param("last"))
    return query.order_by(TAG.c.name).limit(_param("limit"))


def _catalog_query(after: bool, public_only: bool) -> Executable:
    query = select(REPOSITORY.c.name)
    if after:
        query = query.where(REPOSITORY.c.name > _param("last"))
    if public_only:
        public = select(PROJECT.c.id).where(PROJECT.c.public.is_(True))
        query = query.where(REPOSITORY.c.project_id.in_(public))
    return query.order_by(REPOSITORY.c.name).limit(_param("limit"))


_Q_TAGS = {after: _tags_query(after) for after in (False, True)}
_Q_CATALOG = {
    (after, public): _catalog_query(after, public)
    for after in (False, True)
    for public in (False, True)
}


def _dialect_inserts(table: Table) -> dict[str, Any]:
    return {"postgresql": postgresql.insert(table), "sqlite": sqlite.insert(table)}


#: ``INSERT ... ON CONFLICT DO NOTHING`` per table and dialect, values given at execution.
_INSERT_IGNORE: dict[str, dict[str, Any]] = {
    table.name: {
        dialect: statement.on_conflict_do_nothing()
        for dialect, statement in _dialect_inserts(table).items()
    }
    for table in (REPOSITORY, BLOB, REPO_BLOB, MANIFEST, MANIFEST_BLOB, MANIFEST_CHILD, SIGNING_KEY)
}
_INSERT_MANIFEST_RETURNING = {
    dialect: statements.returning(MANIFEST.c.id)
    for dialect, statements in _INSERT_IGNORE[MANIFEST.name].items()
}


def _upsert_tag(statement: Any) -> Any:
    return statement.on_conflict_do_update(
        index_elements=[TAG.c.repository_id, TAG.c.name],
        set_={
            "manifest_id": statement.excluded.manifest_id,
            "updated_at": statement.excluded.updated_at,
        },
    )


_UPSERT_TAG = {dialect: _upsert_tag(st) for dialect, st in _dialect_inserts(TAG).items()}
_INSERT_UPLOAD = _dialect_inserts(UPLOAD)


class SqlMetadata:
    """Opens :class:`SqlSession` transactions on the reader or writer engine."""

    def __init__(self, engines: Engines) -> None:
        self._engines = engines
        #: SQLite only: writers of this process share transactions (``write_grouped``).
        self._group = (
            GroupCommit(engines.writing) if engines.write.dialect.name == "sqlite" else None
        )

    @contextmanager
    def read(self) -> Iterator[SqlSession]:
        with self._engines.read.connect() as connection, connection.begin():
            yield SqlSession(connection)

    @contextmanager
    def write(self) -> Iterator[SqlSession]:
        with self._engines.writing() as connection:
            transaction = connection.begin()
            try:
                yield SqlSession(connection)
            finally:
                if transaction.is_active:
                    transaction.rollback()

    @property
    def reads_nowait(self) -> bool:
        """Whether :meth:`read_nowait` can succeed here (SQLite: local, WAL readers)."""
        return self._engines.nowait_read is not None

    def write_grouped(self, work: Callable[[SqlSession], _T]) -> _T:
        """Run ``work`` in a write transaction, possibly shared; see ``Metadata``."""
        if self._group is None:
            with self.write() as session:
                result = work(session)
                session.commit()
                return result
        return self._group.run(lambda connection: work(SqlSession(connection)))

    def _nowait_reader(self) -> NowaitReader:
        reader = self._engines.nowait_read
        if reader is None:
            raise ReadWouldWait("reads on this database may wait")
        return reader

    def repository_nowait(self, name: str) -> RepositoryRecord | None:
        """:meth:`SqlSession.repository` on the event loop reader; see ``NowaitReads``."""
        reader = self._nowait_reader()
        row = reader.first(_NOWAIT_REPOSITORY, {"name": name})
        return None if row is None else RepositoryRecord(*row)

    def named_manifest_nowait(
        self, name: str, digest: str | None, tag: str | None
    ) -> tuple[RepositoryRecord, ManifestRecord | None] | None:
        """:meth:`SqlSession.named_manifest` on the event loop reader; see ``NowaitReads``."""
        reader = self._nowait_reader()
        if digest is not None:
            row = reader.first(_NOWAIT_NAMED_MANIFEST, {"name": name, "d": digest})
        else:
            row = reader.first(_NOWAIT_NAMED_TAGGED_MANIFEST, {"name": name, "tag": tag})
        return _named(row)

    def ping(self) -> None:
        with self._engines.read.connect() as connection:
            connection.execute(text("SELECT 1"))


class SqlSession(OutboxQueries, CollectorQueries):
    """One transaction; see ``core.ports.MetadataSession`` for the contract."""

    def __init__(self, connection: Connection) -> None:
        self._c = connection
        self._dialect = connection.dialect.name

    def commit(self) -> None:
        transaction = self._c.get_transaction()
        if transaction is not None:
            transaction.commit()

    def _insert(self, table: Table) -> Insert:
        if self._dialect == "postgresql":
            return postgresql.insert(table)
        return sqlite.insert(table)

    def _insert_ignore(self, table: Table, **values: Any) -> None:
        self._c.execute(_INSERT_IGNORE[table.name][self._dialect], values)

    # projects
    def project(self, name: str) -> ProjectRecord | None:
        row = self._c.execute(_Q_PROJECT, {"name": name}).first()
        return ProjectRecord(**row._asdict()) if row else None

    def add_project(self, name: str, public: bool, storage_id: str) -> ProjectRecord | None:
        created_at = _now()
        statement: Any = self._insert(PROJECT).values(
            name=name, public=public, storage_id=storage_id, created_at=created_at
        )
        result = self._c.execute(statement.on_conflict_do_nothing().returning(PROJECT.c.id))
        project_id = result.scalar()
        if project_id is None:
            return None
        return ProjectRecord(project_id, name, public, storage_id, created_at)

    def delete_project(self, project_id: int) -> None:
        # NOTE: explicit deletes keep SQLite and PostgreSQL alike without relying on cascades.
        repos = select(REPOSITORY.c.id).where(REPOSITORY.c.project_id == project_id)
        manifests = select(MANIFEST.c.id).where(MANIFEST.c.repository_id.in_(repos))
        self._c.execute(delete(TAG).where(TAG.c.repository_id.in_(repos)))
        self._c.execute(delete(MANIFEST_BLOB).where(MANIFEST_BLOB.c.manifest_id.in_(manifests)))
        self._c.execute(delete(MANIFEST_CHILD).where(MANIFEST_CHILD.c.parent_id.in_(manifests)))
        self._c.execute(delete(MANIFEST).where(MANIFEST.c.repository_id.in_(repos)))
        self._c.execute(delete(REPO_BLOB).where(REPO_BLOB.c.repository_id.in_(repos)))
        self._c.execute(delete(UPLOAD).where(UPLOAD.c.project_id == project_id))
        self._c.execute(delete(REPOSITORY).where(REPOSITORY.c.project_id == project_id))
        self._c.execute(delete(BLOB).where(BLOB.c.project_id == project_id))
        self._c.execute(delete(PROJECT).where(PROJECT.c.id == project_id))

    def project_storage_id(self, project_id: int) -> str | None:
        return self._c.execute(_Q_STORAGE_ID, {"project_id": project_id}).scalar()

    def projects(self, last: str | None, limit: int, public_only: bool) -> list[ProjectRecord]:
        query = select(PROJECT).order_by(PROJECT.c.name).limit(limit)
        if last is not None:
            query = query.where(PROJECT.c.name > last)
        if public_only:
            query = query.where(PROJECT.c.public.is_(True))
        return [ProjectRecord(**row._asdict()) for row in self._c.execute(query)]

    # repositories
    def repository(self, name: str) -> RepositoryRecord | None:
        row = self._c.execute(_Q_REPOSITORY, {"name": name}).first()
        return RepositoryRecord(*row) if row else None

    def ensure_repository(self, project_id: int, name: str) -> RepositoryRecord:
        existing = self.repository(name)
        if existing is not None:
            return existing
        self._insert_ignore(REPOSITORY, project_id=project_id, name=name, created_at=_now())
        created = self.repository(name)
        if created is None:  # pragma: no cover - the insert above guarantees a row
            raise RuntimeError(f"repository {name} vanished")
        return created

    def repositories(self, last: str | None, limit: int, public_only: bool) -> list[str]:
        query = _Q_CATALOG[last is not None, public_only]
        return list(self._c.execute(query, {"last": last, "limit": limit}).scalars())

    # blobs
    def linked_blob(self, repository_id: int, digest: str) -> BlobRecord | None:
        row = self._c.execute(_Q_LINKED_BLOB, {"repository_id": repository_id, "d": digest}).first()
        return BlobRecord(*row) if row else None

    def project_blob(self, project_id: int, digest: str) -> BlobRecord | None:
        row = self._c.execute(_Q_PROJECT_BLOB, {"project_id": project_id, "d": digest}).first()
        return BlobRecord(*row) if row else None

    def add_blob(self, project_id: int, digest: str, size: int) -> BlobRecord:
        self._insert_ignore(
            BLOB, project_id=project_id, digest=digest, size=size, created_at=_now()
        )
        blob = self.project_blob(project_id, digest)
        if blob is None:  # pragma: no cover - the insert above guarantees a row
            raise RuntimeError(f"blob {digest} vanished")
        return blob

    def link_blob(self, repository_id: int, blob_id: int) -> None:
        self._insert_ignore(
            REPO_BLOB, repository_id=repository_id, blob_id=blob_id, created_at=_now()
        )

    def unlink_blob(self, repository_id: int, digest: str) -> bool:
        blob_ids = select(BLOB.c.id).where(BLOB.c.digest == digest)
        result = self._c.execute(
            delete(REPO_BLOB).where(
                REPO_BLOB.c.repository_id == repository_id, REPO_BLOB.c.blob_id.in_(blob_ids)
            )
        )
        return bool(result.rowcount)

    def linked_blobs(self, repository_id: int, digests: list[str]) -> dict[str, StoredRef]:
        params = {"repository_id": repository_id, "ds": list_value(self._dialect, digests)}
        rows = self._c.execute(_Q_LINKED_BLOBS[self._dialect], params)
        return {row[0]: StoredRef(row[1], row[2]) for row in rows}

    # manifests and tags
    def manifest(self, repository_id: int, digest: str) -> ManifestRecord | None:
        params = {"repository_id": repository_id, "d": digest}
        row = self._c.execute(_Q_MANIFEST, params).first()
        return _manifest_record(row) if row else None

    def named_manifest(
        self, name: str, digest: str | None, tag: str | None
    ) -> tuple[RepositoryRecord, ManifestRecord | None] | None:
        if digest is not None:
            row = self._c.execute(_Q_NAMED_MANIFEST, {"name": name, "d": digest}).first()
        else:
            row = self._c.execute(_Q_NAMED_TAGGED_MANIFEST, {"name": name, "tag": tag}).first()
        return _named(row)

    def manifest_ids(self, repository_id: int, digests: list[str]) -> dict[str, int]:
        params = {"repository_id": repository_id, "ds": list_value(self._dialect, digests)}
        rows = self._c.execute(_Q_MANIFEST_IDS[self._dialect], params)
        return {row[0]: row[1] for row in rows}

    def manifest_refs(self, repository_id: int, digests: list[str]) -> dict[str, StoredRef]:
        params = {"repository_id": repository_id, "ds": list_value(self._dialect, digests)}
        rows = self._c.execute(_Q_MANIFEST_REFS[self._dialect], params)
        return {row[0]: StoredRef(row[1], row[2]) for row in rows}

    def add_manifest(self, repository_id: int, manifest: NewManifest) -> int:
        # NOTE: no lookup first: callers look before they add, and a stored manifest
        # makes the insert do nothing (its id is then read back below).
        values = {
            "repository_id": repository_id,
            "digest": manifest.digest,
            "media_type": manifest.media_type,
            "artifact_type": manifest.artifact_type,
            "subject_digest": manifest.subject_digest,
            "annotations": manifest.annotations,
            "size": len(manifest.payload),
            "payload": manifest.payload,
            "created_at": _now(),
        }
        inserted = self._c.execute(_INSERT_MANIFEST_RETURNING[self._dialect], values).scalar()
        if inserted is None:  # already stored (by this caller's past or a concurrent writer)
            return self.manifest_ids(repository_id, [manifest.digest])[manifest.digest]
        manifest_id = inserted
        # NOTE: one executemany per reference table instead of one statement per row.
        blob_rows = [{"manifest_id": manifest_id, "blob_id": b} for b in set(manifest.blob_ids)]
        if blob_rows:
            self._c.execute(_INSERT_IGNORE[MANIFEST_BLOB.name][self._dialect], blob_rows)
        child_rows = [{"parent_id": manifest_id, "child_id": c} for c in set(manifest.child_ids)]
        if child_rows:
            self._c.execute(_INSERT_IGNORE[MANIFEST_CHILD.name][self._dialect], child_rows)
        return int(manifest_id)

    def set_tag(self, repository_id: int, tag: str, manifest_id: int) -> None:
        values = {
            "repository_id": repository_id,
            "name": tag,
            "manifest_id": manifest_id,
            "updated_at": _now(),
        }
        self._c.execute(_UPSERT_TAG[self._dialect], values)

    def delete_tag(self, repository_id: int, tag: str) -> bool:
        result = self._c.execute(_Q_DELETE_TAG, {"repository_id": repository_id, "tag": tag})
        return bool(result.rowcount)

    def delete_manifest(self, repository_id: int, digest: str) -> bool:
        ids = self.manifest_ids(repository_id, [digest])
        if not ids:
            return False
        manifest_id = ids[digest]
        self._c.execute(delete(TAG).where(TAG.c.manifest_id == manifest_id))
        self._c.execute(delete(MANIFEST_BLOB).where(MANIFEST_BLOB.c.manifest_id == manifest_id))
        self._c.execute(
            delete(MANIFEST_CHILD).where(
                (MANIFEST_CHILD.c.parent_id == manifest_id)
                | (MANIFEST_CHILD.c.child_id == manifest_id)
            )
        )
        self._c.execute(delete(MANIFEST).where(MANIFEST.c.id == manifest_id))
        return True

    def tags(self, repository_id: int, last: str | None, limit: int) -> list[str]:
        params = {"repository_id": repository_id, "last": last, "limit": limit}
        return list(self._c.execute(_Q_TAGS[last is not None], params).scalars())

    def referrers(
        self, repository_id: int, digest: str, artifact_type: str | None
    ) -> list[ManifestRecord]:
        query = (
            select(*_MANIFEST_COLUMNS)
            .where(MANIFEST.c.repository_id == repository_id, MANIFEST.c.subject_digest == digest)
            .order_by(MANIFEST.c.id)
            .limit(10_000)
        )
        if artifact_type is not None:
            query = query.where(MANIFEST.c.artifact_type == artifact_type)
        return [_manifest_record(row) for row in self._c.execute(query)]

    # uploads
    def add_upload(self, upload: UploadRecord) -> None:
        values = {
            "id": upload.id,
            "project_id": upload.project_id,
            "repository": upload.repository,
            "offset": upload.offset,
            "created_at": upload.created_at,
            "expires_at": upload.expires_at,
        }
        self._c.execute(_INSERT_UPLOAD[self._dialect], values)

    def upload(self, upload_id: str) -> UploadRecord | None:
        row = self._c.execute(_Q_UPLOAD, {"upload_id": upload_id}).first()
        return UploadRecord(**row._asdict()) if row else None

    def advance_upload(
        self, upload_id: str, old_offset: int, new_offset: int, expires_at: datetime
    ) -> bool:
        params = {
            "upload_id": upload_id,
            "old_offset": old_offset,
            "new_offset": new_offset,
            "new_expires_at": expires_at,
        }
        return bool(self._c.execute(_Q_ADVANCE_UPLOAD, params).rowcount)

    def delete_upload(self, upload_id: str) -> None:
        self._c.execute(_Q_DELETE_UPLOAD, {"upload_id": upload_id})

    def count_uploads(self, project_id: int) -> int:
        return int(self._c.execute(_Q_COUNT_UPLOADS, {"project_id": project_id}).scalar_one())

    def expired_uploads(self, now: datetime, limit: int) -> list[UploadRecord]:
        query = select(UPLOAD).where(UPLOAD.c.expires_at < now).order_by(UPLOAD.c.expires_at)
        return [UploadRecord(**row._asdict()) for row in self._c.execute(query.limit(limit))]

    # users and keys
    def user(self, username: str) -> UserRecord | None:
        row = self._c.execute(_Q_USER, {"username": username}).first()
        return UserRecord(*row) if row else None

    def upsert_user(self, username: str, password_hash: str, is_admin: bool) -> None:
        statement: Any = self._insert(USER).values(
            username=username,
            password_hash=password_hash,
            is_admin=is_admin,
            disabled=False,
            created_at=_now(),
        )
        statement = statement.on_conflict_do_update(
            index_elements=[USER.c.username],
            set_={"password_hash": password_hash, "is_admin": is_admin},
        )
        self._c.execute(statement)

    def replace_password_hash(self, username: str, old_hash: str, new_hash: str) -> bool:
        params = {"rehash_user": username, "old_hash": old_hash, "new_hash": new_hash}
        return bool(self._c.execute(_Q_REPLACE_PASSWORD_HASH, params).rowcount)

    def signing_keys(self) -> list[tuple[str, str, datetime]]:
        query = select(
            SIGNING_KEY.c.kid, SIGNING_KEY.c.private_pem, SIGNING_KEY.c.created_at
        ).order_by(SIGNING_KEY.c.created_at, SIGNING_KEY.c.kid)
        return [(row.kid, row.private_pem, row.created_at) for row in self._c.execute(query)]

    def add_signing_key(self, kid: str, private_pem: str) -> None:
        self._insert_ignore(
            SIGNING_KEY, kid=kid, private_pem=private_pem, created_at=datetime.now(UTC)
        )
