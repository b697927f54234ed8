"""The gate bench's summary: medians per project against the ungated one."""

from __future__ import annotations

from bench.gates import PROJECTS, summaries, table
from bench.observability import Run


def test_each_project_is_its_median_against_open() -> None:
    runs = [Run("open", rep, 10_000, 1.0, 1.0, 0.1, 0.5) for rep in range(3)]
    runs += [
        Run("vuln", rep, 10_000, seconds, 1.2, 0.1, 0.5) for rep, seconds in enumerate((2, 1.25, 9))
    ]
    runs += [Run(kind, 0, 10_000, 1.0, 1.0, 0.1, 2.0) for kind in ("trust", "both")]
    rows = {row["project"]: row for row in summaries(runs, caches=True)}
    assert list(rows) == list(PROJECTS)
    assert rows["open"]["rate_change_pct"] == 0.0
    assert rows["vuln"]["req_s"] == 5000.0  # the median of 5,000, 8,000 and 1,111
    assert rows["vuln"]["rate_change_pct"] == -50.0
    assert rows["vuln"]["cpu_change_pct"] == 20.0
    assert rows["both"]["load1_max"] == 2.0
    assert "-50.0%" in table(list(rows.values()))
