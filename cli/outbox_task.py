"""Wiring of the outbox dispatcher into a process."""

from __future__ import annotations

import asyncio

from api.workflow_starter import TemporalStarter
from cli.event_runs import TemporalRuns
from cli.outbox import OutboxDispatcher
from core.settings import Settings
from core.subscribers import Subscribers, builtin_subscribers
from storage.db.engine import create_engines
from storage.db.metadata import SqlMetadata


def start_outbox_dispatcher(
    settings: Settings, stop: asyncio.Event, subscribers: Subscribers | None = None
) -> asyncio.Task[None]:
    """Run an :class:`OutboxDispatcher` for ``settings`` as a task until ``stop``.

    Args:
        settings: The process's settings.
        stop: Set it to end the task.
        subscribers: The event subscribers; ``None``: the built-in ones.
    """
    dispatcher = OutboxDispatcher(
        SqlMetadata(create_engines(settings)),
        TemporalStarter(settings.temporal),
        settings.control,
        subscribers=subscribers if subscribers is not None else builtin_subscribers(),
        runs=TemporalRuns(settings.temporal),
    )
    return asyncio.create_task(dispatcher.run(stop), name="outbox-dispatcher")
