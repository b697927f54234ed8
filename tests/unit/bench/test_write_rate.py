"""The write-rate measurement that push cases are judged against."""

from __future__ import annotations

from pathlib import Path

from bench.cases import (
    Context,
    Push,
    Scale,
    Side,
    WriteRate,
    measure_write_rate,
    write_rates_key,
)
from bench.client import Target
from bench.payloads import MIB, Blob, PayloadFactory
from bench.runner import Deadlines, run_case


class _PushClient:
    """Takes every push instantly."""

    def __init__(self) -> None:
        self.pushed: list[Blob] = []

    async def refresh_token(self, _repos: object) -> None:
        return None

    async def push_monolithic(self, _repo: str, blob: Blob, piece: int = 0) -> None:
        del piece
        self.pushed.append(blob)


def _context(tmp_path: Path, repeats: int) -> Context:
    scale = Scale(divisor=1024, repeats=repeats, case_timeout_s=30.0)
    return Context(scale=scale, payloads=PayloadFactory(64 * 1024), workdir=tmp_path)


def test_a_write_rate_is_positive_and_leaves_no_file(tmp_path: Path) -> None:
    rate = measure_write_rate(PayloadFactory(64 * 1024), tmp_path, 3 * MIB + 5)
    assert rate > 0
    assert list(tmp_path.iterdir()) == []


async def test_push_lines_carry_the_write_rate_measured_before_each_repetition(
    tmp_path: Path,
) -> None:
    ctx = _context(tmp_path, repeats=3)
    client = _PushClient()
    sides = [Side(Target("moorage", "http://127.0.0.1:1"), client)]  # type: ignore[arg-type]
    case = Push("push-mono-1x1GiB", chunked=False, count=1, size=1024 * MIB)
    result = await run_case(case, ctx, sides, Deadlines.within(60.0))
    assert result.error is None
    rates = ctx.shared[write_rates_key(case.name)]
    assert len(rates) == 3 == len(client.pushed)
    assert result.extra["write_rate"] == sorted(rates)[1]
    assert result.moorage is not None
    assert result.extra["write_fraction"] == result.moorage / result.extra["write_rate"]


async def test_the_write_rate_case_reports_one_figure_for_every_side(tmp_path: Path) -> None:
    ctx = _context(tmp_path, repeats=3)
    sides = [
        Side(Target(name, "http://127.0.0.1:1"), _PushClient())  # type: ignore[arg-type]
        for name in ("moorage", "baseline")
    ]
    result = await run_case(WriteRate("write-rate"), ctx, sides, Deadlines.within(60.0))
    assert result.error is None
    assert result.moorage == result.baseline
    assert result.moorage is not None
    assert result.moorage > 0
