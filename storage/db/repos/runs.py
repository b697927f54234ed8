"""Control-plane runs (table ``control_run``): GC and retention runs and their reports."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select, update

from core.control_records import GcRunRecord
from storage.db.control_tables import ControlRun
from storage.db.repos.base import SqlRepository, table_of

RUN = table_of(ControlRun)
#: Run states that are not finished: a run in one of them has no ``finished_at``.
_OPEN = frozenset({"queued", "running"})


class SqlRuns(SqlRepository):
    """See ``core.control_ports.RunRepository``."""

    __slots__ = ()

    def add(self, run: GcRunRecord) -> bool:
        statement = self._insert(RUN).values(
            id=run.id,
            kind=run.kind,
            project=run.project,
            state=run.state,
            dry_run=run.dry_run,
            delete_untagged=run.delete_untagged,
            review_delay_seconds=run.review_delay_seconds,
            report=run.report,
            created_at=run.created_at,
            finished_at=run.finished_at,
        )
        result = self._c.execute(statement.on_conflict_do_nothing())
        return bool(result.rowcount)

    def finish(self, run_id: str, state: str, report: str, now: datetime) -> None:
        self._c.execute(
            update(RUN)
            .where(RUN.c.id == run_id)
            .values(state=state, report=report, finished_at=None if state in _OPEN else now)
        )

    def get(self, run_id: str) -> GcRunRecord | None:
        row = self._c.execute(select(RUN).where(RUN.c.id == run_id)).first()
        return GcRunRecord(**row._asdict()) if row else None

    def get_for_update(self, run_id: str) -> GcRunRecord | None:
        query = self._locking(select(RUN).where(RUN.c.id == run_id))
        row = self._c.execute(query).first()
        return GcRunRecord(**row._asdict()) if row else None

    def latest(self, kind: str, project: str | None, limit: int) -> list[GcRunRecord]:
        query = select(RUN).where(RUN.c.kind == kind).order_by(RUN.c.created_at.desc())
        if project is not None:
            query = query.where(RUN.c.project == project)
        return [GcRunRecord(**row._asdict()) for row in self._c.execute(query.limit(limit))]
