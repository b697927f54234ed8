"""The observability bench's reading of logs and scrapes, and its summary."""

from __future__ import annotations

import json

from bench.observability import MANIFEST_ROUTE, Run, access_lines, counted_gets, summary


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
