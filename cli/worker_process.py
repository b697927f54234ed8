"""``moorage worker``: the worker as a process of its own."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from cli.composition import compose
from cli.heap import freeze_startup_heap
from cli.logs import configure_logging
from cli.outbox_task import installation_subscribers
from cli.signals import stop_on_signals
from cli.tracing import configure_tracing
from cli.wiring import build_activities
from cli.worker import run_worker

if TYPE_CHECKING:
    from core.settings import Settings


def run_worker_process(settings: Settings) -> None:
    """Run the worker with real activities until SIGTERM or SIGINT."""
    configure_logging(settings.observability.logs)
    provider = configure_tracing(settings.observability.tracing, "worker")
    try:
        asyncio.run(_main(settings))
    finally:
        if provider is not None:
            provider.shutdown()


async def _main(settings: Settings) -> None:
    root = compose(settings)
    try:
        stop = asyncio.Event()
        activities = build_activities(root)
        outbox = root.outbox_dispatcher(installation_subscribers())
        freeze_startup_heap()
        with stop_on_signals(asyncio.get_running_loop(), stop.set):
            await run_worker(
                settings, activities, stop, outbox=outbox, data_plane=(root.metadata, root.store)
            )
    finally:
        root.close()
