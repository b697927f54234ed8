"""Benchmark case definitions.

Every case measures one side (one registry) at a time. ``prepare`` makes data shared by
both sides for one repetition (outside the timed region), ``setup`` puts whatever the case
reads into a side once, and ``measure`` runs the timed part.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from typing_extensions import override

from bench.client import (
    MANIFEST_ACCEPT,
    OCI_MANIFEST,
    RegistryClient,
    Target,
    image_manifest,
)
from bench.images import Layout, build_layout
from bench.native_load import LoadResult, run_read, run_wrk
from bench.payloads import MIB, Blob, PayloadFactory, small_blob

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable
    from pathlib import Path

GIB = 1024 * MIB
MAX_REQUESTS_PER_WORKER = 200_000


@dataclass(frozen=True)
class Scale:
    """Sizes and durations of a run.

    Attributes:
        divisor: Every byte size is divided by this (16 for ``--quick``).
        duration_s: Measured duration of each request-rate case.
        warmup_s: Unmeasured lead-in of each request-rate case.
        repeats: Repetitions of each case; the median is reported.
        case_timeout_s: Upper bound on one measurement.
    """

    divisor: int = 1
    duration_s: float = 5.0
    warmup_s: float = 0.5
    repeats: int = 3
    case_timeout_s: float = 300.0

    def size(self, nbytes: int) -> int:
        """Scale a byte size."""
        return nbytes // self.divisor


FULL = Scale()
QUICK = Scale(divisor=16, duration_s=2.0, warmup_s=0.2, repeats=1, case_timeout_s=60.0)


@dataclass
class Side:
    """One registry under test with its client and per-side state."""

    target: Target
    client: RegistryClient
    state: dict[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        """``moorage``, ``baseline`` (docker-registry) or ``distribution`` (v3)."""
        return self.target.name


@dataclass
class Context:
    """What all cases of a run share."""

    scale: Scale
    payloads: PayloadFactory
    workdir: Path
    sha256_rate: float = 0.0
    shared: dict[str, Any] = field(default_factory=dict)
    #: Who sends the request-rate cases' requests: ``native`` (``wrk``, or ``ab`` for HEAD;
    #: see :mod:`bench.native_load`) or ``python`` (this process's own client).
    load: str = "native"


@dataclass
class Measurement:
    """One timed result of one side.

    Attributes:
        value: The figure in the case's unit.
        extra: Additional figures, such as ``p50_ms`` and ``p99_ms``.
    """

    value: float
    extra: dict[str, float] = field(default_factory=dict)


class Case:
    """A named measurement run against both sides."""

    unit: str = "MB/s"
    repo: str = "bench/blob"
    #: Flush dirty pages before each measurement so no side pays for the other's writes.
    settle: bool = True
    #: Repetitions of this case when fewer than the run's (``None``: the run's count).
    repeats: int | None = None

    def __init__(self, name: str) -> None:
        """Name the case.

        Args:
            name: The case name reported in the output.
        """
        self.name = name

    def prepare(self, ctx: Context, rep: int) -> None:
        """Make the data of repetition ``rep``, shared by both sides (untimed)."""

    async def setup(self, ctx: Context, side: Side) -> None:
        """Put what the case needs into ``side`` once (untimed)."""

    async def measure(self, ctx: Context, side: Side, rep: int) -> Measurement:
        """Run the timed part of repetition ``rep`` on ``side``."""
        raise NotImplementedError


class Sha256Rate(Case):
    """The machine's ``hashlib.sha256`` rate; the same figure on both sides."""

    settle = False

    @override
    async def measure(self, ctx: Context, side: Side, rep: int) -> Measurement:
        return Measurement(ctx.sha256_rate)


def measure_sha256_rate(payloads: PayloadFactory, nbytes: int, rounds: int = 3) -> float:
    """Measure ``hashlib.sha256`` over in-memory data, in MB/s (median of ``rounds``).

    Args:
        payloads: Source of the random buffer.
        nbytes: Bytes hashed per round.
        rounds: Number of rounds.

    Returns:
        The median rate in 10^6 bytes per second.
    """
    view = memoryview(payloads.base)
    piece = min(8 * MIB, len(view))
    rates = []
    for _ in range(rounds):
        hasher = hashlib.sha256()
        start = time.perf_counter()
        done = 0
        while done < nbytes:
            hasher.update(view[:piece])
            done += piece
        rates.append(done / (time.perf_counter() - start) / 1e6)
    return sorted(rates)[len(rates) // 2]


#: Bytes one write-rate measurement writes (unscaled).
WRITE_RATE_BYTES = 1024 * MIB


def write_rates_key(case: str) -> str:
    """The ``Context.shared`` key of the write rates measured before ``case``'s repetitions."""
    return f"write-rates:{case}"


def measure_write_rate(payloads: PayloadFactory, directory: Path, nbytes: int) -> float:
    """Write ``nbytes`` of random bytes to a new file with plain Python, in MB/s.

    This is the rate at which this machine takes bytes that land in fresh page cache, the
    ceiling of any push (a registry keeps what it receives). The file is removed after.
    """
    view = memoryview(payloads.base)
    piece = min(8 * MIB, len(view))
    path = directory / f"write-rate-{os.getpid()}-{time.monotonic_ns()}"
    start = time.perf_counter()
    done = 0
    with path.open("wb") as out:
        while done < nbytes:
            out.write(view[: min(piece, nbytes - done)])
            done += min(piece, nbytes - done)
    elapsed = time.perf_counter() - start
    path.unlink()
    return done / elapsed / 1e6


class WriteRate(Case):
    """The machine's rate of plain writes to a new file; the same figure on every side.

    Each push case measures it again right before each of its repetitions (``write_rate``
    and ``*_write_fraction`` on its line); this case is one such measurement on its own.
    """

    settle = False
    repeats = 1

    @override
    def prepare(self, ctx: Context, rep: int) -> None:
        nbytes = ctx.scale.size(WRITE_RATE_BYTES)
        ctx.shared[write_rates_key(self.name)] = [
            measure_write_rate(ctx.payloads, ctx.workdir, nbytes)
        ]

    @override
    async def measure(self, ctx: Context, side: Side, rep: int) -> Measurement:
        rates: list[float] = ctx.shared[write_rates_key(self.name)]
        return Measurement(rates[-1])


def pushed_key(count: int, size: int) -> str:
    """The ``Side.state`` key of the blobs a monolithic push case left in the registry."""
    return f"pushed:{count}x{size}"


class Push(Case):
    """Push ``count`` blobs of ``size`` bytes at once, monolithic or chunked."""

    def __init__(self, name: str, *, chunked: bool, count: int, size: int) -> None:
        """Describe the push.

        Args:
            name: Case name.
            chunked: PATCH in chunks instead of one PUT.
            count: Concurrent blobs.
            size: Unscaled size of each blob.
        """
        super().__init__(name)
        self.chunked = chunked
        self.count = count
        self.size = size
        self._blobs: list[Blob] = []

    @override
    def prepare(self, ctx: Context, rep: int) -> None:
        size = ctx.scale.size(self.size)
        self._blobs = [ctx.payloads.blob(size, f"{self.name}-{rep}-{i}") for i in range(self.count)]
        rate = measure_write_rate(ctx.payloads, ctx.workdir, ctx.scale.size(WRITE_RATE_BYTES))
        ctx.shared.setdefault(write_rates_key(self.name), []).append(rate)

    @override
    async def measure(self, ctx: Context, side: Side, rep: int) -> Measurement:
        client = side.client
        chunk = ctx.scale.size(8 * MIB)
        piece = min(8 * MIB, max(MIB, chunk))

        async def one(blob: Blob) -> None:
            if self.chunked:
                await client.push_chunked(self.repo, blob, chunk=chunk, piece=piece)
            else:
                await client.push_monolithic(self.repo, blob, piece=piece)

        start = time.perf_counter()
        await asyncio.gather(*(one(blob) for blob in self._blobs))
        elapsed = time.perf_counter() - start
        total = sum(blob.size for blob in self._blobs)
        if not self.chunked:
            side.state[pushed_key(self.count, self.size)] = list(self._blobs)
        return Measurement(total / elapsed / 1e6, {"bytes": total, "seconds": elapsed})


class Pull(Case):
    """GET ``count`` blobs of ``size`` bytes at once, reading them fully without hashing."""

    def __init__(self, name: str, *, count: int, size: int) -> None:
        """Describe the pull.

        Args:
            name: Case name.
            count: Concurrent blobs.
            size: Unscaled size of each blob.
        """
        super().__init__(name)
        self.count = count
        self.size = size

    @override
    async def setup(self, ctx: Context, side: Side) -> None:
        key = pushed_key(self.count, self.size)
        blobs: list[Blob] | None = side.state.get(key)
        if blobs is None:  # the push case did not run: push blobs of the same sizes now
            shared = f"pull-blobs:{self.name}"
            if shared not in ctx.shared:
                size = ctx.scale.size(self.size)
                ctx.shared[shared] = [
                    ctx.payloads.blob(size, f"{shared}-{i}") for i in range(self.count)
                ]
            blobs = list(ctx.shared[shared])
            for blob in blobs:
                await side.client.push_monolithic(self.repo, blob)
            side.state[key] = blobs
        side.state[f"pull:{self.name}"] = blobs

    @override
    async def measure(self, ctx: Context, side: Side, rep: int) -> Measurement:
        blobs: list[Blob] = side.state[f"pull:{self.name}"]
        start = time.perf_counter()
        counts = await asyncio.gather(
            *(side.client.pull_blob(self.repo, blob.digest) for blob in blobs)
        )
        elapsed = time.perf_counter() - start
        expected = sum(blob.size for blob in blobs)
        if sum(counts) != expected:
            raise RuntimeError(f"pulled {sum(counts)} bytes, expected {expected}")
        return Measurement(expected / elapsed / 1e6, {"bytes": expected, "seconds": elapsed})


async def small_image(side: Side, repo: str, tag: str | None) -> tuple[bytes, str]:
    """Push a config and one small layer, then the manifest if ``tag`` is given.

    Returns:
        The manifest bytes and digest.
    """
    layer = small_blob(os.urandom(4096))
    config = small_blob(
        json.dumps(
            {"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers"}},
            separators=(",", ":"),
        ).encode()
    )
    for data, digest in (layer, config):
        await side.client.push_bytes(repo, data, digest)
    manifest = image_manifest(config, [(len(layer[0]), layer[1])])
    digest = "sha256:" + hashlib.sha256(manifest).hexdigest()
    if tag is not None:
        await side.client.put_manifest(repo, tag, manifest)
    return manifest, digest


def _percentile(sorted_values: list[float], fraction: float) -> float:
    if not sorted_values:
        return 0.0
    index = min(len(sorted_values) - 1, round(fraction * (len(sorted_values) - 1)))
    return sorted_values[index]


async def _rate(
    ctx: Context, concurrency: int, request: Callable[[int, int], Awaitable[object]]
) -> Measurement:
    """Run ``request(worker, i)`` from ``concurrency`` workers for the scale's duration.

    Requests started during the warm-up are not counted. Each worker stops at the deadline
    or after ``MAX_REQUESTS_PER_WORKER`` requests.
    """
    loop_start = time.perf_counter()
    measure_start = loop_start + ctx.scale.warmup_s
    deadline = measure_start + ctx.scale.duration_s
    latencies: list[float] = []

    async def worker(index: int) -> None:
        for i in range(MAX_REQUESTS_PER_WORKER):
            begin = time.perf_counter()
            if begin >= deadline:
                return
            await request(index, i)
            if begin >= measure_start:
                latencies.append(time.perf_counter() - begin)

    await asyncio.gather(*(worker(index) for index in range(concurrency)))
    elapsed = max(time.perf_counter(), deadline) - measure_start
    latencies.sort()
    return Measurement(
        len(latencies) / elapsed,
        {
            "p50_ms": _percentile(latencies, 0.50) * 1000,
            "p99_ms": _percentile(latencies, 0.99) * 1000,
            "requests": len(latencies),
        },
    )


async def _native_rate(ctx: Context, what: str, load: Callable[[float], LoadResult]) -> Measurement:
    """Run ``load(seconds)`` (a :mod:`bench.native_load` run) once unmeasured, then measured.

    The warm-up opens the connections and wakes the server's workers, as the warm-up of
    :func:`_rate` does; the tools take whole seconds, so it lasts at least one. A run with
    any failed request raises (``what`` names it).
    """
    if ctx.scale.warmup_s > 0:
        (await asyncio.to_thread(load, ctx.scale.warmup_s)).check(f"{what}, warm-up")
    result = (await asyncio.to_thread(load, ctx.scale.duration_s)).check(what)
    extra = {"p50_ms": result.p50_ms, "p99_ms": result.p99_ms, "requests": result.requests}
    return Measurement(result.rate, extra)


class ManifestRead(Case):
    """HEAD or GET one manifest by tag or digest from ``concurrency`` clients."""

    unit = "req/s"
    settle = False
    repo = "bench/manifest"

    def __init__(self, name: str, *, method: str, by_digest: bool, concurrency: int) -> None:
        """Describe the requests.

        Args:
            name: Case name.
            method: ``HEAD`` or ``GET``.
            by_digest: Address the manifest by digest instead of tag.
            concurrency: Concurrent clients.
        """
        super().__init__(name)
        self.method = method
        self.by_digest = by_digest
        self.concurrency = concurrency

    @override
    async def setup(self, ctx: Context, side: Side) -> None:
        if "manifest-digest" not in side.state:
            _, digest = await small_image(side, self.repo, "latest")
            side.state["manifest-digest"] = digest

    @override
    async def measure(self, ctx: Context, side: Side, rep: int) -> Measurement:
        reference = side.state["manifest-digest"] if self.by_digest else "latest"
        client = side.client
        if ctx.load == "native":
            url = f"{client.base}/v2/{self.repo}/manifests/{reference}"
            headers = client.headers({"Accept": MANIFEST_ACCEPT})

            def load(seconds: float) -> LoadResult:
                return run_read(
                    url,
                    method=self.method,
                    seconds=seconds,
                    connections=self.concurrency,
                    headers=headers,
                )

            return await _native_rate(ctx, f"{self.name} on {side.name}", load)

        async def request(_worker: int, _i: int) -> None:
            await client.manifest(self.method, self.repo, reference)

        return await _rate(ctx, self.concurrency, request)


class ManifestPut(Case):
    """PUT one manifest to new tags from ``concurrency`` clients."""

    unit = "req/s"
    settle = False
    repo = "bench/manifest-put"

    def __init__(self, name: str, *, concurrency: int) -> None:
        """Describe the requests.

        Args:
            name: Case name.
            concurrency: Concurrent clients.
        """
        super().__init__(name)
        self.concurrency = concurrency

    @override
    async def setup(self, ctx: Context, side: Side) -> None:
        manifest, _ = await small_image(side, self.repo, None)
        side.state["put-manifest"] = manifest

    @override
    async def measure(self, ctx: Context, side: Side, rep: int) -> Measurement:
        manifest: bytes = side.state["put-manifest"]
        client = side.client
        if ctx.load == "native":
            url = f"{client.base}/v2/{self.repo}/manifests/r{rep}"
            headers = client.headers({"Content-Type": OCI_MANIFEST})
            runs = iter(("warm", "run"))

            def load(seconds: float) -> LoadResult:
                # NOTE: each run's tags are new: r<rep>-<run>-<thread>-<n>
                prefix = f"/v2/{self.repo}/manifests/r{rep}-{next(runs)}-"
                return run_wrk(
                    url,
                    seconds=seconds,
                    connections=self.concurrency,
                    headers=headers,
                    method="PUT",
                    body=manifest,
                    unique_path_prefix=prefix,
                    expect_status=201,
                )

            return await _native_rate(ctx, f"{self.name} on {side.name}", load)

        async def request(worker: int, i: int) -> None:
            await client.put_manifest(self.repo, f"r{rep}-w{worker}-{i}", manifest)

        return await _rate(ctx, self.concurrency, request)


SKOPEO_LAYER = 125 * MIB
SKOPEO_LAYERS = 4


def _skopeo_env(home: Path) -> dict[str, str]:
    home.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("XDG_", "REGISTRY_AUTH"))}
    env["HOME"] = str(home)
    env["XDG_RUNTIME_DIR"] = str(home / "run")
    env["XDG_DATA_HOME"] = str(home / "data")
    env["XDG_CONFIG_HOME"] = str(home / "config")
    return env


def _creds_args(target: Target, prefix: str) -> list[str]:
    if target.credentials is None:
        return [f"--{prefix}-no-creds"]
    creds = target.credentials
    return [f"--{prefix}-creds", f"{creds.username}:{creds.password}"]


def _host(target: Target) -> str:
    return target.url.split("://", 1)[-1].rstrip("/")


async def _skopeo(args: list[str], home: Path, timeout: float, log: Path) -> float:
    """Run ``skopeo copy`` with a fresh HOME; return its wall-clock time."""
    argv = ["skopeo", "--insecure-policy", "copy", "--quiet", "--retry-times", "0", *args]
    with log.open("ab") as out:
        start = time.perf_counter()
        proc = await asyncio.create_subprocess_exec(
            *argv, stdin=subprocess.DEVNULL, stdout=out, stderr=out, env=_skopeo_env(home)
        )
        try:
            code = await asyncio.wait_for(proc.wait(), timeout)
        except TimeoutError:
            proc.kill()
            await proc.wait()
            raise
        elapsed = time.perf_counter() - start
    if code != 0:
        tail = log.read_text(errors="replace")[-1500:]
        raise RuntimeError(f"skopeo exited with {code}: {tail}")
    return elapsed


class SkopeoIn(Case):
    """``skopeo copy`` of a fresh random image from an ``oci:`` dir into the registry.

    A new image is built for each repetition so that no blob is already known anywhere:
    as root, skopeo keeps its blob-info cache under /var/lib/containers whatever HOME is.
    """

    unit = "s"
    repo = "bench/skopeo-in"

    def __init__(self, name: str) -> None:
        """Name the case."""
        super().__init__(name)
        self._layout: Layout | None = None

    @override
    def prepare(self, ctx: Context, rep: int) -> None:
        if self._layout is not None:
            shutil.rmtree(self._layout.path, ignore_errors=True)
        sizes = [ctx.scale.size(SKOPEO_LAYER)] * SKOPEO_LAYERS
        self._layout = build_layout(ctx.workdir / f"skopeo-in-{rep}", ctx.payloads, sizes)

    @override
    async def measure(self, ctx: Context, side: Side, rep: int) -> Measurement:
        if self._layout is None:
            raise RuntimeError("prepare was not called")
        dest = f"docker://{_host(side.target)}/{self.repo}:r{rep}"
        seconds = await _skopeo(
            [
                "--dest-tls-verify=false",
                *_creds_args(side.target, "dest"),
                self._layout.reference,
                dest,
            ],
            ctx.workdir / f"home-{side.name}-in-{rep}",
            ctx.scale.case_timeout_s,
            ctx.workdir / "skopeo.log",
        )
        return Measurement(seconds, {"bytes": self._layout.size})


class SkopeoOut(Case):
    """``skopeo copy`` of a random image from the registry into a new ``oci:`` dir."""

    unit = "s"
    repo = "bench/skopeo-out"

    @override
    async def setup(self, ctx: Context, side: Side) -> None:
        layout: Layout | None = ctx.shared.get("skopeo-out-layout")
        if layout is None:
            sizes = [ctx.scale.size(SKOPEO_LAYER)] * SKOPEO_LAYERS
            layout = build_layout(ctx.workdir / "skopeo-out-src", ctx.payloads, sizes)
            ctx.shared["skopeo-out-layout"] = layout
        await _skopeo(
            [
                "--dest-tls-verify=false",
                *_creds_args(side.target, "dest"),
                layout.reference,
                f"docker://{_host(side.target)}/{self.repo}:src",
            ],
            ctx.workdir / f"home-{side.name}-out-setup",
            ctx.scale.case_timeout_s,
            ctx.workdir / "skopeo.log",
        )

    @override
    async def measure(self, ctx: Context, side: Side, rep: int) -> Measurement:
        layout: Layout = ctx.shared["skopeo-out-layout"]
        out = ctx.workdir / f"skopeo-out-{side.name}-{rep}"
        try:
            seconds = await _skopeo(
                [
                    "--src-tls-verify=false",
                    *_creds_args(side.target, "src"),
                    f"docker://{_host(side.target)}/{self.repo}:src",
                    f"oci:{out}:bench",
                ],
                ctx.workdir / f"home-{side.name}-out-{rep}",
                ctx.scale.case_timeout_s,
                ctx.workdir / "skopeo.log",
            )
        finally:
            shutil.rmtree(out, ignore_errors=True)
        return Measurement(seconds, {"bytes": layout.size})
