"""What one outbound request costs the client, with httpcore's pool and with Moorage's.

``python -m bench.outbound_pool [--kept 32] [--concurrency 8] [--requests 1000] [--repeats 3]``
starts Debian's ``docker-registry``, pushes one small image, and sends manifest ``HEAD``
requests to it through ``adapters.upstream_registry.UpstreamClient`` (the client a
replication copy, the proxy cache and a served scan use): first ``kept`` at once, so that
many connections are open and then idle in the pool, as while a copy runs, then
``requests`` at ``concurrency`` at a time. Each repetition does this once with the pool
Moorage uses (``adapters.http_pool.LazyPool``) and once with httpcore's own, alternating
which goes first, and measures this process's CPU time (``time.process_time``) and the
wall time of the timed requests. It prints one JSON line per pool with the medians (CPU
microseconds and wall microseconds per request) and ``ratio`` = httpcore's CPU per
request / Moorage's. Nothing here asserts on time.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import tempfile
import time
from contextlib import AbstractContextManager as ContextManager
from pathlib import Path
from typing import Any
from unittest import mock

import httpcore

from adapters import http_sockets
from adapters.http_pool import LazyPool
from adapters.upstream_registry import UpstreamClient
from core.endpoints import CredentialKind, Credentials, EndpointRecord, EndpointType
from core.outbound import OutboundPolicy
from tests.replication.rig import push_image
from tests.services.docker_registry import start_docker_registry

REPOSITORY = "bench/pool"
POOLS: dict[str, type[httpcore.AsyncConnectionPool]] = {
    "moorage": LazyPool,
    "httpcore": httpcore.AsyncConnectionPool,
}


def pool_class(kind: type[httpcore.AsyncConnectionPool]) -> ContextManager[Any]:
    """Make the outbound transports built inside the block use ``kind`` as their pool."""
    return mock.patch.object(http_sockets, "LazyPool", kind)


def _client(url: str) -> UpstreamClient:
    endpoint = EndpointRecord.unsaved("bench", url, EndpointType.DISTRIBUTION, insecure=True)
    policy = OutboundPolicy.of(["127.0.0.0/8"], allow_http=True)
    return UpstreamClient(endpoint, Credentials(CredentialKind.NONE), policy)


async def one_round(url: str, kept: int, concurrency: int, requests: int) -> tuple[float, float]:
    """CPU and wall seconds per timed request of one client."""
    client = _client(url)
    try:
        await asyncio.gather(*(client.head_manifest(REPOSITORY, "1") for _ in range(kept)))
        gate = asyncio.Semaphore(concurrency)

        async def head() -> None:
            async with gate:
                await client.head_manifest(REPOSITORY, "1")

        cpu, wall = time.process_time(), time.perf_counter()
        await asyncio.gather(*(head() for _ in range(requests)))
        return (time.process_time() - cpu) / requests, (time.perf_counter() - wall) / requests
    finally:
        await client.aclose()


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kept", type=int, default=32, help="connections opened first")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="bench-outbound-pool-"))
    registry = start_docker_registry(work / "registry")
    try:
        push_image(registry.url, REPOSITORY, "1", [os.urandom(1024)], note="pool")
        seen: dict[str, list[tuple[float, float]]] = {name: [] for name in POOLS}
        for repeat in range(args.repeats):
            order = list(POOLS) if repeat % 2 == 0 else list(reversed(POOLS))
            for name in order:
                with pool_class(POOLS[name]):
                    seen[name].append(
                        asyncio.run(
                            one_round(registry.url, args.kept, args.concurrency, args.requests)
                        )
                    )
    finally:
        registry.stop()
    cpu = {name: statistics.median(c for c, _ in rounds) for name, rounds in seen.items()}
    results = []
    for name, rounds in seen.items():
        result = {
            "case": f"outbound-head-kept{args.kept}-c{args.concurrency}",
            "pool": name,
            "cpu_us_per_request": round(cpu[name] * 1e6, 1),
            "wall_us_per_request": round(statistics.median(w for _, w in rounds) * 1e6, 1),
            "runs_cpu_us": [round(c * 1e6, 1) for c, _ in rounds],
            "ratio": round(cpu["httpcore"] / cpu[name], 3),
        }
        print(json.dumps(result))
        results.append(result)
    return results


if __name__ == "__main__":
    main()
