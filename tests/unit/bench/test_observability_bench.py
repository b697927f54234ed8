"""The observability bench's reading of logs and scrapes, and its summary."""

from __future__ import annotations

import asyncio
import json
import time
from types import SimpleNamespace
from typing import Any, cast

from bench.cases import Side
from bench.observability import (
    MANIFEST_ROUTE,
    Run,
    _gets,
    _report,
    access_lines,
    base_config,
    counted_gets,
    instance_names,
    median_interval,
    summary,
)


def test_only_successful_manifest_get_access_lines_count() -> None:
    def line(logger: str, method: str, status: int, route: str = MANIFEST_ROUTE) -> str:
        return json.dumps({"logger": logger, "route": route, "method": method, "status": status})

    text = "\n".join(
        [
            line("moorage.access", "GET", 200),
            line("moorage.access", "GET", 200),
            line("moorage.access", "HEAD", 200),
            line("moorage.access", "GET", 404),
            line("moorage.access", "GET", 200, "/v2/"),
            line("moorage.api", "GET", 200),
            "granian says hello",
        ]
    )
    assert access_lines(text) == 2


def test_the_manifest_get_counter_is_read_from_a_scrape() -> None:
    def sample(code: str, operation: str, value: str) -> str:
        labels = f'code="{code}",method="GET",operation="{operation}"'
        return f"moorage_http_request_total{{{labels}}} {value}"

    exposition = "\n".join(
        [
            "# TYPE moorage_http_request_total counter",
            sample("200", "/v2/", "5.0"),
            sample("200", MANIFEST_ROUTE, "42.0"),
            sample("404", MANIFEST_ROUTE, "1.0"),
        ]
    )
    assert counted_gets(exposition) == 42.0
    assert counted_gets("") == 0.0


def test_summary_is_the_median_against_off() -> None:
    off = [Run("off", rep, 10_000, 2.0, 2.0, 0.1, 1.0) for rep in range(3)]
    on = [
        Run("defaults", 0, 10_000, 2.0, 2.1, 0.1, 1.5),
        Run("defaults", 1, 10_000, 2.5, 2.2, 0.1, 2.5),
        Run("defaults", 2, 10_000, 2.0, 9.9, 0.1, 0.5),
    ]
    row = summary("defaults", on, off)
    assert row["cpu_s_per_10k"] == 2.2
    assert row["cpu_overhead_pct"] == 10.0
    assert row["req_s"] == 5000.0
    assert row["rate_change_pct"] == 0.0
    assert row["load1_max"] == 2.5


def test_metrics_and_tracing_are_also_measured_against_the_access_log_alone() -> None:
    off = [Run("off", rep, 10_000, 2.0, 2.0, 0.1, 1.0) for rep in range(3)]
    access = [Run("access", rep, 10_000, 2.0, 2.1, 0.1, 1.0) for rep in range(3)]
    traced = [Run("tracing10", rep, 10_000, 2.0, 2.31, 0.1, 1.0) for rep in range(3)]
    row = summary("tracing10", traced, off, access)
    assert row["cpu_overhead_pct"] == 15.5
    assert row["cpu_vs_access_pct"] == 10.0
    assert "cpu_vs_access_pct" not in summary("tracing10", traced, off)


def test_paired_ratios_get_a_bootstrap_interval_that_narrows_with_more_repetitions() -> None:
    assert median_interval([1.05] * 7) == (1.05, 1.05)
    few = [0.95, 1.10, 1.02, 0.99, 1.08, 1.04]
    low, high = median_interval(few)
    assert min(few) <= low <= 1.03 <= high <= max(few)
    many_low, many_high = median_interval(few * 8)
    assert many_high - many_low < high - low
    assert median_interval(few) == (low, high)  # seeded: a report can be recomputed
    access = [Run("access", rep, 10_000, 2.0, 2.0, 0.1, 1.0) for rep in range(6)]
    traced = [Run("tracing", rep, 10_000, 2.0, 2.0 * few[rep], 0.1, 1.0) for rep in range(6)]
    row = summary("tracing", traced, [], access)
    assert row["paired_ci95_pct"] == [round((low - 1) * 100, 1), round((high - 1) * 100, 1)]


def test_paced_gets_are_not_sent_before_their_time() -> None:
    sent: list[float] = []

    async def manifest(*_: Any) -> None:
        sent.append(time.perf_counter())

    side = cast("Side", SimpleNamespace(client=SimpleNamespace(manifest=manifest)))

    async def run(rate: float | None) -> float:
        sent.clear()
        started = time.perf_counter()
        await _gets(side, 40, 4, rate)
        return started

    started = asyncio.run(run(200.0))
    assert len(sent) == 40
    for number, at in enumerate(sorted(sent)):
        assert at - started >= number / 200.0 - 0.002
    started = asyncio.run(run(None))
    assert len(sent) == 40
    assert max(sent) - started < 39 / 200.0


def test_instances_of_a_configuration_are_summarised_together_and_paired_by_number() -> None:
    names = instance_names(["access", "tracing"], 2)
    assert names == ["access#1", "tracing#1", "access#2", "tracing#2"]
    assert instance_names(["access", "tracing@before"], 1) == ["access", "tracing@before"]
    assert [base_config(name) for name in ("tracing#2", "tracing@before#1", "off")] == [
        "tracing",
        "tracing",
        "off",
    ]
    # instance 2's servers are both 50% slower than instance 1's: pairs stay at +10%
    runs = [
        Run(name, rep, 10_000, 2.0, cpu, 0.1, 1.0)
        for rep in range(3)
        for name, cpu in (
            ("access#1", 2.0),
            ("tracing#1", 2.2),
            ("access#2", 3.0),
            ("tracing#2", 3.3),
        )
    ]
    access, tracing = _report(runs, ["access", "tracing"])
    assert access["runs"] == tracing["runs"] == 6
    assert "cpu_vs_access_pct" not in access
    assert tracing["cpu_vs_access_paired_pct"] == 10.0
    assert tracing["paired_ci95_pct"] == [10.0, 10.0]
