"""Wiring of the outbox dispatcher into a process."""

from __future__ import annotations

import asyncio

from api.workflow_starter import TemporalStarter
from cli.event_runs import TemporalRuns
from cli.outbox import OutboxDispatcher
from core.ports import Metadata
from core.settings import Settings
from core.subscribers import Subscribers, builtin_subscribers
from core.webhook_events import WEBHOOK_SUBSCRIBER
from storage.db.engine import create_engines
from storage.db.metadata import SqlMetadata


def build_outbox_dispatcher(
    settings: Settings, metadata: Metadata, subscribers: Subscribers | None = None
) -> OutboxDispatcher:
    """The outbox dispatcher of ``settings`` over ``metadata``.

    Args:
        settings: The process's settings (Temporal connection and control settings).
        metadata: The metadata store the outbox lives in.
        subscribers: The event subscribers; ``None``: the built-in ones.
    """
    return OutboxDispatcher(
        metadata,
        TemporalStarter(settings.temporal),
        settings.control,
        subscribers=subscribers if subscribers is not None else builtin_subscribers(),
        runs=TemporalRuns(settings.temporal),
    )


def installation_subscribers() -> Subscribers:
    """The subscribers a worker process serves: the built-in ones and webhooks."""
    return Subscribers([*builtin_subscribers(), WEBHOOK_SUBSCRIBER])


def start_outbox_dispatcher(
    settings: Settings, stop: asyncio.Event, subscribers: Subscribers | None = None
) -> asyncio.Task[None]:
    """Run an :class:`OutboxDispatcher` for ``settings`` as a task until ``stop``.

    Args:
        settings: The process's settings.
        stop: Set it to end the task.
        subscribers: The event subscribers; ``None``: :func:`installation_subscribers`.
    """
    dispatcher = build_outbox_dispatcher(
        settings,
        SqlMetadata(create_engines(settings)),
        subscribers if subscribers is not None else installation_subscribers(),
    )
    return asyncio.create_task(dispatcher.run(stop), name="outbox-dispatcher")
