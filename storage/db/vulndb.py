"""SQL of the offline vulnerability data (``core.vulndb.ports.VulnStore``, ``VulnLookup``)."""

from __future__ import annotations

import json
from collections.abc import Collection, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, insert, select

from core.vulndb.osv import OsvRecord
from core.vulndb.ports import SourceState
from core.vulndb.versions import ecosystem_base
from storage.db.engine import Engines
from storage.db.repos.base import table_of
from storage.db.vulndb_tables import VulnAffected, VulnRecord, VulnSource

RECORD, AFFECTED, SOURCE = table_of(VulnRecord), table_of(VulnAffected), table_of(VulnSource)
#: Most ids in one ``IN`` list (well below every database's parameter limit).
_CHUNK = 500


def _chunks(items: Sequence[str]) -> list[Sequence[str]]:
    return [items[at : at + _CHUNK] for at in range(0, len(items), _CHUNK)]


class SqlVulnDb:
    """OSV records in the metadata database, on both SQLite and PostgreSQL."""

    def __init__(self, engines: Engines) -> None:
        self._engines = engines

    def source_state(self, ecosystem: str) -> SourceState | None:
        with self._engines.read.connect() as connection:
            row = connection.execute(select(SOURCE).where(SOURCE.c.ecosystem == ecosystem)).first()
        if row is None:
            return None
        return SourceState(
            row.ecosystem,
            row.location,
            row.newest_modified,
            row.imported_at,
            row.checked_at,
            row.records,
        )

    def sources(self) -> list[SourceState]:
        with self._engines.read.connect() as connection:
            rows = connection.execute(select(SOURCE).order_by(SOURCE.c.ecosystem)).all()
        return [
            SourceState(
                r.ecosystem, r.location, r.newest_modified, r.imported_at, r.checked_at, r.records
            )
            for r in rows
        ]

    def set_source_state(self, state: SourceState) -> None:
        values = {
            "location": state.location,
            "newest_modified": state.newest_modified,
            "imported_at": state.imported_at,
            "checked_at": state.checked_at,
            "records": state.records,
        }
        with self._engines.writing() as connection, connection.begin():
            connection.execute(delete(SOURCE).where(SOURCE.c.ecosystem == state.ecosystem))
            connection.execute(insert(SOURCE).values(ecosystem=state.ecosystem, **values))

    def stored_modified(self, ids: Collection[str]) -> dict[str, datetime]:
        found: dict[str, datetime] = {}
        with self._engines.read.connect() as connection:
            for chunk in _chunks(sorted(set(ids))):
                rows = connection.execute(
                    select(RECORD.c.id, RECORD.c.modified).where(RECORD.c.id.in_(chunk))
                )
                found.update({row.id: row.modified for row in rows})
        return found

    def save(self, records: Sequence[OsvRecord], source: str) -> None:
        if not records:
            return
        ids = [r.id for r in records]
        record_rows = [
            {
                "id": r.id,
                "modified": r.modified,
                "source": source,
                "aliases": json.dumps(list(r.aliases)),
                "document": json.dumps(r.document, separators=(",", ":")),
            }
            for r in records
        ]
        affected_rows = [
            {
                "record_id": r.id,
                "ecosystem": a.ecosystem,
                "ecosystem_base": ecosystem_base(a.ecosystem),
                "name": a.name,
                "affected": json.dumps(a.raw, separators=(",", ":")),
            }
            for r in records
            for a in r.affected
        ]
        with self._engines.writing() as connection, connection.begin():
            for chunk in _chunks(ids):
                connection.execute(delete(AFFECTED).where(AFFECTED.c.record_id.in_(chunk)))
                connection.execute(delete(RECORD).where(RECORD.c.id.in_(chunk)))
            connection.execute(insert(RECORD), record_rows)
            if affected_rows:
                connection.execute(insert(AFFECTED), affected_rows)

    def delete(self, ids: Collection[str]) -> int:
        removed = 0
        with self._engines.writing() as connection, connection.begin():
            for chunk in _chunks(sorted(set(ids))):
                connection.execute(delete(AFFECTED).where(AFFECTED.c.record_id.in_(chunk)))
                removed += connection.execute(delete(RECORD).where(RECORD.c.id.in_(chunk))).rowcount
        return removed

    def prune(self, source: str, keep: Collection[str]) -> int:
        with self._engines.read.connect() as connection:
            stored = set(
                connection.execute(select(RECORD.c.id).where(RECORD.c.source == source)).scalars()
            )
        return self.delete(stored - set(keep)) if stored - set(keep) else 0

    def counts(self) -> dict[str, int]:
        with self._engines.read.connect() as connection:
            rows = connection.execute(
                select(RECORD.c.source, func.count()).group_by(RECORD.c.source)
            ).all()
        return {str(source): int(count) for source, count in rows}

    def affected(
        self, ecosystem: str, names: Collection[str]
    ) -> list[tuple[str, dict[str, Any], dict[str, Any]]]:
        """Stored ``affected`` entries of ``names`` in ``ecosystem`` with their records."""
        found: list[tuple[str, dict[str, Any], dict[str, Any]]] = []
        documents: dict[str, dict[str, Any]] = {}
        query = select(AFFECTED.c.name, AFFECTED.c.affected, RECORD.c.id, RECORD.c.document).join(
            RECORD, RECORD.c.id == AFFECTED.c.record_id
        )
        with self._engines.read.connect() as connection:
            for chunk in _chunks(sorted(set(names))):
                rows = connection.execute(
                    query.where(AFFECTED.c.ecosystem == ecosystem, AFFECTED.c.name.in_(chunk))
                )
                for row in rows:
                    document = documents.get(row.id)
                    if document is None:
                        document = documents[row.id] = json.loads(row.document)
                    found.append((row.name, document, json.loads(row.affected)))
        return found
