"""Tags of a repository (table ``tag``): a name pointing at one manifest."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Executable, bindparam, delete, select

from storage.db.direct import DirectStatement
from storage.db.repos.base import SqlRepository, dialect_inserts, now, table_of
from storage.db.repos.repositories import REPOSITORY
from storage.db.tables import Manifest, Tag
from storage.db.value_lists import DIALECTS, in_list, list_value

TAG, _MANIFEST = table_of(Tag), table_of(Manifest)

_Q_TAG_TARGET = (
    select(_MANIFEST.c.digest)
    .join(TAG, TAG.c.manifest_id == _MANIFEST.c.id)
    .where(TAG.c.repository_id == bindparam("repository_id"), TAG.c.name == bindparam("tag"))
)

#: The digests of a list of tags of a repository named by its name: one indexed statement.
_Q_NAMED_TARGETS = {
    dialect: select(TAG.c.name, _MANIFEST.c.digest)
    .select_from(
        REPOSITORY.join(TAG, TAG.c.repository_id == REPOSITORY.c.id).join(
            _MANIFEST, _MANIFEST.c.id == TAG.c.manifest_id
        )
    )
    .where(REPOSITORY.c.name == bindparam("name"), in_list(TAG.c.name, "tags", dialect))
    for dialect in DIALECTS
}

_Q_DELETE_TAG = delete(TAG).where(
    TAG.c.repository_id == bindparam("repository_id"), TAG.c.name == bindparam("tag")
)


def _tags_query(after: bool) -> Executable:
    query = select(TAG.c.name).where(TAG.c.repository_id == bindparam("repository_id"))
    if after:
        query = query.where(TAG.c.name > bindparam("last"))
    return query.order_by(TAG.c.name).limit(bindparam("limit"))


_Q_TAGS = {after: _tags_query(after) for after in (False, True)}


def _upsert_tag(statement: Any) -> Any:
    return statement.on_conflict_do_update(
        index_elements=[TAG.c.repository_id, TAG.c.name],
        set_={
            "manifest_id": statement.excluded.manifest_id,
            "updated_at": statement.excluded.updated_at,
        },
    )


#: A push's tag write (``storage.db.direct``: run on the cursor, compiled once).
_UPSERT_TAG = {
    dialect: DirectStatement(_upsert_tag(st)) for dialect, st in dialect_inserts(TAG).items()
}


class SqlTags(SqlRepository):
    """See ``core.ports.TagRepository``."""

    __slots__ = ()

    def set(self, repository_id: int, tag: str, manifest_id: int) -> None:
        values = {
            "repository_id": repository_id,
            "name": tag,
            "manifest_id": manifest_id,
            "updated_at": now(),
        }
        _UPSERT_TAG[self._dialect].rows(self._c, values)

    def delete(self, repository_id: int, tag: str) -> bool:
        result = self._c.execute(_Q_DELETE_TAG, {"repository_id": repository_id, "tag": tag})
        return bool(result.rowcount)

    def page(self, repository_id: int, last: str | None, limit: int) -> list[str]:
        params = {"repository_id": repository_id, "last": last, "limit": limit}
        return list(self._c.execute(_Q_TAGS[last is not None], params).scalars())

    def target(self, repository_id: int, tag: str) -> str | None:
        params = {"repository_id": repository_id, "tag": tag}
        digest: str | None = self._c.execute(_Q_TAG_TARGET, params).scalar()
        return digest

    def named_targets(self, repository: str, tags: list[str]) -> dict[str, str]:
        params = {"name": repository, "tags": list_value(self._dialect, tags)}
        rows = self._c.execute(_Q_NAMED_TARGETS[self._dialect], params)
        return {row.name: row.digest for row in rows}

    def of_manifest(self, repository_id: int, digest: str) -> list[str]:
        query = (
            select(TAG.c.name)
            .join(_MANIFEST, TAG.c.manifest_id == _MANIFEST.c.id)
            .where(_MANIFEST.c.repository_id == repository_id, _MANIFEST.c.digest == digest)
            .order_by(TAG.c.name)
        )
        return list(self._c.execute(query).scalars())
