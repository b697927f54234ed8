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


#: JSON names of the peers, by the side name the runner gives them.
PEER_LABELS: dict[str, str] = {"baseline": "docker_registry", "distribution": "distribution"}


def peer_label(side: str) -> str:
    """The JSON name of a peer side (``baseline`` is Debian's ``docker-registry``)."""
    return PEER_LABELS.get(side, side.replace("-", "_"))


@dataclass
class CaseResult:
    """The outcome of one case on Moorage and its peers.

    Attributes:
        case: Case name.
        unit: Unit of every figure.
        moorage: Moorage's figure (median of the repetitions), or ``None`` on error.
        baseline: docker-registry's figure, or ``None`` on error.
        extra: Further fields for the JSON object, such as ``moorage_p50_ms``.
        error: What went wrong, if anything.
        others: Further peers' figures by side name (``distribution``: distribution v3).
    """

    case: str
    unit: str
    moorage: float | None
    baseline: float | None
    extra: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    others: dict[str, float | None] = field(default_factory=dict)

    def peer_ratios(self) -> dict[str, float | None]:
        """Moorage's oriented ratio against each peer, by JSON name."""
        figures = {"baseline": self.baseline, **self.others}
        return {peer_label(n): ratio(self.unit, self.moorage, v) for n, v in figures.items()}

    @property
    def faster_peer(self) -> str | None:
        """The peer that did best (lowest ratio for Moorage), by JSON name."""
        known = {name: value for name, value in self.peer_ratios().items() if value is not None}
        return min(known, key=lambda name: known[name]) if known else None

    @property
    def ratio(self) -> float | None:
        """The oriented ratio against the faster peer (above 1 is better for Moorage)."""
        faster = self.faster_peer
        return None if faster is None else self.peer_ratios()[faster]

    def _figure_of(self, label: str) -> float | None:
        figures = {"baseline": self.baseline, **self.others}
        return next((v for n, v in figures.items() if peer_label(n) == label), None)

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON object: the required keys first, then the extra fields.

        ``baseline`` is the faster peer's figure (``peer`` names it), ``ratio`` Moorage's
        ratio against it; every peer also has its figure under its JSON name and its ratio
        as ``ratio_<peer>``.
        """
        faster = self.faster_peer
        data: dict[str, Any] = {
            "case": self.case,
            "unit": self.unit,
            "moorage": _round(self.moorage),
            "baseline": _round(self.baseline if faster is None else self._figure_of(faster)),
            "ratio": _round(self.ratio),
            "peer": faster,
        }
        for label, value in self.peer_ratios().items():
            data[label] = _round(self._figure_of(label))
            data[f"ratio_{label}"] = _round(value)
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
        The table text, one row per case: every peer's figure and Moorage's ratio against
        it, the ratio against the faster peer, and p50/p99 latencies where measured.
    """
    others = sorted({name for result in results for name in result.others})
    labels = [peer_label("baseline"), *(peer_label(n) for n in others)]
    headers = (
        "case",
        "unit",
        "moorage",
        *labels,
        *(f"ratio_{label}" for label in labels),
        "ratio",
        "moorage p50/p99 ms",
        "base p50/p99",
    )
    rows = [headers]
    for result in results:
        ratio_text = "ERROR" if result.error else _fmt(result.ratio)
        if result.ratio is not None:
            ratio_text = f"{result.ratio:.2f}x"
        ratios = result.peer_ratios()
        rows.append(
            (
                result.case,
                result.unit,
                _fmt(result.moorage),
                _fmt(result.baseline),
                *(_fmt(result.others.get(name)) for name in others),
                *(_fmt(ratios.get(label)) for label in labels),
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
        "ratio > 1 means Moorage is better (rates: moorage/peer; times, MiB: peer/moorage);"
        " ratio: against the faster peer"
    )
    return "\n".join(lines)
