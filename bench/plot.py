"""A chart of one run's ratios against the performance targets (matplotlib, PNG or SVG).

``python -m bench --plot FILE.png`` draws it at the end of a run; ``python -m bench.plot
RESULTS.jsonl FILE.png`` draws it from the JSON lines a run printed.
"""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Sequence

#: The ratio each case must reach (``skopeo-in``: time at most 0.6 of the baseline's).
TARGETS: dict[str, float] = {
    "push-mono-1x1GiB": 3.0,
    "push-chunked-1x1GiB": 3.0,
    "push-mono-8x128MiB": 3.0,
    "push-chunked-8x128MiB": 3.0,
    "pull-1x1GiB": 1.0,
    "pull-8x128MiB": 1.0,
    "manifest-put-c32": 2.0,
    "skopeo-in": 1 / 0.6,
    "skopeo-out": 1.0,
}
READ_TARGET_C32 = 5.0


def target_of(case: str) -> float | None:
    """The ratio target of ``case``, or ``None`` when none is set."""
    if case in TARGETS:
        return TARGETS[case]
    if case.startswith("manifest-") and case.endswith("-c32") and case != "manifest-put-c32":
        return READ_TARGET_C32
    return None


def plot(
    rows: Sequence[dict[str, Any]], path: Path, title: str = "Moorage / docker-registry"
) -> None:
    """Draw one horizontal bar per case (its ratio) with its target as a tick.

    Args:
        rows: JSON objects of one run (``case`` and ``ratio``; rows without a ratio are
            drawn empty).
        path: The image to write; the suffix picks the format (``.png``, ``.svg``).
        title: The chart's title.
    """
    matplotlib = importlib.import_module("matplotlib")
    matplotlib.use("Agg")
    pyplot = importlib.import_module("matplotlib.pyplot")
    cases = [str(row["case"]) for row in rows if row.get("case") != "sha256-rate"]
    by_case = {str(row["case"]): row for row in rows}
    ratios = [float(by_case[case].get("ratio") or 0.0) for case in cases]
    figure, axes = pyplot.subplots(figsize=(9, 0.38 * len(cases) + 1.6))
    positions = list(range(len(cases)))
    colours = []
    for case, value in zip(cases, ratios, strict=True):
        goal = target_of(case)
        colours.append("#9e9e9e" if goal is None else "#2e7d32" if value >= goal else "#c62828")
    axes.barh(positions, ratios, color=colours, height=0.6)
    for position, case in zip(positions, cases, strict=True):
        goal = target_of(case)
        if goal is not None:
            axes.plot([goal, goal], [position - 0.4, position + 0.4], color="black", linewidth=2)
    for position, value in zip(positions, ratios, strict=True):
        axes.text(value, position, f" {value:.2f}", va="center", fontsize=8)
    axes.axvline(1.0, color="#555555", linestyle=":", linewidth=1)
    axes.set_yticks(positions, cases, fontsize=8)
    axes.invert_yaxis()
    axes.set_xlabel("ratio (higher is better for Moorage); black tick: target")
    axes.set_title(title, fontsize=10)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    pyplot.close(figure)


def read_rows(path: Path) -> list[dict[str, Any]]:
    """The JSON objects of a run's output (other lines are skipped)."""
    return [json.loads(line) for line in path.read_text().splitlines() if line.startswith("{")]


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m bench.plot RESULTS.jsonl OUT.png [TITLE]``."""
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) not in {2, 3}:
        print("usage: python -m bench.plot RESULTS.jsonl OUT.png [TITLE]", file=sys.stderr)
        return 2
    title = args[2] if len(args) == 3 else "Moorage / docker-registry"
    plot(read_rows(Path(args[0])), Path(args[1]), title)
    return 0


if __name__ == "__main__":
    sys.exit(main())
