"""The SQL implementation of the metadata port (``core.ports.Metadata``).

:class:`SqlMetadata` is the single entry point the composition root builds: it opens
units of work (:class:`SqlUnitOfWork`), one database transaction each, on the reader
or the writer engine. A unit of work exposes one small repository per aggregate
(``storage.db.repos``), all on its one connection, so a service changes several
aggregates atomically: everything commits together or nothing is stored. Every writer
takes the process's SQLite write lock first (``Engines.writing``).

Queries use SQLAlchemy Core on the SQLModel tables: each read is one indexed query,
and racing identical inserts resolve with ``ON CONFLICT`` on both SQLite and PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import cached_property
from typing import TypeVar

from sqlalchemy import Connection, text

from core.ports import ReadWouldWait
from core.records import BlobRecord, ManifestRecord, RepositoryRecord
from storage.db.engine import Engines
from storage.db.group_commit import GroupCommit
from storage.db.nowait import NowaitReader
from storage.db.repos.blobs import NOWAIT_NAMED_BLOB, SqlBlobs, named_blob
from storage.db.repos.identity import SqlIssuers, SqlLogins, SqlMembers, SqlRobots, SqlTokens
from storage.db.repos.manifests import (
    DIRECT_NAMED_MANIFEST,
    DIRECT_NAMED_TAGGED_MANIFEST,
    NOWAIT_NAMED_MANIFEST,
    NOWAIT_NAMED_TAGGED_MANIFEST,
    SqlManifests,
    named,
)
from storage.db.repos.outbox import SqlEventQueues, SqlOutbox
from storage.db.repos.policies import SqlPolicies
from storage.db.repos.projects import SqlProjects
from storage.db.repos.repositories import NOWAIT_REPOSITORY, SqlRepositories, repository_record
from storage.db.repos.reviews import SqlCollector, SqlReviewQueue
from storage.db.repos.runs import SqlRuns
from storage.db.repos.signing_keys import SqlSigningKeys
from storage.db.repos.tags import SqlTags
from storage.db.repos.uploads import SqlUploads
from storage.db.repos.users import SqlUsers

_T = TypeVar("_T")


class SqlUnitOfWork:
    """One transaction and its repositories; see ``core.ports.UnitOfWork``.

    A repository is made on first use (a manifest read builds one object), and every
    repository of a unit of work runs its statements on the same connection.
    """

    def __init__(self, connection: Connection) -> None:
        self._c = connection

    def commit(self) -> None:
        transaction = self._c.get_transaction()
        if transaction is not None:
            transaction.commit()

    # the data plane
    @cached_property
    def projects(self) -> SqlProjects:
        return SqlProjects(self._c)

    @cached_property
    def repositories(self) -> SqlRepositories:
        return SqlRepositories(self._c)

    @cached_property
    def blobs(self) -> SqlBlobs:
        return SqlBlobs(self._c)

    @cached_property
    def manifests(self) -> SqlManifests:
        return SqlManifests(self._c)

    @cached_property
    def tags(self) -> SqlTags:
        return SqlTags(self._c)

    @cached_property
    def uploads(self) -> SqlUploads:
        return SqlUploads(self._c)

    # identity
    @cached_property
    def users(self) -> SqlUsers:
        return SqlUsers(self._c)

    @cached_property
    def signing_keys(self) -> SqlSigningKeys:
        return SqlSigningKeys(self._c)

    @cached_property
    def members(self) -> SqlMembers:
        return SqlMembers(self._c)

    @cached_property
    def robots(self) -> SqlRobots:
        return SqlRobots(self._c)

    @cached_property
    def tokens(self) -> SqlTokens:
        return SqlTokens(self._c)

    @cached_property
    def issuers(self) -> SqlIssuers:
        return SqlIssuers(self._c)

    @cached_property
    def logins(self) -> SqlLogins:
        return SqlLogins(self._c)

    # the control plane
    @cached_property
    def outbox(self) -> SqlOutbox:
        return SqlOutbox(self._c)

    @cached_property
    def event_queues(self) -> SqlEventQueues:
        return SqlEventQueues(self._c)

    @cached_property
    def reviews(self) -> SqlReviewQueue:
        return SqlReviewQueue(self._c)

    @cached_property
    def collector(self) -> SqlCollector:
        return SqlCollector(self._c)

    @cached_property
    def policies(self) -> SqlPolicies:
        return SqlPolicies(self._c)

    @cached_property
    def runs(self) -> SqlRuns:
        return SqlRuns(self._c)


class SqlMetadata:
    """Opens :class:`SqlUnitOfWork` transactions on the reader or writer engine."""

    def __init__(self, engines: Engines) -> None:
        self._engines = engines
        # NOTE: PostgreSQL's READ COMMITTED gives each statement its own snapshot in a
        # transaction too, so reads run without one: no BEGIN and COMMIT round trips.
        # SQLite keeps its read transaction (one WAL snapshot for all its statements).
        self._reader = (
            engines.read.execution_options(isolation_level="AUTOCOMMIT")
            if engines.read.dialect.name == "postgresql"
            else engines.read
        )
        #: SQLite only: writers of this process share transactions (``write_grouped``).
        self._group = (
            GroupCommit(engines.writing) if engines.write.dialect.name == "sqlite" else None
        )

    @contextmanager
    def read(self) -> Iterator[SqlUnitOfWork]:
        with self._reader.connect() as connection, connection.begin():
            yield SqlUnitOfWork(connection)

    @contextmanager
    def write(self) -> Iterator[SqlUnitOfWork]:
        with self._engines.writing() as connection:
            transaction = connection.begin()
            try:
                yield SqlUnitOfWork(connection)
            finally:
                if transaction.is_active:
                    transaction.rollback()

    @property
    def reads_nowait(self) -> bool:
        """Whether :meth:`read_nowait` can succeed here (SQLite: local, WAL readers)."""
        return self._engines.nowait_read is not None

    def write_grouped(self, work: Callable[[SqlUnitOfWork], _T]) -> _T:
        """Run ``work`` in a write transaction, possibly shared; see ``Metadata``."""
        if self._group is None:
            with self.write() as session:
                result = work(session)
                session.commit()
                return result
        return self._group.run(lambda connection: work(SqlUnitOfWork(connection)))

    def _nowait_reader(self) -> NowaitReader:
        reader = self._engines.nowait_read
        if reader is None:
            raise ReadWouldWait("reads on this database may wait")
        return reader

    def repository_nowait(self, name: str) -> RepositoryRecord | None:
        """``repositories.get`` on the event loop reader; see ``NowaitReads``."""
        reader = self._nowait_reader()
        row = reader.first(NOWAIT_REPOSITORY, {"name": name})
        return None if row is None else repository_record(row)

    def named_blob_nowait(
        self, name: str, digest: str
    ) -> tuple[RepositoryRecord, BlobRecord | None] | None:
        """The repository and its linked blob on the event loop reader; see ``NowaitReads``."""
        return named_blob(
            self._nowait_reader().first(NOWAIT_NAMED_BLOB, {"name": name, "d": digest})
        )

    def named_manifest_nowait(
        self, name: str, digest: str | None, tag: str | None
    ) -> tuple[RepositoryRecord, ManifestRecord | None] | None:
        """``manifests.named`` on the event loop reader; see ``NowaitReads``."""
        reader = self._nowait_reader()
        if digest is not None:
            row = reader.first(NOWAIT_NAMED_MANIFEST, {"name": name, "d": digest})
        else:
            row = reader.first(NOWAIT_NAMED_TAGGED_MANIFEST, {"name": name, "tag": tag})
        return named(row)

    @property
    def reads_async(self) -> bool:
        """Whether :meth:`named_manifest_async` can answer here (PostgreSQL)."""
        return self._engines.async_read is not None

    async def named_manifest_async(
        self, name: str, digest: str | None, tag: str | None
    ) -> tuple[RepositoryRecord, ManifestRecord | None] | None:
        """``manifests.named`` awaited on the event loop; see ``AsyncReads``."""
        reader = self._engines.async_read
        if reader is None:
            raise ReadWouldWait("this database has no awaited reads")
        if digest is not None:
            row = await reader.first(DIRECT_NAMED_MANIFEST, {"name": name, "d": digest})
        else:
            row = await reader.first(DIRECT_NAMED_TAGGED_MANIFEST, {"name": name, "tag": tag})
        return named(row)

    async def close_async_reads(self) -> None:
        """Close the running loop's awaited-read connections; see ``AsyncReads``."""
        if self._engines.async_read is not None:
            await self._engines.async_read.aclose()

    def ping(self) -> None:
        with self._engines.read.connect() as connection:
            connection.execute(text("SELECT 1"))
