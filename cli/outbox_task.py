"""Wiring of the outbox dispatcher into a process."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Protocol

from api.workflow_starter import TemporalStarter
from cli.event_runs import TemporalRuns
from cli.outbox import OutboxDispatcher, Pruner
from core.ports import Clock, Metadata
from core.preheat import PREHEAT_SUBSCRIBER
from core.promotion_rules import PROMOTION_SUBSCRIBER
from core.replication import REPLICATION_SUBSCRIBER
from core.scan_jobs import SCAN_SUBSCRIBER
from core.settings import Settings
from core.subscribers import Interest, Subscribers, builtin_subscribers
from core.trust_verify import TRUST_SUBSCRIBER
from core.webhook_events import WEBHOOK_SUBSCRIBER


def build_outbox_dispatcher(
    settings: Settings,
    metadata: Metadata,
    subscribers: Subscribers,
    clock: Clock,
    pruners: Sequence[Pruner] = (),
    interests: Mapping[str, Interest] | None = None,
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
        pruners: The feature logs pruned beside the outbox (``webhook_log_pruner``).
        interests: By subscriber kind, the events it wants (``core.subscribers.Interest``).
    """
    return OutboxDispatcher(
        metadata,
        TemporalStarter(settings.temporal),
        settings.control,
        subscribers=subscribers,
        runs=TemporalRuns(settings.temporal),
        clock=clock,
        pruners=pruners,
        interests=interests,
    )


class _FinishedPruner(Protocol):
    def prune_finished(self, finished_before: datetime, limit: int) -> int: ...


def webhook_log_pruner(settings: Settings, store: _FinishedPruner) -> Pruner | None:
    """Prunes finished webhook deliveries older than ``webhooks.log_keep_seconds``.

    ``None`` when the log is kept forever. Each call deletes at most one outbox batch size
    of deliveries (with their attempts).
    """
    keep = settings.webhooks.log_keep_seconds
    if keep == 0:
        return None
    limit = settings.control.outbox_batch_size

    def prune(now: datetime) -> int:
        return store.prune_finished(now - timedelta(seconds=keep), limit)

    return prune


def installation_subscribers() -> Subscribers:
    """The subscribers a worker process serves: the built-in ones and each feature's."""
    return Subscribers(
        [
            *builtin_subscribers(),
            WEBHOOK_SUBSCRIBER,
            REPLICATION_SUBSCRIBER,
            TRUST_SUBSCRIBER,
            SCAN_SUBSCRIBER,
            PREHEAT_SUBSCRIBER,
            PROMOTION_SUBSCRIBER,
        ]
    )


def start_outbox_dispatcher(
    dispatcher: OutboxDispatcher, stop: asyncio.Event
) -> asyncio.Task[None]:
    """Run ``dispatcher`` as a task until ``stop`` is set."""
    return asyncio.create_task(dispatcher.run(stop), name="outbox-dispatcher")
