"""Manifests of a repository and what they reference.

Tables ``manifest``, ``manifest_blob`` and ``manifest_child``, including the pull's
one-statement read of a repository and its manifest by tag or digest.

The data plane's statements are built once, at import, with ``bindparam`` placeholders:
building a statement and computing its cache key cost far more than running it, and a
prebuilt statement hits SQLAlchemy's compiled cache with its key memoised.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import bindparam, delete, literal, select, union_all

from core.records import ManifestRecord, NewManifest, PushLookup, RepositoryRecord, StoredRef
from storage.db.direct import DirectStatement
from storage.db.nowait import Prepared
from storage.db.repos.base import RecordMap, SqlRepository, insert_ignore, now, table_of
from storage.db.repos.repositories import REPOSITORY, REPOSITORY_COLUMNS, WITH_PROJECT
from storage.db.tables import Blob, Manifest, ManifestBlob, ManifestChild, RepositoryBlob, Tag
from storage.db.value_lists import DIALECTS, in_list, list_value

MANIFEST, TAG, _BLOB = table_of(Manifest), table_of(Tag), table_of(Blob)
MANIFEST_BLOB, MANIFEST_CHILD = table_of(ManifestBlob), table_of(ManifestChild)
_REPO_BLOB = table_of(RepositoryBlob)

_MANIFEST_FIELDS = (
    "id",
    "repository_id",
    "digest",
    "media_type",
    "artifact_type",
    "subject_digest",
    "annotations",
    "size",
    "payload",
    "pulled_at",
)
_MANIFEST_COLUMNS = tuple(MANIFEST.c[name] for name in _MANIFEST_FIELDS)
#: The manifest columns of the named reads, labelled apart from the repository's.
_PREFIXED_MANIFEST_COLUMNS = tuple(MANIFEST.c[name].label(f"m_{name}") for name in _MANIFEST_FIELDS)

_Q_MANIFEST = select(*_MANIFEST_COLUMNS).where(
    MANIFEST.c.repository_id == bindparam("repository_id"), MANIFEST.c.digest == bindparam("d")
)
_RECORD = RecordMap(ManifestRecord, _Q_MANIFEST)
#: The repository by name and, if present, its manifest by digest: one indexed statement.
_Q_NAMED_MANIFEST = (
    select(*REPOSITORY_COLUMNS, *_PREFIXED_MANIFEST_COLUMNS)
    .select_from(
        WITH_PROJECT.outerjoin(
            MANIFEST,
            (MANIFEST.c.repository_id == REPOSITORY.c.id) & (MANIFEST.c.digest == bindparam("d")),
        )
    )
    .where(REPOSITORY.c.name == bindparam("name"))
)
#: The repository by name and, if the tag exists, the manifest it points at.
_Q_NAMED_TAGGED_MANIFEST = (
    select(*REPOSITORY_COLUMNS, *_PREFIXED_MANIFEST_COLUMNS)
    .select_from(
        WITH_PROJECT.outerjoin(
            TAG, (TAG.c.repository_id == REPOSITORY.c.id) & (TAG.c.name == bindparam("tag"))
        ).outerjoin(MANIFEST, MANIFEST.c.id == TAG.c.manifest_id)
    )
    .where(REPOSITORY.c.name == bindparam("name"))
)
# NOTE: both named reads select the same columns in the same order, so one map serves both.
_NAMED_REPOSITORY = RecordMap(RepositoryRecord, _Q_NAMED_MANIFEST)
_NAMED_MANIFEST = RecordMap(ManifestRecord, _Q_NAMED_MANIFEST, prefix="m_")
if [c.key for c in _Q_NAMED_MANIFEST.selected_columns] != [
    c.key for c in _Q_NAMED_TAGGED_MANIFEST.selected_columns
]:  # pragma: no cover - a programming error, caught at import
    raise RuntimeError("the named manifest reads must select the same columns")
#: The same two reads, compiled for the event loop reader (``storage.db.nowait``).
NOWAIT_NAMED_MANIFEST = Prepared.of(_Q_NAMED_MANIFEST)
NOWAIT_NAMED_TAGGED_MANIFEST = Prepared.of(_Q_NAMED_TAGGED_MANIFEST)
#: The same reads on a driver's cursor: the unit of work's, or the awaited reader's
#: (``storage.db.async_reads``), where there is no nowait reader.
DIRECT_NAMED_MANIFEST = DirectStatement(_Q_NAMED_MANIFEST)
DIRECT_NAMED_TAGGED_MANIFEST = DirectStatement(_Q_NAMED_TAGGED_MANIFEST)

_Q_MANIFEST_IDS = {
    dialect: select(MANIFEST.c.digest, MANIFEST.c.id).where(
        MANIFEST.c.repository_id == bindparam("repository_id"),
        in_list(MANIFEST.c.digest, "ds", dialect),
    )
    for dialect in DIALECTS
}
_Q_MANIFEST_REFS = {
    dialect: select(MANIFEST.c.digest, MANIFEST.c.id, MANIFEST.c.size).where(
        MANIFEST.c.repository_id == bindparam("repository_id"),
        in_list(MANIFEST.c.digest, "ds", dialect),
    )
    for dialect in DIALECTS
}
#: A push's reads in one statement: linked blobs, stored manifests, the tag's target
#: (``storage.db.direct``: run on the cursor).
_PUSH_LOOKUP = {
    dialect: DirectStatement(
        union_all(
            select(literal("b").label("kind"), _BLOB.c.digest, _BLOB.c.id, _BLOB.c.size)
            .join(_REPO_BLOB, _REPO_BLOB.c.blob_id == _BLOB.c.id)
            .where(
                _REPO_BLOB.c.repository_id == bindparam("repository_id"),
                in_list(_BLOB.c.digest, "blobs", dialect),
            ),
            select(literal("m"), MANIFEST.c.digest, MANIFEST.c.id, MANIFEST.c.size).where(
                MANIFEST.c.repository_id == bindparam("repository_id"),
                in_list(MANIFEST.c.digest, "manifests", dialect),
            ),
            select(literal("t"), MANIFEST.c.digest, MANIFEST.c.id, MANIFEST.c.size)
            .join(TAG, TAG.c.manifest_id == MANIFEST.c.id)
            .where(
                TAG.c.repository_id == bindparam("repository_id"), TAG.c.name == bindparam("tag")
            ),
        )
    )
    for dialect in DIALECTS
}
_INSERT_MANIFEST_RETURNING = {
    dialect: DirectStatement(statement.returning(MANIFEST.c.id))
    for dialect, statement in insert_ignore(MANIFEST).items()
}
_INSERT_MANIFEST_BLOB = insert_ignore(MANIFEST_BLOB)
_INSERT_MANIFEST_CHILD = insert_ignore(MANIFEST_CHILD)


def named(row: Any) -> tuple[RepositoryRecord, ManifestRecord | None] | None:
    """A row of the named-manifest reads: the repository and, if found, its manifest."""
    if row is None:
        return None
    # NOTE: the outer join leaves every manifest column NULL when there is no match.
    found = row[_NAMED_MANIFEST.first_index] is not None
    return _NAMED_REPOSITORY(row), (_NAMED_MANIFEST(row) if found else None)


class SqlManifests(SqlRepository):
    """See ``core.ports.ManifestRepository``."""

    __slots__ = ()

    def get(self, repository_id: int, digest: str) -> ManifestRecord | None:
        params = {"repository_id": repository_id, "d": digest}
        row = self._c.execute(_Q_MANIFEST, params).first()
        return _RECORD(row) if row else None

    def named(
        self, name: str, digest: str | None, tag: str | None
    ) -> tuple[RepositoryRecord, ManifestRecord | None] | None:
        if digest is not None:
            rows = DIRECT_NAMED_MANIFEST.rows(self._c, {"name": name, "d": digest})
        else:
            rows = DIRECT_NAMED_TAGGED_MANIFEST.rows(self._c, {"name": name, "tag": tag})
        return named(rows[0] if rows else None)

    def ids(self, repository_id: int, digests: list[str]) -> dict[str, int]:
        params = {"repository_id": repository_id, "ds": list_value(self._dialect, digests)}
        rows = self._c.execute(_Q_MANIFEST_IDS[self._dialect], params)
        return {row.digest: row.id for row in rows}

    def refs(self, repository_id: int, digests: list[str]) -> dict[str, StoredRef]:
        params = {"repository_id": repository_id, "ds": list_value(self._dialect, digests)}
        rows = self._c.execute(_Q_MANIFEST_REFS[self._dialect], params)
        return {row.digest: StoredRef(row.id, row.size) for row in rows}

    def push_lookup(
        self,
        repository_id: int,
        blob_digests: list[str],
        manifest_digests: list[str],
        tag: str | None,
    ) -> PushLookup:
        params = {
            "repository_id": repository_id,
            "blobs": list_value(self._dialect, blob_digests),
            "manifests": list_value(self._dialect, manifest_digests),
            "tag": tag,
        }
        blobs: dict[str, StoredRef] = {}
        manifests: dict[str, StoredRef] = {}
        target = None
        for kind, digest, row_id, size in _PUSH_LOOKUP[self._dialect].rows(self._c, params):
            if kind == "t":
                target = digest
            else:
                (blobs if kind == "b" else manifests)[digest] = StoredRef(row_id, size)
        return PushLookup(blobs, manifests, target)

    def add(self, repository_id: int, manifest: NewManifest) -> int:
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
            "created_at": now(),
        }
        rows = _INSERT_MANIFEST_RETURNING[self._dialect].rows(self._c, values)
        if not rows:  # already stored (by this caller's past or a concurrent writer)
            return self.ids(repository_id, [manifest.digest])[manifest.digest]
        manifest_id = rows[0][0]
        # NOTE: one executemany per reference table instead of one statement per row.
        blob_rows = [{"manifest_id": manifest_id, "blob_id": b} for b in set(manifest.blob_ids)]
        if blob_rows:
            self._c.execute(_INSERT_MANIFEST_BLOB[self._dialect], blob_rows)
        child_rows = [{"parent_id": manifest_id, "child_id": c} for c in set(manifest.child_ids)]
        if child_rows:
            self._c.execute(_INSERT_MANIFEST_CHILD[self._dialect], child_rows)
        return int(manifest_id)

    def delete(self, repository_id: int, digest: str) -> bool:
        ids = self.ids(repository_id, [digest])
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
        return [_RECORD(row) for row in self._c.execute(query)]

    def references(self, repository_id: int, digest: str) -> tuple[list[str], list[str]]:
        manifest_id = select(MANIFEST.c.id).where(
            MANIFEST.c.repository_id == repository_id, MANIFEST.c.digest == digest
        )
        blobs = select(_BLOB.c.digest).join(MANIFEST_BLOB, MANIFEST_BLOB.c.blob_id == _BLOB.c.id)
        blobs = blobs.where(MANIFEST_BLOB.c.manifest_id.in_(manifest_id))
        children = select(MANIFEST.c.digest).join(
            MANIFEST_CHILD, MANIFEST_CHILD.c.child_id == MANIFEST.c.id
        )
        children = children.where(MANIFEST_CHILD.c.parent_id.in_(manifest_id))
        return (
            list(self._c.execute(blobs).scalars()),
            list(self._c.execute(children).scalars()),
        )
