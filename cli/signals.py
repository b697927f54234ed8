"""Turning SIGTERM and SIGINT into an orderly shutdown."""

from __future__ import annotations

import signal
from contextlib import contextmanager
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import asyncio
    from collections.abc import Callable, Iterator
    from types import FrameType

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


def _exit_on_signal(signum: int, _frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)


def exit_on_sigterm() -> None:
    """Make SIGTERM raise ``SystemExit`` so ``finally`` blocks run (as SIGINT does)."""
    signal.signal(signal.SIGTERM, _exit_on_signal)


@contextmanager
def stop_on_signals(loop: asyncio.AbstractEventLoop, stop: Callable[[], None]) -> Iterator[None]:
    """Call ``stop`` on ``loop`` when SIGTERM or SIGINT arrives, inside the block.

    Uses ``signal.signal`` (not ``loop.add_signal_handler``) so that a server which
    swaps handlers temporarily, such as uvicorn, puts this one back afterwards.
    """

    def handler(_signum: int, _frame: FrameType | None) -> None:
        loop.call_soon_threadsafe(stop)

    previous = {sig: signal.signal(sig, handler) for sig in STOP_SIGNALS}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
