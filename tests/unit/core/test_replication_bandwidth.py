"""The worker-wide bandwidth cap, on a fake clock: concurrent copies share one schedule."""

from __future__ import annotations

import asyncio

import pytest

from core.replication_bandwidth import SharedBandwidth
from core.replication_copy import _Throttle


class FakeTime:
    """A clock that moves only when someone sleeps (the longest sleep decides)."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


async def test_one_copy_waits_as_long_as_its_bytes_take_at_the_cap() -> None:
    time = FakeTime()
    cap = SharedBandwidth(1000, time.clock, time.sleep)
    await cap.sent(500)
    await cap.sent(1500)
    assert time.slept == [pytest.approx(0.5), pytest.approx(1.5)]


async def test_concurrent_copies_queue_behind_each_other() -> None:
    """Three copies send 1000 bytes each at the same instant: the link is booked 3 s."""
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)
        await asyncio.sleep(0)  # the others send meanwhile; the frozen clock stays put

    cap = SharedBandwidth(1000, lambda: 1000.0, sleep)
    await asyncio.gather(cap.sent(1000), cap.sent(1000), cap.sent(1000))
    assert waits == [pytest.approx(1.0), pytest.approx(2.0), pytest.approx(3.0)]


async def test_idle_time_is_not_saved_up() -> None:
    time = FakeTime()
    cap = SharedBandwidth(1000, time.clock, time.sleep)
    await cap.sent(1000)
    time.now += 60.0  # a long pause
    await cap.sent(1000)
    assert time.slept == [pytest.approx(1.0), pytest.approx(1.0)]


async def test_no_cap_never_waits() -> None:
    async def sleep(seconds: float) -> None:
        raise AssertionError(f"no cap, no wait ({seconds})")

    await SharedBandwidth(0, lambda: 0.0, sleep).sent(10**9)


async def test_the_stricter_of_the_policy_and_the_worker_cap_decides() -> None:
    """A copy waits for the worker's cap, then for its policy's (as the copier does)."""
    time = FakeTime()
    policy = _Throttle(1, time.clock, time.sleep)  # 1024 bytes a second
    worker = SharedBandwidth(4096, time.clock, time.sleep)
    start = time.now
    for _ in range(4):
        await worker.sent(1024)
        await policy.sent(1024)
    assert time.now - start == pytest.approx(4.0), "the policy's 1 KiB/s decides"

    time = FakeTime()
    policy = _Throttle(4, time.clock, time.sleep)  # 4096 bytes a second
    worker = SharedBandwidth(1024, time.clock, time.sleep)
    start = time.now
    for _ in range(4):
        await worker.sent(1024)
        await policy.sent(1024)
    assert time.now - start == pytest.approx(4.0), "the worker's 1 KiB/s decides"
