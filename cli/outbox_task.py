"""Wiring of the outbox dispatcher into a process."""

from __future__ import annotations

import asyncio

from api.workflow_starter import TemporalStarter
from cli.event_runs import TemporalRuns
from cli.outbox import OutboxDispatcher
from core.ports import Clock, Metadata
from core.scan_jobs import SCAN_SUBSCRIBER
from core.settings import Settings
from core.subscribers import Subscribers, builtin_subscribers
from core.webhook_events import WEBHOOK_SUBSCRIBER


def build_outbox_dispatcher(
    settings: Settings, metadata: Metadata, subscribers: Subscribers, clock: Clock
) -> OutboxDispatcher:
    """The outbox dispatcher of ``settings`` over ``metadata``.

    The composition root (``cli.composition.Composition.outbox_dispatcher``) calls it with
    the process's metadata store.

    Args:
        settings: The process's settings (Temporal connection and control settings).
        metadata: The metadata store the outbox lives in.
        subscribers: The event subscribers (``core.subscribers.builtin_subscribers()`` and
            any a feature registers).
        clock: The process's clock.
    """
    return OutboxDispatcher(
        metadata,
        TemporalStarter(settings.temporal),
        settings.control,
        subscribers=subscribers,
        runs=TemporalRuns(settings.temporal),
        clock=clock,
    )


def installation_subscribers() -> Subscribers:
    """The subscribers a worker process serves: the built-in ones, webhooks, scanning."""
    return Subscribers([*builtin_subscribers(), WEBHOOK_SUBSCRIBER, SCAN_SUBSCRIBER])


def start_outbox_dispatcher(
    dispatcher: OutboxDispatcher, stop: asyncio.Event
) -> asyncio.Task[None]:
    """Run ``dispatcher`` as a task until ``stop`` is set."""
    return asyncio.create_task(dispatcher.run(stop), name="outbox-dispatcher")
