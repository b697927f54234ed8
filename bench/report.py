"""Benchmark results: ratio orientation, JSON lines and a readable table."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Sequence

HIGHER_IS_BETTER = frozenset({"MB/s", "req/s"})
LOWER_IS_BETTER = frozenset({"s", "ms", "MiB"})
#: Memory increases below this many MiB are compared as this much: an idle process's own
#: allocations move its RSS by about that, so smaller figures carry no ratio.
MEMORY_FLOOR_MIB = 1.0


def ratio(unit: str, moorage: float | None, baseline: float | None) -> float | None:
    """Return the ratio oriented so that a value above 1 means Moorage did better.

    Throughputs and request rates give ``moorage / baseline``; times, latencies and memory
    give ``baseline / moorage``, memory with both figures raised to at least
    :data:`MEMORY_FLOOR_MIB`.

    Args:
        unit: The unit of both figures.
        moorage: Moorage's figure.
        baseline: docker-registry's figure.

    Returns:
        The ratio, or ``None`` when a figure is missing or the division is undefined.

    Raises:
        ValueError: If the unit has no known orientation.
    """
    if unit in HIGHER_IS_BETTER:
        numerator, denominator = moorage, baseline
    elif unit in LOWER_IS_BETTER:
        numerator, denominator = baseline, moorage
    else:
        raise ValueError(f"unknown unit {unit!r}")
    if numerator is None or denominator is None:
        return None
    if unit == "MiB":
        numerator = max(numerator, MEMORY_FLOOR_MIB)
        denominator = max(denominator, MEMORY_FLOOR_MIB)
    if denominator <= 0:
        return None
    return numerator / denominator


def _round(value: object) -> object:
    if isinstance(value, float):
        if not math.isfinite(value):
            return None
        return float(f"{value:.4g}") if abs(value) < 1000 else round(value, 1)
    return value


@dataclass
class CaseResult:
    """The outcome of one case on both sides.

    Attributes:
        case: Case name.
        unit: Unit of ``moorage`` and ``baseline``.
        moorage: Moorage's figure (median of the repetitions), or ``None`` on error.
        baseline: docker-registry's figure, or ``None`` on error.
        extra: Further fields for the JSON object, such as ``moorage_p50_ms``.
        error: What went wrong, if anything.
    """

    case: str
    unit: str
    moorage: float | None
    baseline: float | None
    extra: dict[str, Any] = field(default_factory=dict)
    error: str | None = None

    @property
    def ratio(self) -> float | None:
        """The oriented ratio (above 1 is better for Moorage)."""
        return ratio(self.unit, self.moorage, self.baseline)

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON object: the required keys first, then the extra fields."""
        data: dict[str, Any] = {
            "case": self.case,
            "unit": self.unit,
            "moorage": _round(self.moorage),
            "baseline": _round(self.baseline),
            "ratio": _round(self.ratio),
        }
        for key, value in self.extra.items():
            if key not in data:
                data[key] = _round(value)
        if self.error is not None:
            data["error"] = self.error
        return data

    def to_json(self) -> str:
        """Return the JSON object on one line."""
        return json.dumps(self.to_dict(), separators=(", ", ": "))


def _fmt(value: float | None) -> str:
    if value is None:
        return "-"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    return f"{value:.3g}"


def _latency(result: CaseResult, side: str) -> str:
    p50 = result.extra.get(f"{side}_p50_ms")
    p99 = result.extra.get(f"{side}_p99_ms")
    if p50 is None or p99 is None:
        return ""
    return f"{p50:.2f}/{p99:.2f}"


def table(results: Sequence[CaseResult]) -> str:
    """Render results as a fixed-width table.

    Args:
        results: The case results in run order.

    Returns:
        The table text, one row per case, with p50/p99 latencies where measured.
    """
    headers = ("case", "unit", "moorage", "baseline", "ratio", "moorage p50/p99 ms", "base p50/p99")
    rows = [headers]
    for result in results:
        ratio_text = "ERROR" if result.error else _fmt(result.ratio)
        if result.ratio is not None:
            ratio_text = f"{result.ratio:.2f}x"
        rows.append(
            (
                result.case,
                result.unit,
                _fmt(result.moorage),
                _fmt(result.baseline),
                ratio_text,
                _latency(result, "moorage"),
                _latency(result, "baseline"),
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(headers))]
    lines = []
    for index, row in enumerate(rows):
        cells = [
            cell.ljust(width) if col < 2 else cell.rjust(width)
            for col, (cell, width) in enumerate(zip(row, widths, strict=True))
        ]
        lines.append("  ".join(cells).rstrip())
        if index == 0:
            lines.append("  ".join("-" * width for width in widths))
    lines.append(
        "ratio > 1 means Moorage is better (rates: moorage/baseline; times, MiB: baseline/moorage)"
    )
    return "\n".join(lines)
