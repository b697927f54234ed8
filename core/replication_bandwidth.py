"""A worker's bandwidth cap shared by every copy it runs (``replication.max_bytes_per_second``).

Each execution's policy may cap one copy (``bandwidth_kbps``, ``core.replication_copy``);
this cap bounds the sum over every copy of every execution the worker process runs at
once. A copy waits for both (this one first; the policy's cap keeps an average since the
copy began, so time spent waiting here counts towards it): the stricter of the two
decides.

The cap is a schedule of the link: sending ``n`` bytes books ``n / rate`` seconds of it,
after whatever was booked before (or from now, when it has been idle); the sender then
waits until its booking ends. Concurrent copies queue behind each other's bookings, so
over any window the bytes sent exceed ``rate * window`` by at most the one piece each
copy sent before it waited. Idle time is not saved up (no burst after a pause).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable


class SharedBandwidth:
    """The cap of one worker process (0: none); safe for the copies of one event loop."""

    def __init__(
        self,
        bytes_per_second: int,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._rate = bytes_per_second
        self._clock, self._sleep = clock, sleep
        self._free_at = 0.0

    @property
    def bytes_per_second(self) -> int:
        """The cap (0: none)."""
        return self._rate

    async def sent(self, count: int) -> None:
        """Book ``count`` bytes just sent and wait until the link's schedule has room again."""
        if not self._rate or count <= 0:
            return
        now = self._clock()
        self._free_at = max(self._free_at, now) + count / self._rate
        wait = self._free_at - now
        if wait > 0:
            await self._sleep(wait)
