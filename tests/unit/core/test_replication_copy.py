"""The copier's bandwidth cap: it waits exactly as long as the cap needs (no real time)."""

from __future__ import annotations

import pytest

from core.replication_copy import _Throttle


async def test_throttle_keeps_the_average_under_the_cap() -> None:
    now = [100.0]
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    throttle = _Throttle(100, lambda: now[0], sleep)  # 102400 bytes a second
    await throttle.sent(51200)
    assert slept == [0.5]
    now[0] += 2.0  # slow sending: no wait needed
    await throttle.sent(51200)
    assert slept == [0.5]
    await throttle.sent(409600)  # 512000 bytes after 2.5 s: 2.5 s ahead
    assert slept == [0.5, pytest.approx(2.5)]


async def test_no_cap_never_waits() -> None:
    async def sleep(seconds: float) -> None:
        raise AssertionError(f"no cap, no wait ({seconds})")

    await _Throttle(0, lambda: 0.0, sleep).sent(10**9)
