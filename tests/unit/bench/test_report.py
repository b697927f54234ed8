"""Ratio orientation and output format of the benchmark report (pure, no I/O)."""

from __future__ import annotations

import json

import pytest

from bench.report import CaseResult, ratio, table


@pytest.mark.parametrize("unit", ["MB/s", "req/s"])
def test_rates_are_moorage_over_baseline(unit: str) -> None:
    assert ratio(unit, 300.0, 100.0) == pytest.approx(3.0)
    assert ratio(unit, 50.0, 100.0) == pytest.approx(0.5)


@pytest.mark.parametrize("unit", ["s", "ms"])
def test_times_are_baseline_over_moorage(unit: str) -> None:
    assert ratio(unit, 1.0, 2.0) == pytest.approx(2.0)
    assert ratio(unit, 4.0, 2.0) == pytest.approx(0.5)


@pytest.mark.parametrize(
    ("unit", "moorage", "baseline"),
    [("MB/s", 1.0, None), ("MB/s", None, 1.0), ("MB/s", 1.0, 0.0), ("s", 0.0, 1.0)],
)
def test_undefined_ratio_is_none(unit: str, moorage: float | None, baseline: float | None) -> None:
    assert ratio(unit, moorage, baseline) is None


def test_unknown_unit_is_rejected() -> None:
    with pytest.raises(ValueError, match="unknown unit"):
        ratio("furlongs", 1.0, 1.0)


def test_json_line_has_required_keys_first_then_extras() -> None:
    result = CaseResult(
        case="manifest-get-tag-c32",
        unit="req/s",
        moorage=5000.0,
        baseline=1000.0,
        extra={"moorage_p50_ms": 1.23456, "baseline_p99_ms": 70.0, "repeats": 3},
    )
    line = result.to_json()
    assert "\n" not in line
    data = json.loads(line)
    assert list(data)[:5] == ["case", "unit", "moorage", "baseline", "ratio"]
    assert data["case"] == "manifest-get-tag-c32"
    assert data["unit"] == "req/s"
    assert data["moorage"] == 5000.0
    assert data["baseline"] == 1000.0
    assert data["ratio"] == pytest.approx(5.0)
    assert data["moorage_p50_ms"] == pytest.approx(1.235)
    assert data["baseline_p99_ms"] == 70.0
    assert data["repeats"] == 3
    assert "error" not in data


def test_json_time_case_is_oriented_for_moorage() -> None:
    data = json.loads(CaseResult("skopeo-in", "s", 1.0, 2.08).to_json())
    assert data["ratio"] == pytest.approx(2.08)


def test_extras_cannot_override_required_keys() -> None:
    result = CaseResult("c", "MB/s", 2.0, 1.0, extra={"ratio": 99.0, "verified": False})
    data = json.loads(result.to_json())
    assert data["ratio"] == pytest.approx(2.0)
    assert data["verified"] is False


def test_failed_case_reports_error_and_null_ratio() -> None:
    result = CaseResult("push-mono-1x1GiB", "MB/s", None, 180.0, error="BenchError: HTTP 500")
    data = json.loads(result.to_json())
    assert data["moorage"] is None
    assert data["ratio"] is None
    assert data["error"] == "BenchError: HTTP 500"


def test_table_lists_every_case_with_its_ratio() -> None:
    results = [
        CaseResult("pull-1x1GiB", "MB/s", 2400.0, 2000.0),
        CaseResult(
            "manifest-head-tag-c1",
            "req/s",
            3000.0,
            1000.0,
            extra={
                "moorage_p50_ms": 0.3,
                "moorage_p99_ms": 1.0,
                "baseline_p50_ms": 0.8,
                "baseline_p99_ms": 2.5,
            },
        ),
        CaseResult("skopeo-out", "s", None, 1.0, error="boom"),
    ]
    text = table(results)
    lines = text.splitlines()
    assert lines[0].split()[:6] == [
        "case", "unit", "moorage", "docker_registry", "ratio_docker_registry", "ratio"
    ]  # fmt: skip
    assert any(line.startswith("pull-1x1GiB") and "1.20x" in line for line in lines)
    assert any("3.00x" in line and "0.30/1.00" in line and "0.80/2.50" in line for line in lines)
    assert any(line.startswith("skopeo-out") and "ERROR" in line for line in lines)


def test_ratio_is_against_the_faster_peer_and_each_peer_has_its_own() -> None:
    pull = CaseResult("pull-1x1GiB", "MB/s", 2400.0, 2000.0, others={"distribution": 3000.0})
    data = json.loads(pull.to_json())
    assert list(data)[:5] == ["case", "unit", "moorage", "baseline", "ratio"]
    assert data["peer"] == "distribution"
    assert data["baseline"] == 3000.0
    assert data["ratio"] == pytest.approx(0.8)
    assert data["docker_registry"] == 2000.0
    assert data["distribution"] == 3000.0
    assert data["ratio_docker_registry"] == pytest.approx(1.2)
    assert data["ratio_distribution"] == pytest.approx(0.8)
    # For times the faster peer is the one with the smaller figure.
    skopeo = CaseResult("skopeo-in", "s", 2.0, 3.0, others={"distribution": 4.0})
    data = json.loads(skopeo.to_json())
    assert (data["peer"], data["ratio"]) == ("docker_registry", pytest.approx(1.5))
    assert data["ratio_distribution"] == pytest.approx(2.0)


def test_a_peer_that_failed_leaves_the_ratio_to_the_other() -> None:
    result = CaseResult("pull-8x128MiB", "MB/s", 900.0, 1000.0, others={"distribution": None})
    data = json.loads(result.to_json())
    assert (data["peer"], data["ratio"]) == ("docker_registry", pytest.approx(0.9))
    assert data["ratio_distribution"] is None


def test_table_shows_every_peer_and_the_ratio_against_each() -> None:
    text = table(
        [CaseResult("pull-1x1GiB", "MB/s", 2400.0, 2000.0, others={"distribution": 3000.0})]
    )
    header, _, row, *_ = text.splitlines()
    assert header.split()[:8] == [
        "case", "unit", "moorage", "docker_registry", "distribution",
        "ratio_docker_registry", "ratio_distribution", "ratio",
    ]  # fmt: skip
    assert row.split()[:8] == [
        "pull-1x1GiB",
        "MB/s",
        "2,400",
        "2,000",
        "3,000",
        "1.2",
        "0.8",
        "0.80x",
    ]
