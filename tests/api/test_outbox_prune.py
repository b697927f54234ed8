"""Pruning of dispatched outbox events on each backend (the dispatcher driven in-process)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta

import sqlalchemy
from sqlalchemy import select

from adapters.clock import SystemClock
from api.context import Registry
from cli.outbox import OutboxDispatcher
from core.control_settings import ControlSettings
from core.settings import Settings
from core.subscribers import builtin_subscribers
from storage.db.repos.outbox import OUTBOX
from tests.api.oci import OCIClient, unique_project

WEEK = 7 * 24 * 3600


class _NoStarts:
    async def closed(self, workflow_id: str) -> str | None:
        raise AssertionError(f"pruning asks about no run: {workflow_id}")

    async def start(
        self,
        workflow: str,
        arg: object,
        workflow_id: str,
        *,
        search: Mapping[str, str] | None = None,
    ) -> bool:
        del workflow, arg, workflow_id, search
        raise AssertionError("pruning starts no workflow")


def _registry(oci: OCIClient) -> Registry:
    registry: Registry = oci.client.app.state["registry"]  # type: ignore[attr-defined]
    return registry


def _events(oci: OCIClient, repository: str, kinds: list[str]) -> list[int]:
    with _registry(oci).metadata.write() as session:
        for kind in kinds:
            session.outbox.add(kind, repository=repository)
        session.commit()
    with _registry(oci).metadata.read() as session:
        pending = session.outbox.pending(1_000_000)
    return [event.id for event in pending if event.repository == repository]


def _mark(oci: OCIClient, ids: list[int], when: datetime) -> None:
    with _registry(oci).metadata.write() as session:
        session.outbox.mark_dispatched(ids, when)
        session.commit()


def _remaining(app_settings: Settings, ids: list[int]) -> set[int]:
    """Which of ``ids`` are still stored, read from the table itself."""
    engine = sqlalchemy.create_engine(app_settings.resolved_database_url)
    try:
        with engine.connect() as connection:
            query = select(OUTBOX.c.id).where(OUTBOX.c.id.in_(ids))
            return set(connection.execute(query).scalars())
    finally:
        engine.dispose()


def _dispatcher(oci: OCIClient, keep_seconds: int, batch: int) -> OutboxDispatcher:
    settings = ControlSettings(outbox_keep_dispatched_seconds=keep_seconds, outbox_batch_size=batch)
    return OutboxDispatcher(
        _registry(oci).metadata,
        _NoStarts(),
        settings,
        subscribers=builtin_subscribers(),
        runs=_NoStarts(),
        clock=SystemClock(),
    )


async def test_prune_removes_old_dispatched_events_a_batch_at_a_time(
    oci: OCIClient, app_settings: Settings
) -> None:
    repository = f"{unique_project()}/app"
    ids = _events(oci, repository, ["manifest.pushed"] * 7)
    old, recent, pending = ids[:5], ids[5:6], ids[6:]
    _mark(oci, old, datetime.now(UTC) - timedelta(days=30))
    _mark(oci, recent, datetime.now(UTC) - timedelta(days=1))
    dispatcher = _dispatcher(oci, WEEK, batch=2)

    rounds = []
    for _ in range(20):
        pruned = await dispatcher.prune_once()
        rounds.append(pruned)
        if pruned == 0:
            break
    assert max(rounds) == 2
    assert rounds[-1] == 0
    assert _remaining(app_settings, ids) == set(recent + pending)


async def test_prune_never_touches_pending_events_and_zero_keeps_forever(
    oci: OCIClient, app_settings: Settings
) -> None:
    repository = f"{unique_project()}/app"
    ids = _events(oci, repository, ["tag.created"] * 3)
    _mark(oci, ids[:2], datetime.now(UTC) - timedelta(days=400))

    assert await _dispatcher(oci, 0, batch=100).prune_once() == 0
    assert _remaining(app_settings, ids) == set(ids)

    everything_old = _dispatcher(oci, 1, batch=10_000)
    for _ in range(20):
        if await everything_old.prune_once() == 0:
            break
    assert _remaining(app_settings, ids) == {ids[2]}
