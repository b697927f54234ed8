"""Readiness: which dependencies a process needs, checked together, each with its latency.

A process is *ready* when every required dependency answers; a failing optional one
makes it *degraded* (still ready). The API's data plane needs the database and the blob
store (pushes and pulls work without Temporal: their events wait in the outbox), so
Temporal is optional there; the worker needs Temporal.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

#: A dependency's check: returns when it answers, raises when it does not.
Probe = Callable[[], Awaitable[None]]


class Status(StrEnum):
    READY = "ready"
    DEGRADED = "degraded"
    UNAVAILABLE = "unavailable"


@dataclass(frozen=True, slots=True)
class Dependency:
    """Something a process needs, how to check it, and whether readiness depends on it."""

    name: str
    probe: Probe
    required: bool = True


@dataclass(frozen=True, slots=True)
class CheckResult:
    name: str
    ok: bool
    required: bool
    seconds: float
    error: str | None = None

    def describe(self) -> dict[str, Any]:
        """The result as a JSON object (latency in milliseconds)."""
        described: dict[str, Any] = {
            "status": "ok" if self.ok else "error",
            "required": self.required,
            "latency_ms": round(self.seconds * 1000, 3),
        }
        if self.error is not None:
            described["error"] = self.error
        return described


@dataclass(frozen=True, slots=True)
class Readiness:
    results: tuple[CheckResult, ...]

    @property
    def status(self) -> Status:
        if any(r.required and not r.ok for r in self.results):
            return Status.UNAVAILABLE
        if any(not r.ok for r in self.results):
            return Status.DEGRADED
        return Status.READY

    @property
    def ready(self) -> bool:
        return self.status is not Status.UNAVAILABLE


async def _check(dependency: Dependency, bound: float) -> CheckResult:
    started = time.perf_counter()
    try:
        async with asyncio.timeout(bound):
            await dependency.probe()
    except Exception as exc:  # noqa: BLE001 - any failure is the dependency's state
        error = str(exc) or type(exc).__name__
        seconds = time.perf_counter() - started
        return CheckResult(dependency.name, False, dependency.required, seconds, error[:300])
    return CheckResult(dependency.name, True, dependency.required, time.perf_counter() - started)


async def check_all(dependencies: Sequence[Dependency], bound: float = 5.0) -> Readiness:
    """Check every dependency concurrently, each bounded by ``bound`` seconds."""
    results = await asyncio.gather(*(_check(d, bound) for d in dependencies))
    return Readiness(tuple(results))
