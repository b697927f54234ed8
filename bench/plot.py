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


#: Bar colours of the peers' ratios; the ratio against the faster peer decides met / not met.
PEER_SHADES: dict[str, str] = {"docker_registry": "#1565c0", "distribution": "#ef6c00"}
TITLE = "Moorage / docker-registry 2.8 and distribution v3"


def _peer_ratios(row: dict[str, Any]) -> dict[str, float]:
    ratios = {
        key.removeprefix("ratio_"): float(value or 0.0)
        for key, value in row.items()
        if key.startswith("ratio_")
    }
    return ratios or {"docker_registry": float(row.get("ratio") or 0.0)}


def plot(rows: Sequence[dict[str, Any]], path: Path, title: str = TITLE) -> None:
    """Draw, per case, one bar per peer (Moorage's ratio against it) and the target.

    A case meets its target when the ratio against the faster peer (``ratio``) reaches
    it: that value is printed in green or red beside the bars.

    Args:
        rows: JSON objects of one run (``case``, ``ratio`` and ``ratio_<peer>``; rows of
            older runs with ``ratio`` only are drawn as docker-registry's).
        path: The image to write; the suffix picks the format (``.png``, ``.svg``).
        title: The chart's title.
    """
    matplotlib = importlib.import_module("matplotlib")
    matplotlib.use("Agg")
    pyplot = importlib.import_module("matplotlib.pyplot")
    cases = [
        str(row["case"]) for row in rows if row.get("case") not in ("sha256-rate", "write-rate")
    ]
    by_case = {str(row["case"]): row for row in rows}
    peers = sorted({peer for case in cases for peer in _peer_ratios(by_case[case])})
    height = 0.8 / max(1, len(peers))
    figure, axes = pyplot.subplots(figsize=(9, 0.5 * len(cases) * max(1, len(peers)) / 1.5 + 1.8))
    positions = list(range(len(cases)))
    for index, peer in enumerate(peers):
        offsets = [p - 0.4 + height * (index + 0.5) for p in positions]
        values = [_peer_ratios(by_case[case]).get(peer, 0.0) for case in cases]
        axes.barh(
            offsets, values, height=height * 0.9, color=PEER_SHADES.get(peer, "#9e9e9e"),
            label=f"against {peer.replace('_', '-')}",
        )  # fmt: skip
    for position, case in zip(positions, cases, strict=True):
        row = by_case[case]
        value = float(row.get("ratio") or 0.0)
        goal = target_of(case)
        if goal is not None:
            axes.plot([goal, goal], [position - 0.45, position + 0.45], color="black", linewidth=2)
        colour = "#555555" if goal is None else "#2e7d32" if value >= goal else "#c62828"
        widest = max(_peer_ratios(row).values(), default=0.0)
        axes.text(widest, position, f" {value:.2f}", va="center", fontsize=8, color=colour)
    axes.axvline(1.0, color="#555555", linestyle=":", linewidth=1)
    axes.set_yticks(positions, cases, fontsize=8)
    axes.invert_yaxis()
    axes.set_xlabel(
        "ratio (higher is better for Moorage); number: against the faster peer; tick: target"
    )
    axes.set_title(title, fontsize=10)
    axes.legend(fontsize=8, loc="lower right")
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
    title = args[2] if len(args) == 3 else TITLE
    plot(read_rows(Path(args[0])), Path(args[1]), title)
    return 0


if __name__ == "__main__":
    sys.exit(main())
