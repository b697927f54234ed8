"""Run cases against both sides, interleaved, and reduce repetitions to medians."""

from __future__ import annotations

import asyncio
import os
import sys
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from bench.cases import Case, Context, Measurement, Pull, Push, Side, write_rates_key
from bench.report import CaseResult

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence


@dataclass(frozen=True)
class Deadlines:
    """``time.monotonic()`` limits that bound a whole run.

    Attributes:
        soft: No repetition beyond the first starts after this.
        start: No case starts after this.
        end: Any measurement still running at this time is cancelled.
    """

    soft: float
    start: float
    end: float

    @classmethod
    def within(cls, budget_s: float) -> Deadlines:
        """Deadlines for a run of at most ``budget_s`` seconds from now."""
        now = time.monotonic()
        return cls(soft=now + 0.7 * budget_s, start=now + 0.9 * budget_s, end=now + budget_s)

    def timeout(self, case_timeout: float) -> float:
        """The time left for one step: the case's own limit or the run's end."""
        return max(1.0, min(case_timeout, self.end - time.monotonic()))


def log(message: str) -> None:
    """Print a progress line on stderr."""
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def _median(measurements: Sequence[Measurement]) -> Measurement:
    ordered = sorted(measurements, key=lambda m: m.value)
    return ordered[(len(ordered) - 1) // 2]


def _annotations(case: Case, ctx: Context, values: dict[str, float]) -> dict[str, Any]:
    extra: dict[str, Any] = {}
    if isinstance(case, Push) and ctx.sha256_rate > 0:
        for side, value in values.items():
            key = "sha256_fraction" if side == "moorage" else f"{side}_sha256_fraction"
            extra[key] = value / ctx.sha256_rate
    rates: list[float] = ctx.shared.get(write_rates_key(case.name), [])
    if isinstance(case, Push) and rates:
        write_rate = sorted(rates)[(len(rates) - 1) // 2]
        extra["write_rate"] = write_rate
        for side, value in values.items():
            key = "write_fraction" if side == "moorage" else f"{side}_write_fraction"
            extra[key] = value / write_rate
    if isinstance(case, Pull):
        extra["verified"] = False
    return extra


async def run_case(
    case: Case, ctx: Context, sides: Sequence[Side], deadlines: Deadlines
) -> CaseResult:
    """Run one case on every side, repeating with alternating order while time allows.

    Args:
        case: The case.
        ctx: The run context.
        sides: Moorage, then docker-registry (``baseline``), then any further peers.
        deadlines: Limits on repetitions and on the run's end.

    Returns:
        The medians of both sides and their extra figures.
    """
    limit = ctx.scale.case_timeout_s
    results: dict[str, list[Measurement]] = {side.name: [] for side in sides}
    try:
        for side in sides:
            await side.client.refresh_token([case.repo])
            await asyncio.wait_for(case.setup(ctx, side), deadlines.timeout(limit))
        repeats = 1 if case.name == "sha256-rate" else ctx.scale.repeats
        if case.repeats is not None:
            repeats = max(1, min(repeats, case.repeats))
        for rep in range(repeats):
            if rep > 0 and time.monotonic() > deadlines.soft:
                log(f"{case.name}: time budget reached after {rep} repetitions")
                break
            case.prepare(ctx, rep)
            order = list(sides) if rep % 2 == 0 else list(reversed(sides))
            for side in order:
                if case.settle:
                    await asyncio.to_thread(os.sync)
                await side.client.refresh_token([case.repo])
                measurement = await asyncio.wait_for(
                    case.measure(ctx, side, rep), deadlines.timeout(limit)
                )
                results[side.name].append(measurement)
                log(f"{case.name} rep {rep} {side.name}: {measurement.value:.4g} {case.unit}")
    except Exception as exc:  # a failed case must not stop the others
        log(f"{case.name}: {type(exc).__name__}: {exc}")
        partial = {n: _median(ms).value for n, ms in results.items() if ms}
        return CaseResult(
            case=case.name,
            unit=case.unit,
            moorage=partial.get("moorage"),
            baseline=partial.get("baseline"),
            error=f"{type(exc).__name__}: {exc}"[:500],
            others=_others(sides, partial),
        )
    medians = {name: _median(ms) for name, ms in results.items()}
    extra: dict[str, Any] = {}
    values = {name: m.value for name, m in medians.items()}
    extra.update(_annotations(case, ctx, values))
    for name, measurement in medians.items():
        for key, value in measurement.extra.items():
            extra[f"{name}_{key}"] = value
    extra["repeats"] = min(len(ms) for ms in results.values())
    return CaseResult(
        case=case.name,
        unit=case.unit,
        moorage=values.get("moorage"),
        baseline=values.get("baseline"),
        extra=extra,
        others=_others(sides, values),
    )


def _others(sides: Sequence[Side], values: dict[str, float]) -> dict[str, float | None]:
    """The figures of the peers beyond ``moorage`` and ``baseline`` (docker-registry)."""
    names = [side.name for side in sides if side.name not in ("moorage", "baseline")]
    return {name: values.get(name) for name in names}


async def run_all(
    cases: Sequence[Case],
    ctx: Context,
    sides: Sequence[Side],
    deadlines: Deadlines,
    emit: Callable[[CaseResult], None],
) -> list[CaseResult]:
    """Run every case in order, emitting each result as soon as it is known.

    Args:
        cases: The selected cases.
        ctx: The run context.
        sides: Moorage, then docker-registry (``baseline``), then any further peers.
        deadlines: Limits on repetitions, case starts and the run's end.
        emit: Called with each result.

    Returns:
        All results in run order.
    """
    results = []
    for case in cases:
        if time.monotonic() > deadlines.start:
            result = CaseResult(case.name, case.unit, None, None, error="skipped: time budget")
        else:
            log(f"case {case.name}")
            result = await run_case(case, ctx, sides, deadlines)
        emit(result)
        results.append(result)
    return results
