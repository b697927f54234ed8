"""Server memory against blob size: the ``memory-*`` cases.

Each case pushes (monolithic or chunked) or pulls one blob and samples the resident
memory of the server's whole process tree (``VmRSS`` summed, see :mod:`bench.procmem`)
every :data:`SAMPLE_INTERVAL_S` during the transfer. The figure is the peak over the
idle RSS read just before the transfer, in MiB; lower is better. The blobs are virtual
(:mod:`bench.payloads`) and streamed by the client, so the client holds none of them.
The cases of one direction run from the smallest size up; the larger ones also report
``growth_mib``, their figure minus the smallest size's, which stays near zero when the
server's memory is flat in the blob size, and ``peak_growth_mib``, the same for the
absolute peak (which also counts buffers a server allocates once and then keeps).
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from typing_extensions import override

from bench.cases import GIB, Case, Context, Measurement, Side
from bench.payloads import MIB, Blob
from bench.procmem import Memory, PeakSampler, ProcFs

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

SAMPLE_INTERVAL_S = 0.05
#: Unscaled blob sizes, smallest first, with the names used in the case names.
SIZES: tuple[tuple[str, int], ...] = (("1MiB", MIB), ("256MiB", 256 * MIB), ("4GiB", 4 * GIB))
#: Unscaled bytes per PATCH of the chunked pushes (a server buffering a chunk shows it).
CHUNK = 64 * MIB


def _mib(nbytes: float) -> float:
    return nbytes / MIB


def _port(url: str) -> int:
    port = urlsplit(url).port
    if port is None:
        raise ValueError(f"no port in {url!r}")
    return port


async def watch_memory(
    procfs: ProcFs, port: int, transfer: Callable[[], Awaitable[int]], max_seconds: float
) -> Measurement:
    """Run ``transfer`` while sampling the RSS of the server listening on ``port``.

    Args:
        procfs: Where to read processes from.
        port: The server's TCP port.
        transfer: Moves the blob; returns the bytes moved.
        max_seconds: Bounds the number of samples (the transfer's own time limit).

    Returns:
        The peak RSS increase in MiB, with the idle and peak sums, the ``VmHWM`` increase
        (when the peaks could be reset), the sample count, the longest gap between samples,
        the number of processes, the bytes moved and the seconds taken.

    Raises:
        RuntimeError: If no process listens on ``port``.
    """
    pids = await asyncio.to_thread(procfs.server_pids, port)
    if not pids:
        raise RuntimeError(f"no process listens on port {port}")
    resets = [procfs.reset_peak(pid) for pid in pids]  # every one, no short circuit
    peaks_reset = all(resets)
    idle = procfs.total(pids).rss
    sampler = PeakSampler(
        lambda: procfs.total(pids).rss, SAMPLE_INTERVAL_S, int(max_seconds / SAMPLE_INTERVAL_S) + 1
    )
    sampler.start()
    start = time.perf_counter()
    try:
        nbytes = await transfer()
    finally:
        elapsed = time.perf_counter() - start
        sampler.stop()
    after: Memory = procfs.total(pids)
    peak = max(idle, sampler.peak, after.rss)
    extra = {
        "idle_mib": _mib(idle),
        "peak_mib": _mib(peak),
        "samples": float(sampler.samples),
        "max_gap_ms": sampler.max_gap_s * 1000,
        "processes": float(len(pids)),
        "bytes": float(nbytes),
        "seconds": elapsed,
    }
    if peaks_reset:
        extra["hwm_increase_mib"] = _mib(max(after.hwm - idle, 0))
    return Measurement(_mib(peak - idle), extra)


class MemoryCase(Case):
    """Peak server RSS increase while one blob of ``size`` bytes moves."""

    unit = "MiB"
    repo = "bench/memory"
    repeats = 1

    def __init__(self, name: str, *, kind: str, size: int, reference_size: int) -> None:
        """Describe the case.

        Args:
            name: Case name.
            kind: ``push-mono``, ``push-chunked`` or ``pull``.
            size: Unscaled blob size.
            reference_size: Unscaled size whose figure ``growth_mib`` is taken against.
        """
        super().__init__(name)
        self.kind = kind
        self.size = size
        self.reference_size = reference_size
        self.procfs = ProcFs()

    def _figure_key(self, size: int) -> str:
        return f"memory:{self.kind}:{size}"

    async def _watch(
        self, ctx: Context, side: Side, transfer: Callable[[], Awaitable[int]]
    ) -> Measurement:
        port = _port(side.target.url)
        measurement = await watch_memory(self.procfs, port, transfer, ctx.scale.case_timeout_s)
        figures = (measurement.value, measurement.extra["peak_mib"])
        side.state[self._figure_key(self.size)] = figures
        reference = side.state.get(self._figure_key(self.reference_size))
        if self.size != self.reference_size and reference is not None:
            measurement.extra["growth_mib"] = figures[0] - reference[0]
            measurement.extra["peak_growth_mib"] = figures[1] - reference[1]
        return measurement


def blob_key(size: int) -> str:
    """The ``Side.state`` key of the blob a monolithic memory push left in the registry."""
    return f"memory-blob:{size}"


class MemoryPush(MemoryCase):
    """Push one blob, monolithic or in chunks of :data:`CHUNK`, watching server memory."""

    def __init__(self, name: str, *, chunked: bool, size: int, reference_size: int) -> None:
        """Describe the push (see :class:`MemoryCase`)."""
        kind = "push-chunked" if chunked else "push-mono"
        super().__init__(name, kind=kind, size=size, reference_size=reference_size)
        self.chunked = chunked
        self._blob: Blob | None = None

    @override
    def prepare(self, ctx: Context, rep: int) -> None:
        self._blob = ctx.payloads.blob(ctx.scale.size(self.size), f"{self.name}-{rep}")

    @override
    async def measure(self, ctx: Context, side: Side, rep: int) -> Measurement:
        blob = self._blob
        if blob is None:
            raise RuntimeError("prepare was not called")
        chunk = ctx.scale.size(CHUNK)
        piece = min(8 * MIB, max(MIB, chunk))

        async def transfer() -> int:
            if self.chunked:
                await side.client.push_chunked(self.repo, blob, chunk=chunk, piece=piece)
            else:
                await side.client.push_monolithic(self.repo, blob, piece=piece)
            return blob.size

        measurement = await self._watch(ctx, side, transfer)
        if not self.chunked:
            side.state[blob_key(self.size)] = blob
        return measurement


class MemoryPull(MemoryCase):
    """GET one blob (the monolithic memory push's, else one pushed in setup)."""

    def __init__(self, name: str, *, size: int, reference_size: int) -> None:
        """Describe the pull (see :class:`MemoryCase`)."""
        super().__init__(name, kind="pull", size=size, reference_size=reference_size)

    @override
    async def setup(self, ctx: Context, side: Side) -> None:
        if blob_key(self.size) in side.state:
            return
        shared = f"memory-pull-blob:{self.size}"
        if shared not in ctx.shared:
            ctx.shared[shared] = ctx.payloads.blob(ctx.scale.size(self.size), shared)
        blob: Blob = ctx.shared[shared]
        await side.client.push_monolithic(self.repo, blob)
        side.state[blob_key(self.size)] = blob

    @override
    async def measure(self, ctx: Context, side: Side, rep: int) -> Measurement:
        blob: Blob = side.state[blob_key(self.size)]

        async def transfer() -> int:
            count = await side.client.pull_blob(self.repo, blob.digest)
            if count != blob.size:
                raise RuntimeError(f"pulled {count} bytes, expected {blob.size}")
            return count

        return await self._watch(ctx, side, transfer)


def memory_cases() -> list[Case]:
    """The memory cases: monolithic pushes, chunked pushes, then pulls, each size ascending."""
    reference = SIZES[0][1]
    cases: list[Case] = []
    for chunked in (False, True):
        kind = "chunked" if chunked else "mono"
        cases += [
            MemoryPush(
                f"memory-push-{kind}-{label}", chunked=chunked, size=size, reference_size=reference
            )
            for label, size in SIZES
        ]
    cases += [
        MemoryPull(f"memory-pull-{label}", size=size, reference_size=reference)
        for label, size in SIZES
    ]
    return cases
