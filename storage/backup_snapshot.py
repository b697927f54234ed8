"""Logical snapshots of the metadata database (``core.backup_ports.Snapshots``).

Why logical, not ``pg_dump`` or SQLite's online backup API: one snapshot must restore into
either database (the data-migration path SQLite -> PostgreSQL), a single project must be
taken out of it and added to an installation that has other projects (fresh ids, every
foreign key rewritten), and both must work without the database's client tools of the
right major version on the worker. A physical copy does none of that. The cost is speed
on very large databases; for point-in-time recovery of PostgreSQL, WAL archiving remains
the database's own business (README, "Backup and restore").

Dump: every table (reflected from the live database, so tables added by later
migrations are included without code here) is read in one transaction (PostgreSQL:
``REPEATABLE READ``; SQLite: one read transaction in WAL mode), parents before children,
rows in primary-key order, in ``core.backup_format``'s form. Work queues and per-process
state (uploads, outbox, GC queues and runs, login throttling, backup holds) are left out:
they describe the moment, not the registry.

Load: in one write transaction. A whole installation replaces every table's rows with
the snapshot's (ids kept, PostgreSQL sequences set past them), so the audit chain is the
backup's, byte for byte. One project is added beside the others: a row belongs to the
project when its foreign keys lead to the project's row; integer primary keys are
assigned fresh and every foreign key pointing at them is rewritten.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import IO, Any, Final

from sqlalchemy import Connection, Integer, MetaData, Table, delete, exists, insert, select, text

from core.backup import BlobEntry, ProjectEntry, RestoreRefusedError, SnapshotFacts
from core.backup_format import SnapshotWriter, read_rows
from storage.db.engine import Engines

#: Tables never in a snapshot (the moment's work and per-process state).
EPHEMERAL: Final = frozenset(
    {
        "alembic_version",
        "upload",
        "outbox_event",
        "event_queue",
        "event_batch",
        "gc_blob_review",
        "gc_manifest_review",
        "gc_orphan",
        "control_run",
        "login_attempt",
        "oidc_login",
        "backup_hold",
    }
)
#: Tables a whole restore leaves as they are.
KEPT: Final = frozenset({"alembic_version", "backup_hold"})
ROOT: Final = "project"
_BATCH: Final = 500


def _reflect(c: Connection) -> MetaData:
    meta = MetaData()
    meta.reflect(c)
    return meta


def _tables(meta: MetaData) -> list[Table]:
    return [t for t in meta.sorted_tables if t.name not in EPHEMERAL]


class _Scope:
    """Which rows belong to the snapshot: all, or one project's (by foreign keys)."""

    def __init__(self, meta: MetaData, project: str | None) -> None:
        self.project = project
        self.tenant: set[str] = {ROOT}
        for table in meta.sorted_tables:
            if any(fk.column.table.name in self.tenant for fk in table.foreign_keys):
                self.tenant.add(table.name)
        self.referenced: dict[str, set[str]] = {}
        for table in meta.sorted_tables:
            for fk in table.foreign_keys:
                self.referenced.setdefault(fk.column.table.name, set()).add(fk.column.name)
        self._kept: dict[tuple[str, str], set[object]] = {}

    def keeps(self, table: Table, row: Mapping[str, object]) -> bool:
        if self.project is None:
            return True
        if table.name not in self.tenant:
            return False
        if table.name == ROOT:
            ok = row["name"] == self.project
        else:
            links = [
                (fk.column.table.name, fk.column.name, row.get(fk.parent.name))
                for fk in table.foreign_keys
                if fk.column.table.name in self.tenant
            ]
            present = [link for link in links if link[2] is not None]
            ok = bool(present) and all(
                value in self._kept.get((ref, col), set()) for ref, col, value in present
            )
        if ok:
            for column in self.referenced.get(table.name, ()):
                self._kept.setdefault((table.name, column), set()).add(row[column])
        return ok


class _Facts:
    """What a dump learns about projects, blobs and the audit head."""

    def __init__(self) -> None:
        self.projects: list[ProjectEntry] = []
        self.blobs: dict[str, BlobEntry] = {}
        self.rows: dict[str, int] = {}
        self.head: tuple[int, str] | None = None

    def see(self, table: str, row: Mapping[str, Any]) -> None:
        self.rows[table] = self.rows.get(table, 0) + 1
        if table == ROOT:
            self.projects.append(ProjectEntry(row["id"], row["name"], row["storage_id"]))
        elif table == "blob":
            entry = self.blobs.setdefault(row["digest"], BlobEntry(row["digest"], row["size"]))
            entry.projects.append(row["project_id"])
        elif table == "audit_head":
            self.head = (int(row["last_id"]), str(row["last_hash"]))


def _adapt(table: Table, row: Mapping[str, object]) -> dict[str, object]:
    """The row's values for this database's columns (timestamps as the column keeps them)."""
    values: dict[str, object] = {}
    for name, raw in row.items():
        column = table.columns.get(name)
        if column is None:
            raise RestoreRefusedError(f"table {table.name} has no column {name}")
        value = raw
        if isinstance(raw, datetime):
            moment = raw.astimezone(UTC) if raw.tzinfo else raw.replace(tzinfo=UTC)
            aware = getattr(column.type, "timezone", False)
            value = moment if aware else moment.replace(tzinfo=None)
        values[name] = value
    return values


def _serial_key(table: Table) -> str | None:
    """The table's integer primary key column, if it is a single one without a foreign key."""
    columns = list(table.primary_key.columns)
    if len(columns) == 1 and isinstance(columns[0].type, Integer) and not columns[0].foreign_keys:
        return columns[0].name
    return None


class SqlSnapshots:
    """Snapshots on the engines of this installation (see the module docstring)."""

    def __init__(self, engines: Engines) -> None:
        self._engines = engines

    def revision(self) -> str | None:
        with self._engines.read.connect() as c, c.begin():
            return c.execute(text("SELECT version_num FROM alembic_version")).scalar()

    def project_exists(self, name: str) -> bool:
        with self._engines.read.connect() as c, c.begin():
            return self._project_exists(c, name)

    def has_projects(self) -> bool:
        with self._engines.read.connect() as c, c.begin():
            return self._has_projects(c)

    def holds_storage(self, storage_ids: list[str]) -> bool:
        with self._engines.read.connect() as c, c.begin():
            table = Table(ROOT, MetaData(), autoload_with=c)
            query = select(exists().where(table.c.storage_id.in_(storage_ids)))
            return bool(storage_ids) and bool(c.execute(query).scalar())

    @staticmethod
    def _project_exists(c: Connection, name: str) -> bool:
        table = Table(ROOT, MetaData(), autoload_with=c)
        return bool(c.execute(select(exists().where(table.c.name == name))).scalar())

    @staticmethod
    def _has_projects(c: Connection) -> bool:
        table = Table(ROOT, MetaData(), autoload_with=c)
        return bool(c.execute(select(exists().select_from(table))).scalar())

    def dump(self, out: IO[bytes], project: str | None) -> SnapshotFacts:
        with self._engines.read.connect() as connection:
            c = connection
            if c.dialect.name == "postgresql":
                c = c.execution_options(isolation_level="REPEATABLE READ")
            with c.begin():
                revision = c.execute(text("SELECT version_num FROM alembic_version")).scalar_one()
                meta = _reflect(c)
                scope, facts, writer = _Scope(meta, project), _Facts(), SnapshotWriter(out)
                for table in _tables(meta):
                    order = list(table.primary_key.columns) or list(table.columns)
                    for mapping in c.execute(select(table).order_by(*order)).mappings():
                        row = dict(mapping)
                        if scope.keeps(table, row):
                            writer.row(table.name, row)
                            facts.see(table.name, row)
                writer.close()
        return SnapshotFacts(
            revision=str(revision),
            dialect=c.dialect.name,
            projects=facts.projects,
            blobs=list(facts.blobs.values()),
            rows=facts.rows,
            audit_head=facts.head if project is None else None,
        )

    def load(
        self, snapshot: Iterable[bytes], project: str | None, storage_ids: dict[int, str]
    ) -> dict[str, int]:
        with self._engines.writing() as c, c.begin():
            meta = _reflect(c)
            if project is None:
                if self._has_projects(c):
                    raise RestoreRefusedError("the installation has projects")
                for table in reversed(meta.sorted_tables):
                    if table.name not in KEPT:
                        c.execute(delete(table))
            elif self._project_exists(c, project):
                raise RestoreRefusedError(f"project {project!r} exists here")
            loader = _Loader(c, meta, _Scope(meta, project), storage_ids)
            for name, row in read_rows(snapshot):
                loader.add(name, row)
            loader.flush()
            if project is None and c.dialect.name == "postgresql":
                _move_sequences(c, meta)
            return loader.counts


class _Loader:
    """Inserts a snapshot's rows: in batches (whole), or one by one with new ids (project)."""

    def __init__(
        self, c: Connection, meta: MetaData, scope: _Scope, storage_ids: dict[int, str]
    ) -> None:
        self._c, self._meta, self._scope, self._storage = c, meta, scope, storage_ids
        self._ids: dict[str, dict[object, object]] = {}
        self._pending: tuple[Table, list[dict[str, object]]] | None = None
        self.counts: dict[str, int] = {}

    def add(self, name: str, row: dict[str, object]) -> None:
        table = self._meta.tables.get(name)
        if table is None:
            raise RestoreRefusedError(f"this installation has no table {name}")
        if not self._scope.keeps(table, row):
            return
        values = _adapt(table, row)
        if name == ROOT:
            values["storage_id"] = self._storage[int(str(row["id"]))]
        self.counts[name] = self.counts.get(name, 0) + 1
        if self._scope.project is None:
            self._batch(table, values)
        else:
            self._insert_new(table, values)

    def _batch(self, table: Table, values: dict[str, object]) -> None:
        if self._pending is not None and self._pending[0] is not table:
            self.flush()
        if self._pending is None:
            self._pending = (table, [])
        self._pending[1].append(values)
        if len(self._pending[1]) >= _BATCH:
            self.flush()

    def flush(self) -> None:
        if self._pending is not None and self._pending[1]:
            self._c.execute(insert(self._pending[0]), self._pending[1])
        self._pending = None

    def _insert_new(self, table: Table, values: dict[str, object]) -> None:
        for fk in table.foreign_keys:
            mapped = self._ids.get(fk.column.table.name)
            old = values.get(fk.parent.name)
            if mapped is not None and old is not None:
                values[fk.parent.name] = mapped[old]
        key = _serial_key(table)
        if key is None:
            self._c.execute(insert(table).values(values))
            return
        old_id = values.pop(key)
        new_id = self._c.execute(insert(table).values(values).returning(table.c[key])).scalar_one()
        self._ids.setdefault(table.name, {})[old_id] = new_id


def _move_sequences(c: Connection, meta: MetaData) -> None:
    """Set each serial/identity sequence past the highest restored id (PostgreSQL)."""
    quote = c.dialect.identifier_preparer.quote
    for table in meta.sorted_tables:
        key = _serial_key(table)
        if key is None:
            continue
        sequence = c.execute(
            text("SELECT pg_get_serial_sequence(:t, :c)"), {"t": quote(table.name), "c": key}
        ).scalar()
        if sequence is None:
            continue
        top = c.execute(select(table.c[key]).order_by(table.c[key].desc()).limit(1)).scalar()
        c.execute(text("SELECT setval(:s, :v, false)"), {"s": sequence, "v": int(top or 0) + 1})
