"""``moorage worker``: the worker as a process of its own."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from cli.composition import compose
from cli.signals import stop_on_signals
from cli.wiring import build_activities
from cli.worker import run_worker
from core.subscribers import builtin_subscribers

if TYPE_CHECKING:
    from core.settings import Settings


def run_worker_process(settings: Settings) -> None:
    """Run the worker with real activities until SIGTERM or SIGINT."""
    asyncio.run(_main(settings))


async def _main(settings: Settings) -> None:
    root = compose(settings)
    try:
        stop = asyncio.Event()
        with stop_on_signals(asyncio.get_running_loop(), stop.set):
            await run_worker(
                settings,
                build_activities(root),
                stop,
                outbox=root.outbox_dispatcher(builtin_subscribers()),
            )
    finally:
        root.close()
