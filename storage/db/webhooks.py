"""The SQL implementation of ``core.webhooks.WebhookStore``.

Each method is one transaction. Deliveries are unique per (policy, event, generation):
adding generation-0 rows skips those already there, so a repeated subscriber batch adds
nothing. A redelivery takes the next generation of each chosen event.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import ColumnElement, Connection, Table, delete, func, or_, select, update
from sqlalchemy.exc import IntegrityError

from core.errors import ConflictError
from core.webhook_payloads import PayloadFormat
from core.webhooks import (
    Delivery,
    DeliveryAttempt,
    DeliveryStatus,
    NewDelivery,
    WebhookPolicy,
)
from storage.db.engine import Engines
from storage.db.tables import Project
from storage.db.webhooks_tables import WebhookAttemptRow, WebhookDeliveryRow, WebhookPolicyRow


def _table(model: Any) -> Table:
    table: Table = model.__table__
    return table


POLICY, DELIVERY = _table(WebhookPolicyRow), _table(WebhookDeliveryRow)
ATTEMPT, _PROJECT = _table(WebhookAttemptRow), _table(Project)


def _aware(value: datetime | None) -> datetime | None:
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=UTC)


def _utc(value: datetime) -> datetime:
    aware = _aware(value)
    assert aware is not None  # noqa: S101 - not None in, not None out
    return aware


def _policy(row: Any) -> WebhookPolicy:
    return WebhookPolicy(
        id=row.id,
        key=row.key,
        project_id=row.project_id,
        project=row.project,
        name=row.name,
        url=row.url,
        events=tuple(json.loads(row.events)),
        payload_format=PayloadFormat(row.payload_format),
        enabled=bool(row.enabled),
        paused=bool(row.paused),
        paused_reason=row.paused_reason,
        failing_since=_aware(row.failing_since),
        secret_sealed=row.secret_sealed,
        previous_secret_sealed=row.previous_secret_sealed,
        previous_secret_until=_aware(row.previous_secret_until),
        auth_header_sealed=row.auth_header_sealed,
        created_by=row.created_by,
        created_at=_utc(row.created_at),
        updated_at=_utc(row.updated_at),
    )


def _values(policy: WebhookPolicy) -> dict[str, Any]:
    return {
        "key": policy.key,
        "project_id": policy.project_id,
        "name": policy.name,
        "url": policy.url,
        "events": json.dumps(list(policy.events)),
        "payload_format": str(policy.payload_format),
        "enabled": policy.enabled,
        "paused": policy.paused,
        "paused_reason": policy.paused_reason,
        "failing_since": policy.failing_since,
        "secret_sealed": policy.secret_sealed,
        "previous_secret_sealed": policy.previous_secret_sealed,
        "previous_secret_until": policy.previous_secret_until,
        "auth_header_sealed": policy.auth_header_sealed,
        "created_by": policy.created_by,
        "created_at": policy.created_at,
        "updated_at": policy.updated_at,
    }


def _delivery(row: Any, history: Sequence[DeliveryAttempt] = ()) -> Delivery:
    return Delivery(
        id=row.id,
        policy_id=row.policy_id,
        event_id=row.event_id,
        generation=row.generation,
        type=row.type,
        repository=row.repository,
        event=json.loads(row.event),
        event_time=_utc(row.event_time),
        status=DeliveryStatus(row.status),
        attempts=row.attempts,
        next_attempt_at=_aware(row.next_attempt_at),
        last_status_code=row.last_status_code,
        last_error=row.last_error,
        created_at=_utc(row.created_at),
        finished_at=_aware(row.finished_at),
        history=tuple(history),
    )


_POLICY_QUERY = select(POLICY, _PROJECT.c.name.label("project")).outerjoin(
    _PROJECT, _PROJECT.c.id == POLICY.c.project_id
)


class SqlWebhookStore:
    """Webhook policies and deliveries over the installation's engines."""

    def __init__(self, engines: Engines) -> None:
        self._engines = engines

    def add_policy(self, policy: WebhookPolicy) -> WebhookPolicy:
        try:
            with self._engines.writing() as c, c.begin():
                if policy.project_id is None:
                    taken = c.execute(
                        select(POLICY.c.id).where(
                            POLICY.c.project_id.is_(None), POLICY.c.name == policy.name
                        )
                    ).first()
                    if taken is not None:
                        raise ConflictError(f"webhook {policy.name!r} exists")
                result = c.execute(POLICY.insert().values(_values(policy)))
                key = result.inserted_primary_key
                assert key is not None  # noqa: S101 - an insert has a key
                new_id = int(key[0])
        except IntegrityError as exc:
            raise ConflictError(f"webhook {policy.name!r} exists") from exc
        found = self.policy(new_id)
        assert found is not None  # noqa: S101 - just written
        return found

    def policy(self, policy_id: int) -> WebhookPolicy | None:
        with self._engines.read.connect() as c:
            row = c.execute(_POLICY_QUERY.where(POLICY.c.id == policy_id)).first()
        return None if row is None else _policy(row)

    def policies(self, project_id: int | None) -> list[WebhookPolicy]:
        where = (
            POLICY.c.project_id.is_(None)
            if project_id is None
            else (POLICY.c.project_id == project_id)
        )
        with self._engines.read.connect() as c:
            rows = c.execute(_POLICY_QUERY.where(where).order_by(POLICY.c.id)).all()
        return [_policy(row) for row in rows]

    def save_policy(self, policy: WebhookPolicy) -> None:
        values = _values(policy)
        del values["key"], values["project_id"], values["created_at"], values["created_by"]
        try:
            with self._engines.writing() as c, c.begin():
                c.execute(update(POLICY).where(POLICY.c.id == policy.id).values(values))
        except IntegrityError as exc:
            raise ConflictError(f"webhook {policy.name!r} exists") from exc

    def set_target_state(
        self,
        policy_id: int,
        *,
        failing_since: datetime | None,
        paused_reason: str | None,
        pause: bool = False,
        disable: bool = False,
    ) -> None:
        values: dict[str, Any] = {"failing_since": failing_since}
        if pause or disable:
            values["paused_reason"] = paused_reason
        if pause:
            values["paused"] = True
        if disable:
            values["enabled"] = False
        with self._engines.writing() as c, c.begin():
            c.execute(update(POLICY).where(POLICY.c.id == policy_id).values(values))

    def delete_policy(self, policy_id: int) -> None:
        with self._engines.writing() as c, c.begin():
            deliveries = select(DELIVERY.c.id).where(DELIVERY.c.policy_id == policy_id)
            c.execute(delete(ATTEMPT).where(ATTEMPT.c.delivery_id.in_(deliveries)))
            c.execute(delete(DELIVERY).where(DELIVERY.c.policy_id == policy_id))
            c.execute(delete(POLICY).where(POLICY.c.id == policy_id))

    def subscribed(self, project_id: int | None, event_type: str) -> list[WebhookPolicy]:
        scope: ColumnElement[bool] = POLICY.c.project_id.is_(None)
        if project_id is not None:
            scope = or_(scope, POLICY.c.project_id == project_id)
        query = _POLICY_QUERY.where(POLICY.c.enabled.is_(True), scope).order_by(POLICY.c.id)
        with self._engines.read.connect() as c:
            rows = c.execute(query).all()
        return [p for p in map(_policy, rows) if event_type in p.events]

    def wants(self, event_type: str) -> bool:
        query = select(POLICY.c.events).where(POLICY.c.enabled.is_(True))
        with self._engines.read.connect() as c:
            return any(event_type in json.loads(e) for (e,) in c.execute(query))

    def add_deliveries(self, deliveries: Sequence[NewDelivery], now: datetime) -> list[int]:
        if not deliveries:
            return []
        touched: list[int] = []
        with self._engines.writing() as c, c.begin():
            for item in deliveries:
                exists = c.execute(
                    select(DELIVERY.c.id).where(
                        DELIVERY.c.policy_id == item.policy_id,
                        DELIVERY.c.event_id == item.event_id,
                        DELIVERY.c.generation == 0,
                    )
                ).first()
                if exists is not None:
                    continue
                c.execute(
                    DELIVERY.insert().values(
                        policy_id=item.policy_id,
                        event_id=item.event_id,
                        generation=0,
                        type=item.type,
                        repository=item.repository,
                        event=json.dumps(item.event),
                        event_time=item.event_time,
                        status=DeliveryStatus.PENDING,
                        attempts=0,
                        next_attempt_at=now,
                        created_at=now,
                    )
                )
                if item.policy_id not in touched:
                    touched.append(item.policy_id)
        return touched

    def pending(self, policy_id: int, limit: int) -> list[Delivery]:
        query = (
            select(DELIVERY)
            .where(DELIVERY.c.policy_id == policy_id, DELIVERY.c.status == DeliveryStatus.PENDING)
            .order_by(DELIVERY.c.id)
            .limit(limit)
        )
        with self._engines.read.connect() as c:
            return [_delivery(row) for row in c.execute(query)]

    def pending_count(self, policy_id: int) -> int:
        query = select(func.count()).where(
            DELIVERY.c.policy_id == policy_id, DELIVERY.c.status == DeliveryStatus.PENDING
        )
        with self._engines.read.connect() as c:
            return int(c.execute(query).scalar_one())

    def prune_finished(self, finished_before: datetime, limit: int) -> int:
        """Delete up to ``limit`` deliveries finished before ``finished_before``.

        Their attempts go first, in the same transaction; pending deliveries (no
        ``finished_at``) are never touched. Returns how many deliveries were deleted.
        """
        oldest = (
            select(DELIVERY.c.id)
            .where(DELIVERY.c.finished_at.is_not(None), DELIVERY.c.finished_at < finished_before)
            .order_by(DELIVERY.c.finished_at)
            .limit(limit)
        )
        with self._engines.writing() as c, c.begin():
            ids = list(c.execute(oldest).scalars())
            if not ids:
                return 0
            c.execute(delete(ATTEMPT).where(ATTEMPT.c.delivery_id.in_(ids)))
            return int(c.execute(delete(DELIVERY).where(DELIVERY.c.id.in_(ids))).rowcount)

    def record_attempts(
        self,
        attempts: Sequence[tuple[int, DeliveryAttempt, DeliveryStatus, datetime | None]],
    ) -> None:
        with self._engines.writing() as c, c.begin():
            for delivery_id, attempt, status, next_attempt_at in attempts:
                _record(c, delivery_id, attempt, status, next_attempt_at)

    def deliveries(
        self, policy_id: int, *, limit: int, before_id: int | None, status: str | None
    ) -> list[Delivery]:
        query = select(DELIVERY).where(DELIVERY.c.policy_id == policy_id)
        if before_id is not None:
            query = query.where(DELIVERY.c.id < before_id)
        if status is not None:
            query = query.where(DELIVERY.c.status == status)
        with self._engines.read.connect() as c:
            rows = c.execute(query.order_by(DELIVERY.c.id.desc()).limit(limit)).all()
            ids = [row.id for row in rows]
            attempts: dict[int, list[DeliveryAttempt]] = {i: [] for i in ids}
            if ids:
                found = c.execute(
                    select(ATTEMPT).where(ATTEMPT.c.delivery_id.in_(ids)).order_by(ATTEMPT.c.id)
                )
                for a in found:
                    attempts[a.delivery_id].append(
                        DeliveryAttempt(
                            _utc(a.attempted_at),
                            a.status_code,
                            a.latency_ms,
                            a.error,
                            a.response_excerpt,
                        )
                    )
        return [_delivery(row, attempts[row.id]) for row in rows]

    def redeliver(
        self, policy_id: int, event_id: int | None, since: datetime | None, until: datetime | None
    ) -> int:
        now = datetime.now(UTC)
        latest = (
            select(DELIVERY.c.event_id, func.max(DELIVERY.c.generation).label("generation"))
            .where(DELIVERY.c.policy_id == policy_id)
            .group_by(DELIVERY.c.event_id)
        )
        if event_id is not None:
            latest = latest.where(DELIVERY.c.event_id == event_id)
        if since is not None:
            latest = latest.where(DELIVERY.c.event_time >= since)
        if until is not None:
            latest = latest.where(DELIVERY.c.event_time < until)
        with self._engines.writing() as c, c.begin():
            chosen = latest.subquery()
            rows = c.execute(
                select(DELIVERY)
                .join(
                    chosen,
                    (chosen.c.event_id == DELIVERY.c.event_id)
                    & (chosen.c.generation == DELIVERY.c.generation),
                )
                .where(DELIVERY.c.policy_id == policy_id)
                .order_by(DELIVERY.c.event_id)
            ).all()
            for row in rows:
                c.execute(
                    DELIVERY.insert().values(
                        policy_id=policy_id,
                        event_id=row.event_id,
                        generation=row.generation + 1,
                        type=row.type,
                        repository=row.repository,
                        event=row.event,
                        event_time=row.event_time,
                        status=DeliveryStatus.PENDING,
                        attempts=0,
                        next_attempt_at=now,
                        created_at=now,
                    )
                )
        return len(rows)


def _record(
    c: Connection,
    delivery_id: int,
    attempt: DeliveryAttempt,
    status: DeliveryStatus,
    next_attempt_at: datetime | None,
) -> None:
    error = attempt.error[:1024] if attempt.error else None
    c.execute(
        ATTEMPT.insert().values(
            delivery_id=delivery_id,
            attempted_at=attempt.attempted_at,
            status_code=attempt.status_code,
            latency_ms=attempt.latency_ms,
            error=error,
            response_excerpt=attempt.response_excerpt,
        )
    )
    finished = attempt.attempted_at if status != DeliveryStatus.PENDING else None
    c.execute(
        update(DELIVERY)
        .where(DELIVERY.c.id == delivery_id)
        .values(
            status=status,
            attempts=DELIVERY.c.attempts + 1,
            next_attempt_at=next_attempt_at,
            last_status_code=attempt.status_code,
            last_error=error,
            finished_at=finished,
        )
    )
