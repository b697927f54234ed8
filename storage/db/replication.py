"""SQL of replication policies, executions and tasks (``core.replication.ReplicationStore``).

Closing an execution writes its ``replication.finished`` outbox event in the same
transaction (``core.replication_events``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from core.execution_reconcile import Ending
from core.replication import (
    ACTIVE_STATUSES,
    ArtifactKind,
    Direction,
    Execution,
    ExecutionStatus,
    PlannedTask,
    ReplicationPolicy,
    ReplicationTask,
    TaskOperation,
    TaskResult,
    TaskStatus,
    TriggerKind,
)
from core.replication_events import ERRORS_MAX, KIND, replication_event
from storage.db.engine import Engines
from storage.db.execution_stops import lock_active, request_stop
from storage.db.replication_tables import (
    ReplicationExecutionRow,
    ReplicationPolicyRow,
    ReplicationTaskRow,
)
from storage.db.repos.base import table_of
from storage.db.repos.outbox import SqlOutbox
from storage.db.rows import TableRows
from storage.db.task_pages import open_task_rows

_POLICY = table_of(ReplicationPolicyRow)
_EXECUTION = table_of(ReplicationExecutionRow)
_TASK = table_of(ReplicationTaskRow)
_ERROR_MAX = 2048
#: The result of a task an execution's stop kept from running.
NOT_RUN = "not run: the execution was stopped"


def _policy(row: Any) -> ReplicationPolicy:
    return ReplicationPolicy(
        id=row.id,
        name=row.name,
        description=row.description,
        enabled=bool(row.enabled),
        direction=Direction(row.direction),
        endpoint=row.endpoint,
        repositories=row.repositories,
        tags=row.tags,
        artifact_kind=ArtifactKind(row.artifact_kind),
        referrers=bool(row.referrers),
        flatten=row.flatten,
        prefix=row.prefix,
        trigger=TriggerKind(row.trigger),
        cron=row.cron,
        deletions=bool(row.deletions),
        override=bool(row.override),
        bandwidth_kbps=row.bandwidth_kbps,
        concurrency=row.concurrency,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def _policy_values(policy: ReplicationPolicy) -> dict[str, Any]:
    values = asdict(policy)
    del values["id"]
    for key in ("direction", "artifact_kind", "trigger"):
        values[key] = str(values[key])
    return values


def _execution(row: Any) -> Execution:
    return Execution(
        id=row.id,
        policy_id=row.policy_id,
        policy=row.policy,
        trigger=TriggerKind(row.trigger),
        status=ExecutionStatus(row.status),
        started_at=row.started_at,
        finished_at=row.finished_at,
        total=row.total,
        succeeded=row.succeeded,
        failed=row.failed,
        skipped=row.skipped,
        reason=row.reason,
    )


def _announce_finished(connection: Connection, execution_id: str) -> None:
    """Write the ``replication.finished`` event of the execution just closed."""
    row = connection.execute(select(_EXECUTION).where(_EXECUTION.c.id == execution_id)).one()
    failed = (
        select(_TASK.c.destination, _TASK.c.reference, _TASK.c.error)
        .where(_TASK.c.execution_id == execution_id, _TASK.c.status == str(TaskStatus.FAILED))
        .order_by(_TASK.c.id)
        .limit(ERRORS_MAX)
    )
    errors = [
        f"{task.destination}:{task.reference}: {task.error or 'failed'}"
        for task in connection.execute(failed)
    ]
    SqlOutbox(connection).add(KIND, data=replication_event(_execution(row), errors))


def _close(
    connection: Connection,
    execution_id: str,
    status: ExecutionStatus,
    reason: str | None,
    now: datetime,
) -> None:
    """Set an execution's final status and task counts (idempotent).

    The close that finishes it (``finished_at`` was unset) announces it, once; a repeated
    close (a retried activity) rewrites the same counts and announces nothing.
    """
    counts = (
        select(_TASK.c.status, func.count())
        .where(_TASK.c.execution_id == execution_id)
        .group_by(_TASK.c.status)
    )
    where = _EXECUTION.c.id == execution_id
    before = connection.execute(select(_EXECUTION.c.finished_at).where(where)).first()
    by_status = {row[0]: int(row[1]) for row in connection.execute(counts)}
    done = by_status.get(str(TaskStatus.COPIED), 0) + by_status.get(str(TaskStatus.DELETED), 0)
    connection.execute(
        update(_EXECUTION)
        .where(where)
        .values(
            status=str(status),
            reason=None if reason is None else reason[:_ERROR_MAX],
            finished_at=now,
            total=sum(by_status.values()),
            succeeded=done,
            failed=by_status.get(str(TaskStatus.FAILED), 0)
            + by_status.get(str(TaskStatus.PENDING), 0),
            skipped=by_status.get(str(TaskStatus.SKIPPED), 0),
        )
    )
    if before is not None and before.finished_at is None:
        _announce_finished(connection, execution_id)


_ACTIVE = frozenset(str(s) for s in ACTIVE_STATUSES)


def _lock_active(connection: Connection, execution_id: str) -> Any | None:
    """The execution's status and reason, locked, if it is still active (else ``None``)."""
    return lock_active(connection, _EXECUTION, execution_id, _ACTIVE)


def _close_stopped(connection: Connection, execution_id: str, reason: str, now: datetime) -> None:
    """Close an active execution as ``stopped``: its pending tasks are marked not run."""
    connection.execute(
        update(_TASK)
        .where(_TASK.c.execution_id == execution_id, _TASK.c.status == str(TaskStatus.PENDING))
        .values(status=str(TaskStatus.STOPPED), error=NOT_RUN, finished_at=now)
    )
    _close(connection, execution_id, ExecutionStatus.STOPPED, reason, now)


def _task(row: Any) -> ReplicationTask:
    return ReplicationTask(
        id=row.id,
        execution_id=row.execution_id,
        operation=TaskOperation(row.operation),
        source=row.source,
        destination=row.destination,
        reference=row.reference,
        digest=row.digest,
        status=TaskStatus(row.status),
        bytes_sent=row.bytes_sent,
        blobs_copied=row.blobs_copied,
        blobs_skipped=row.blobs_skipped,
        error=row.error,
        started_at=row.started_at,
        finished_at=row.finished_at,
    )


class SqlReplicationStore:
    """Replication rows on the metadata database, one short transaction per call."""

    def __init__(self, engines: Engines) -> None:
        self._engines = engines
        self._policies = TableRows(engines, _POLICY)

    # -- policies -----------------------------------------------------------------------

    def add_policy(self, policy: ReplicationPolicy) -> ReplicationPolicy | None:
        new_id = self._policies.add(_policy_values(policy))
        return None if new_id is None else self.policy(new_id)

    def policy(self, policy_id: int) -> ReplicationPolicy | None:
        row = self._policies.by_id(policy_id)
        return None if row is None else _policy(row)

    def policy_named(self, name: str) -> ReplicationPolicy | None:
        row = self._policies.first(_POLICY.c.name == name)
        return None if row is None else _policy(row)

    def policies(self) -> list[ReplicationPolicy]:
        return [_policy(row) for row in self._policies.all()]

    def save_policy(self, policy: ReplicationPolicy) -> bool:
        return self._policies.save(policy.id, _policy_values(policy))

    def delete_policy(self, policy_id: int) -> bool:
        return self._policies.delete(policy_id)

    # -- executions ---------------------------------------------------------------------

    def add_execution(self, execution: Execution) -> None:
        values = asdict(execution)
        values["trigger"] = str(execution.trigger)
        values["status"] = str(execution.status)
        try:
            with self._engines.writing() as connection, connection.begin():
                connection.execute(insert(_EXECUTION).values(**values))
        except IntegrityError:
            return

    def execution(self, execution_id: str) -> Execution | None:
        with self._engines.read.connect() as connection:
            row = connection.execute(
                select(_EXECUTION).where(_EXECUTION.c.id == execution_id)
            ).first()
        return None if row is None else _execution(row)

    def executions(self, policy_id: int | None) -> list[Execution]:
        query = select(_EXECUTION).order_by(_EXECUTION.c.started_at.desc(), _EXECUTION.c.id)
        if policy_id is not None:
            query = query.where(_EXECUTION.c.policy_id == policy_id)
        with self._engines.read.connect() as connection:
            rows = connection.execute(query).all()
        return [_execution(row) for row in rows]

    def finish_execution(
        self, execution_id: str, status: ExecutionStatus, reason: str | None, now: datetime
    ) -> Execution | None:
        with self._engines.writing() as connection, connection.begin():
            _close(connection, execution_id, status, reason, now)
        return self.execution(execution_id)

    def finish_running(self, execution_id: str, status: ExecutionStatus, now: datetime) -> bool:
        with self._engines.writing() as connection, connection.begin():
            row = connection.execute(
                select(_EXECUTION.c.status).where(_EXECUTION.c.id == execution_id).with_for_update()
            ).first()
            if row is None or row.status != str(ExecutionStatus.RUNNING):
                return False
            _close(connection, execution_id, status, None, now)
        return True

    def request_stop(self, execution_id: str, reason: str) -> bool:
        return request_stop(self._engines, _EXECUTION, execution_id, reason, _ERROR_MAX)

    def stop_execution(
        self, execution_id: str, reason: str | None, now: datetime
    ) -> Execution | None:
        with self._engines.writing() as connection, connection.begin():
            row = _lock_active(connection, execution_id)
            if row is not None:
                _close_stopped(connection, execution_id, reason or row.reason or "stopped", now)
        return self.execution(execution_id)

    def close_abandoned(self, execution_id: str, ending: Ending, now: datetime) -> bool:
        with self._engines.writing() as connection, connection.begin():
            row = _lock_active(connection, execution_id)
            if row is None:
                return False
            if ending.cancelled or row.status == str(ExecutionStatus.STOPPING):
                kept = row.reason if row.status == str(ExecutionStatus.STOPPING) else None
                _close_stopped(connection, execution_id, kept or ending.reason, now)
                return True
            connection.execute(
                update(_TASK)
                .where(
                    _TASK.c.execution_id == execution_id,
                    _TASK.c.status == str(TaskStatus.PENDING),
                )
                .values(
                    status=str(TaskStatus.FAILED),
                    error=f"not run: {ending.reason}"[:_ERROR_MAX],
                    finished_at=now,
                )
            )
            _close(connection, execution_id, ExecutionStatus.FAILED, ending.reason, now)
        return True

    # -- tasks ----------------------------------------------------------------------------

    def add_tasks(self, execution_id: str, tasks: Sequence[PlannedTask]) -> list[ReplicationTask]:
        with self._engines.writing() as connection, connection.begin():
            known = connection.execute(
                select(func.count()).select_from(_TASK).where(_TASK.c.execution_id == execution_id)
            ).scalar_one()
            if not known and tasks:
                connection.execute(
                    insert(_TASK),
                    [
                        {
                            "execution_id": execution_id,
                            "operation": str(task.operation),
                            "source": task.source,
                            "destination": task.destination,
                            "reference": task.reference,
                            "digest": task.digest,
                            "status": str(
                                TaskStatus.SKIPPED if task.in_place else TaskStatus.PENDING
                            ),
                            "error": "already replicated" if task.in_place else None,
                        }
                        for task in tasks
                    ],
                )
                connection.execute(
                    update(_EXECUTION)
                    .where(_EXECUTION.c.id == execution_id)
                    .values(total=len(tasks))
                )
        return self.tasks(execution_id)

    def task(self, task_id: int) -> ReplicationTask | None:
        with self._engines.read.connect() as connection:
            row = connection.execute(select(_TASK).where(_TASK.c.id == task_id)).first()
        return None if row is None else _task(row)

    def tasks(self, execution_id: str) -> list[ReplicationTask]:
        with self._engines.read.connect() as connection:
            rows = connection.execute(
                select(_TASK).where(_TASK.c.execution_id == execution_id).order_by(_TASK.c.id)
            ).all()
        return [_task(row) for row in rows]

    def pending_tasks(self, execution_id: str, after: int, limit: int) -> list[ReplicationTask]:
        states = (str(TaskStatus.PENDING),)
        rows = open_task_rows(self._engines, _TASK, execution_id, after, limit, states)
        return [_task(row) for row in rows]

    def record_task(self, task_id: int, result: TaskResult, now: datetime) -> None:
        values: dict[str, Any] = {
            "status": str(result.status),
            "bytes_sent": result.bytes_sent,
            "blobs_copied": result.blobs_copied,
            "blobs_skipped": result.blobs_skipped,
            "error": None if result.error is None else result.error[:_ERROR_MAX],
            "finished_at": now,
        }
        if result.digest:
            values["digest"] = result.digest
        with self._engines.writing() as connection, connection.begin():
            connection.execute(update(_TASK).where(_TASK.c.id == task_id).values(**values))
