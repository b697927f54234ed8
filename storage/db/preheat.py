"""SQL of P2P instances, preheat policies, executions and tasks (``core.preheat.PreheatStore``)."""

from __future__ import annotations

import json
from dataclasses import asdict
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, case, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from core.execution_reconcile import Ending
from core.preheat import (
    ACTIVE_STATUSES,
    OPEN_TASK_STATUSES,
    STOPPED_TASK,
    AuthMode,
    Candidate,
    Execution,
    ExecutionStatus,
    Instance,
    Peer,
    Policy,
    RecordInput,
    Scope,
    Task,
    TaskStatus,
    TriggerKind,
    Vendor,
    overall_counts,
)
from storage.db.engine import Engines
from storage.db.execution_stops import lock_active, request_stop
from storage.db.preheat_tables import (
    P2pInstanceRow,
    PreheatExecutionRow,
    PreheatPolicyRow,
    PreheatTaskRow,
)
from storage.db.repos.base import table_of
from storage.db.rows import TableRows
from storage.db.task_pages import open_task_rows

_INSTANCE = table_of(P2pInstanceRow)
_POLICY = table_of(PreheatPolicyRow)
_EXECUTION = table_of(PreheatExecutionRow)
_TASK = table_of(PreheatTaskRow)
_ERROR_MAX = 2048


def _instance(row: Any) -> Instance:
    return Instance(
        id=row.id,
        name=row.name,
        description=row.description,
        vendor=Vendor(row.vendor),
        endpoint=row.endpoint,
        auth_mode=AuthMode(row.auth_mode),
        username=row.username,
        secret_sealed=row.secret_sealed,
        enabled=bool(row.enabled),
        created_at=row.created_at,
        updated_at=row.updated_at,
        is_default=bool(row.is_default),
        insecure=bool(row.insecure),
    )


def _instance_values(instance: Instance) -> dict[str, Any]:
    values = asdict(instance)
    del values["id"]
    values["vendor"] = str(instance.vendor)
    values["auth_mode"] = str(instance.auth_mode)
    return values


def _policy(row: Any) -> Policy:
    return Policy(
        id=row.id,
        project_id=row.project_id,
        project=row.project,
        name=row.name,
        description=row.description,
        instance_id=row.instance_id,
        repositories=row.repositories,
        tags=row.tags,
        signed_only=bool(row.signed_only),
        severity=row.severity,
        trigger=TriggerKind(row.trigger),
        cron=row.cron,
        scope=Scope(row.scope),
        cluster_ids=tuple(int(c) for c in row.cluster_ids.split(",") if c),
        enabled=bool(row.enabled),
        created_by=row.created_by,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def _policy_values(policy: Policy) -> dict[str, Any]:
    values = asdict(policy)
    del values["id"]
    values["trigger"] = str(policy.trigger)
    values["scope"] = str(policy.scope)
    values["cluster_ids"] = ",".join(str(c) for c in policy.cluster_ids)
    return values


def _execution(row: Any) -> Execution:
    return Execution(
        id=row.id,
        policy_id=row.policy_id,
        project_id=row.project_id,
        policy=row.policy,
        trigger=TriggerKind(row.trigger),
        status=ExecutionStatus(row.status),
        started_at=row.started_at,
        finished_at=row.finished_at,
        total=row.total,
        succeeded=row.succeeded,
        failed=row.failed,
        reason=row.reason,
    )


def _peers(text: str) -> tuple[Peer, ...]:
    if not text:
        return ()
    return tuple(Peer(**entry) for entry in json.loads(text))


def _task(row: Any) -> Task:
    return Task(
        id=row.id,
        execution_id=row.execution_id,
        repository=row.repository,
        tag=row.tag,
        digest=row.digest,
        media_type=row.media_type,
        status=TaskStatus(row.status),
        job_id=row.job_id,
        peers=_peers(row.peers),
        error=row.error,
        finished_at=row.finished_at,
    )


#: A task its execution's workflow may still change.
_OPEN = _TASK.c.status.in_([str(s) for s in OPEN_TASK_STATUSES])
_ACTIVE = frozenset(str(s) for s in ACTIVE_STATUSES)


def _lock_active(connection: Connection, execution_id: str) -> Any | None:
    """The execution's status and reason, locked, if it is active (else ``None``)."""
    return lock_active(connection, _EXECUTION, execution_id, _ACTIVE)


def _close_tasks(
    connection: Connection, execution_id: str, status: TaskStatus, error: str, now: datetime
) -> None:
    """Close the execution's open tasks with ``status`` and ``error``."""
    connection.execute(
        update(_TASK)
        .where(_TASK.c.execution_id == execution_id, _OPEN)
        .values(status=str(status), error=error[:_ERROR_MAX], finished_at=now)
    )


def _close_stopped(connection: Connection, execution_id: str, reason: str, now: datetime) -> None:
    """Close an active execution as ``stopped``, its open tasks too."""
    _close_tasks(connection, execution_id, TaskStatus.STOPPED, STOPPED_TASK, now)
    _close(connection, execution_id, ExecutionStatus.STOPPED, reason, now)


def _close(
    connection: Connection,
    execution_id: str,
    status: ExecutionStatus | None,
    reason: str | None,
    now: datetime,
) -> None:
    """Set the final status (``None``: from the tasks), reason, time and counts."""
    counts: dict[str, int] = {
        row[0]: int(row[1])
        for row in connection.execute(
            select(_TASK.c.status, func.count())
            .where(_TASK.c.execution_id == execution_id)
            .group_by(_TASK.c.status)
        )
    }
    total = sum(counts.values())
    succeeded = counts.get(str(TaskStatus.SUCCEEDED), 0)
    if status is None:
        status = overall_counts(total, succeeded)
    connection.execute(
        update(_EXECUTION)
        .where(_EXECUTION.c.id == execution_id)
        .values(
            status=str(status),
            reason=None if reason is None else reason[:_ERROR_MAX],
            finished_at=now,
            total=total,
            succeeded=succeeded,
            failed=total - succeeded,
        )
    )


class SqlPreheatStore:
    """Preheat rows on the metadata database, one short transaction per call."""

    def __init__(self, engines: Engines) -> None:
        self._engines = engines
        self._instances = TableRows(engines, _INSTANCE)
        self._policies = TableRows(engines, _POLICY)

    # -- instances ------------------------------------------------------------------------

    def add_instance(self, instance: Instance) -> Instance | None:
        new_id = self._instances.add(_instance_values(instance))
        return None if new_id is None else self.instance(new_id)

    def instance(self, instance_id: int) -> Instance | None:
        row = self._instances.by_id(instance_id)
        return None if row is None else _instance(row)

    def instance_named(self, name: str) -> Instance | None:
        row = self._instances.first(_INSTANCE.c.name == name)
        return None if row is None else _instance(row)

    def instances(self) -> list[Instance]:
        return [_instance(row) for row in self._instances.all()]

    def save_instance(self, instance: Instance) -> bool:
        return self._instances.save(instance.id, _instance_values(instance))

    def delete_instance(self, instance_id: int) -> bool:
        return self._instances.delete(instance_id)

    def make_default(self, instance_id: int) -> None:
        with self._engines.writing() as connection, connection.begin():
            # NOTE: the others first: the partial unique index allows one default row
            connection.execute(
                update(_INSTANCE)
                .where(_INSTANCE.c.id != instance_id, _INSTANCE.c.is_default.is_(True))
                .values(is_default=False)
            )
            connection.execute(
                update(_INSTANCE).where(_INSTANCE.c.id == instance_id).values(is_default=True)
            )

    def default_instance(self) -> Instance | None:
        row = self._instances.first(_INSTANCE.c.is_default.is_(True))
        return None if row is None else _instance(row)

    def instance_in_use(self, instance_id: int) -> bool:
        with self._engines.read.connect() as connection:
            count = connection.execute(
                select(func.count())
                .select_from(_POLICY)
                .where(_POLICY.c.instance_id == instance_id)
            ).scalar_one()
        return bool(count)

    # -- policies -------------------------------------------------------------------------

    def add_policy(self, policy: Policy) -> Policy | None:
        new_id = self._policies.add(_policy_values(policy))
        return None if new_id is None else self.policy(new_id)

    def policy(self, policy_id: int) -> Policy | None:
        row = self._policies.by_id(policy_id)
        return None if row is None else _policy(row)

    def policies(self, project_id: int | None) -> list[Policy]:
        where = None if project_id is None else _POLICY.c.project_id == project_id
        return [_policy(row) for row in self._policies.all(where)]

    def save_policy(self, policy: Policy) -> bool:
        return self._policies.save(policy.id, _policy_values(policy))

    def delete_policy(self, policy_id: int) -> bool:
        return self._policies.delete(policy_id)

    # -- executions -----------------------------------------------------------------------

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

    def executions(self, project_id: int, policy_id: int | None) -> list[Execution]:
        query = (
            select(_EXECUTION)
            .where(_EXECUTION.c.project_id == project_id)
            .order_by(_EXECUTION.c.started_at.desc(), _EXECUTION.c.id)
        )
        if policy_id is not None:
            query = query.where(_EXECUTION.c.policy_id == policy_id)
        with self._engines.read.connect() as connection:
            rows = connection.execute(query).all()
        return [_execution(row) for row in rows]

    def finish_execution(
        self, execution_id: str, status: ExecutionStatus | None, reason: str | None, now: datetime
    ) -> Execution | None:
        with self._engines.writing() as connection, connection.begin():
            row = _lock_active(connection, execution_id)
            if row is not None and row.status == str(ExecutionStatus.RUNNING):
                _close(connection, execution_id, status, reason, now)
        return self.execution(execution_id)

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
            _close_tasks(
                connection, execution_id, TaskStatus.FAILED, f"not finished: {ending.reason}", now
            )
            _close(connection, execution_id, ExecutionStatus.FAILED, ending.reason, now)
        return True

    # -- tasks ----------------------------------------------------------------------------

    def add_tasks(self, execution_id: str, candidates: list[Candidate]) -> list[Task]:
        with self._engines.writing() as connection, connection.begin():
            known = connection.execute(
                select(func.count()).select_from(_TASK).where(_TASK.c.execution_id == execution_id)
            ).scalar_one()
            if not known and candidates:
                connection.execute(
                    insert(_TASK),
                    [
                        {
                            "execution_id": execution_id,
                            "repository": c.repository,
                            "tag": c.tag,
                            "digest": c.digest,
                            "media_type": c.media_type,
                            "status": str(TaskStatus.PENDING),
                            "peers": "",
                        }
                        for c in candidates
                    ],
                )
                connection.execute(
                    update(_EXECUTION)
                    .where(_EXECUTION.c.id == execution_id)
                    .values(total=len(candidates))
                )
        return self.tasks(execution_id)

    def task(self, task_id: int) -> Task | None:
        with self._engines.read.connect() as connection:
            row = connection.execute(select(_TASK).where(_TASK.c.id == task_id)).first()
        return None if row is None else _task(row)

    def tasks(self, execution_id: str) -> list[Task]:
        with self._engines.read.connect() as connection:
            rows = connection.execute(
                select(_TASK).where(_TASK.c.execution_id == execution_id).order_by(_TASK.c.id)
            ).all()
        return [_task(row) for row in rows]

    def pending_tasks(self, execution_id: str, after: int, limit: int) -> list[Task]:
        states = tuple(str(s) for s in OPEN_TASK_STATUSES)
        rows = open_task_rows(self._engines, _TASK, execution_id, after, limit, states)
        return [_task(row) for row in rows]

    def set_job(self, task_id: int, job_id: str) -> None:
        running = case((_OPEN, str(TaskStatus.RUNNING)), else_=_TASK.c.status)
        with self._engines.writing() as connection, connection.begin():
            connection.execute(
                update(_TASK).where(_TASK.c.id == task_id).values(job_id=job_id, status=running)
            )

    def record_task(self, task_id: int, result: RecordInput, now: datetime) -> None:
        values: dict[str, Any] = {
            "status": str(TaskStatus.SUCCEEDED if result.succeeded else TaskStatus.FAILED),
            "peers": json.dumps([asdict(p) for p in result.peers]),
            "error": None if result.error is None else result.error[:_ERROR_MAX],
            "finished_at": now,
        }
        if result.job_id:
            values["job_id"] = result.job_id
        with self._engines.writing() as connection, connection.begin():
            connection.execute(update(_TASK).where(_TASK.c.id == task_id, _OPEN).values(**values))
