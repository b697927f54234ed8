"""The ratio chart draws one bar per peer (``bench.plot``)."""

from __future__ import annotations

from pathlib import Path

from bench.plot import main
from bench.report import CaseResult


def test_a_run_with_two_peers_is_drawn_from_its_json_lines(tmp_path: Path) -> None:
    rows = [
        CaseResult("pull-1x1GiB", "MB/s", 2400.0, 2000.0, others={"distribution": 3000.0}),
        CaseResult("manifest-get-tag-c32", "req/s", 5000.0, 900.0, others={"distribution": 1200.0}),
    ]
    lines = tmp_path / "run.jsonl"
    lines.write_text("\n".join(row.to_json() for row in rows) + "\n")
    image = tmp_path / "ratios.svg"
    assert main([str(lines), str(image)]) == 0
    drawn = image.read_text()
    assert "against docker-registry" in drawn
    assert "against distribution" in drawn
