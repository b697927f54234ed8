"""Read-only figures for the operators' gauges: outbox backlog, control runs, quota usage.

Each call is one short read transaction; none takes a lock a writer waits for.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import func, select

from core.control_records import Usage
from storage.db.control_tables import ControlRun, OutboxEvent, ProjectPolicy
from storage.db.engine import Engines
from storage.db.metadata import SqlUnitOfWork
from storage.db.repos.base import table_of
from storage.db.tables import Project

_OUTBOX, _RUN = table_of(OutboxEvent), table_of(ControlRun)
_PROJECT, _POLICY = table_of(Project), table_of(ProjectPolicy)


@dataclass(frozen=True, slots=True)
class Backlog:
    """Outbox events not dispatched yet, and when the oldest of them was written."""

    events: int
    oldest: datetime | None


@dataclass(frozen=True, slots=True)
class QuotaFigure:
    """One project's quota (its policy body, JSON) and what it uses."""

    project: str
    policy: str
    usage: Usage


class OpsStats:
    """Figures read from the metadata database."""

    def __init__(self, engines: Engines) -> None:
        self._engines = engines

    def backlog(self) -> Backlog:
        query = select(func.count(_OUTBOX.c.id), func.min(_OUTBOX.c.created_at)).where(
            _OUTBOX.c.dispatched_at.is_(None)
        )
        with self._engines.read.connect() as connection:
            count, oldest = connection.execute(query).one()
        if oldest is not None and oldest.tzinfo is None:
            oldest = oldest.replace(tzinfo=UTC)
        return Backlog(int(count), oldest)

    def runs(self) -> dict[tuple[str, str], int]:
        """How many control runs there are, by (kind, state)."""
        query = select(_RUN.c.kind, _RUN.c.state, func.count()).group_by(_RUN.c.kind, _RUN.c.state)
        with self._engines.read.connect() as connection:
            return {(kind, state): int(n) for kind, state, n in connection.execute(query)}

    def last_durations(self) -> dict[str, float]:
        """Seconds the last finished run of each kind took (queued to finished)."""
        durations: dict[str, float] = {}
        with self._engines.read.connect() as connection:
            kinds = list(connection.execute(select(_RUN.c.kind).distinct()).scalars())
            for kind in kinds:
                query = (
                    select(_RUN.c.created_at, _RUN.c.finished_at)
                    .where(_RUN.c.kind == kind, _RUN.c.finished_at.is_not(None))
                    .order_by(_RUN.c.finished_at.desc())
                    .limit(1)
                )
                row = connection.execute(query).first()
                if row is not None:
                    durations[kind] = (row.finished_at - row.created_at).total_seconds()
        return durations

    def quotas(self, limit: int) -> tuple[list[QuotaFigure], bool]:
        """The usage of the first ``limit`` projects with a quota, and whether more exist."""
        query = (
            select(_PROJECT.c.id, _PROJECT.c.name, _POLICY.c.body)
            .join(_POLICY, _POLICY.c.project_id == _PROJECT.c.id)
            .where(_POLICY.c.kind == "quota")
            .order_by(_PROJECT.c.id)
            .limit(limit + 1)
        )
        with self._engines.read.connect() as connection, connection.begin():
            rows = list(connection.execute(query))
            session = SqlUnitOfWork(connection)
            figures = [
                QuotaFigure(row.name, row.body, session.policies.usage(row.id))
                for row in rows[:limit]
            ]
        return figures, len(rows) > limit
