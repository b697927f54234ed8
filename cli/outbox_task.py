"""Wiring of the outbox dispatcher into a process."""

from __future__ import annotations

import asyncio

from api.workflow_starter import TemporalStarter
from cli.outbox import OutboxDispatcher
from core.settings import Settings
from storage.db.engine import create_engines
from storage.db.metadata import SqlMetadata


def start_outbox_dispatcher(settings: Settings, stop: asyncio.Event) -> asyncio.Task[None]:
    """Run an :class:`OutboxDispatcher` for ``settings`` as a task until ``stop``."""
    dispatcher = OutboxDispatcher(
        SqlMetadata(create_engines(settings)),
        TemporalStarter(settings.temporal),
        settings.control,
    )
    return asyncio.create_task(dispatcher.run(stop), name="outbox-dispatcher")
