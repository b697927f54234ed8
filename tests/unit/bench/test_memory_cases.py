"""The memory cases' figures, their ratio and their single repetition (fake /proc, no server)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typing_extensions import override

from bench.cases import Case, Context, Measurement, Scale, Side
from bench.client import Target
from bench.memory import MemoryPull, memory_cases, watch_memory
from bench.payloads import MIB, Blob, PayloadFactory
from bench.procmem import Memory, ProcFs
from bench.report import CaseResult, ratio
from bench.runner import Deadlines, run_case
from bench.suite import all_cases


class FakeProcFs(ProcFs):
    """Two server processes whose RSS the test sets; every read is recorded."""

    def __init__(self, *, pids: list[int], can_reset: bool = True) -> None:
        super().__init__(Path("/nonexistent"))
        self.pids = pids
        self.can_reset = can_reset
        self.rss = 100 * MIB
        self.hwm = 100 * MIB
        self.resets: list[int] = []

    def server_pids(self, port: int) -> list[int]:
        assert port == 8080
        return self.pids

    def total(self, pids) -> Memory:
        assert list(pids) == self.pids
        return Memory(self.rss, self.hwm)

    def reset_peak(self, pid: int) -> bool:
        self.resets.append(pid)
        return self.can_reset


async def test_figure_is_the_peak_over_idle_in_mib() -> None:
    procfs = FakeProcFs(pids=[10, 11])

    async def transfer() -> int:
        procfs.rss = 112 * MIB  # still resident when the transfer ends
        procfs.hwm = 130 * MIB
        return 4096

    measurement = await watch_memory(procfs, 8080, transfer, 10.0)
    assert measurement.value == pytest.approx(12.0)
    assert measurement.extra["idle_mib"] == pytest.approx(100.0)
    assert measurement.extra["peak_mib"] == pytest.approx(112.0)
    assert measurement.extra["hwm_increase_mib"] == pytest.approx(30.0)
    assert measurement.extra["processes"] == 2
    assert measurement.extra["bytes"] == 4096
    assert measurement.extra["samples"] >= 1
    assert procfs.resets == [10, 11]


async def test_freed_memory_gives_zero_not_a_negative_figure() -> None:
    procfs = FakeProcFs(pids=[10])

    async def transfer() -> int:
        procfs.rss = 90 * MIB
        return 1

    measurement = await watch_memory(procfs, 8080, transfer, 10.0)
    assert measurement.value == 0.0


async def test_without_peak_reset_no_hwm_figure_is_claimed() -> None:
    procfs = FakeProcFs(pids=[10, 11], can_reset=False)

    async def transfer() -> int:
        return 1

    measurement = await watch_memory(procfs, 8080, transfer, 10.0)
    assert "hwm_increase_mib" not in measurement.extra
    assert procfs.resets == [10, 11]  # every process was tried


async def test_no_listener_is_an_error() -> None:
    async def transfer() -> int:
        raise AssertionError("must not run")

    with pytest.raises(RuntimeError, match="no process listens on port 8080"):
        await watch_memory(FakeProcFs(pids=[]), 8080, transfer, 10.0)


class FakeClient:
    """Serves every pushed blob back; counts what it was asked."""

    def __init__(self, procfs: FakeProcFs, growth: dict[int, int]) -> None:
        self.procfs = procfs
        self.growth = growth
        self.pushed: list[Blob] = []
        self.pulls = 0

    async def refresh_token(self, _repos) -> None:
        return None

    async def push_monolithic(self, _repo: str, blob: Blob, _piece: int = 0) -> None:
        self.pushed.append(blob)

    async def pull_blob(self, _repo: str, digest: str) -> int:
        (blob,) = [b for b in self.pushed if b.digest == digest]
        self.pulls += 1
        self.procfs.rss += self.growth[blob.size]
        return blob.size


def context(tmp_path: Path, repeats: int = 1) -> Context:
    scale = Scale(divisor=1024, repeats=repeats, case_timeout_s=30.0)
    return Context(scale=scale, payloads=PayloadFactory(64 * 1024), workdir=tmp_path)


async def test_larger_sizes_report_growth_against_the_smallest(tmp_path: Path) -> None:
    ctx = context(tmp_path)
    procfs = FakeProcFs(pids=[10])
    small, large = ctx.scale.size(MIB), ctx.scale.size(4096 * MIB)
    client = FakeClient(procfs, {small: 2 * MIB, large: 5 * MIB})
    side = Side(Target("moorage", "http://127.0.0.1:8080"), client)  # type: ignore[arg-type]
    figures = {}
    for name, size in (("memory-pull-1MiB", MIB), ("memory-pull-4GiB", 4096 * MIB)):
        case = MemoryPull(name, size=size, reference_size=MIB)
        case.procfs = procfs
        await case.setup(ctx, side)
        figures[name] = await case.measure(ctx, side, 0)
    assert "growth_mib" not in figures["memory-pull-1MiB"].extra
    big = figures["memory-pull-4GiB"]
    assert big.value == pytest.approx(5.0)
    assert big.extra["growth_mib"] == pytest.approx(3.0)
    assert big.extra["peak_growth_mib"] == pytest.approx(5.0)  # 102 MiB, then 107 MiB
    assert big.extra["bytes"] == large
    assert [blob.size for blob in client.pushed] == [small, large]


def test_memory_cases_cover_both_pushes_and_pull_at_three_sizes() -> None:
    names = [case.name for case in memory_cases()]
    assert names == [
        f"memory-{kind}-{size}"
        for kind in ("push-mono", "push-chunked", "pull")
        for size in ("1MiB", "256MiB", "4GiB")
    ]
    assert all(case.unit == "MiB" and case.repeats == 1 for case in memory_cases())
    assert names == [case.name for case in all_cases() if case.name.startswith("memory-")]


@pytest.mark.parametrize(
    ("moorage", "baseline", "expected"),
    [(4.0, 8.0, 2.0), (8.0, 4.0, 0.5), (0.02, 1.15, 1.15), (0.0, 0.0, 1.0), (3.0, 0.1, 1 / 3)],
)
def test_memory_ratio_is_baseline_over_moorage_from_one_mib(
    moorage: float, baseline: float, expected: float
) -> None:
    assert ratio("MiB", moorage, baseline) == pytest.approx(expected)


def test_memory_line_is_oriented_for_moorage() -> None:
    data = json.loads(CaseResult("memory-push-mono-4GiB", "MiB", 2.0, 10.0).to_json())
    assert data["ratio"] == pytest.approx(5.0)


class CountingCase(Case):
    unit = "MiB"
    repeats = 1

    def __init__(self) -> None:
        super().__init__("memory-counting")
        self.settle = False
        self.calls: list[tuple[str, int]] = []

    @override
    async def measure(self, ctx: Context, side: Side, rep: int) -> Measurement:
        self.calls.append((side.name, rep))
        return Measurement(1.0)


async def test_a_case_with_one_repetition_runs_once_on_each_side(tmp_path: Path) -> None:
    ctx = context(tmp_path, repeats=3)
    procfs = FakeProcFs(pids=[10])
    sides = [
        Side(Target(name, "http://127.0.0.1:8080"), FakeClient(procfs, {}))  # type: ignore[arg-type]
        for name in ("moorage", "baseline")
    ]
    case = CountingCase()
    result = await run_case(case, ctx, sides, Deadlines.within(60.0))
    assert case.calls == [("moorage", 0), ("baseline", 0)]
    assert result.extra["repeats"] == 1
    assert result.error is None
