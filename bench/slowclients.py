"""Pulls beside many slow clients: ``python -m bench.slowclients [--connections 1000]``.

Starts Moorage (``moorage api``, SQLite, filesystem) and Debian's ``docker-registry`` on
loopback the way ``python -m bench`` does, pushes one small image into each, then measures
pulls (manifest ``GET`` by tag, then the config and a 256 KiB layer, from 4 clients for
``--seconds``) twice per registry: alone, and while ``--connections`` slow connections
are held open to the same port. The slow connections are one third each (``mixed``):
idle (connected, nothing sent), a request head trickled a byte a second, and a complete
head of a manifest ``PUT`` followed by its body trickled a byte a second. Whenever the
server closes one, another is opened, so the count stays up for the whole measurement.

Each registry prints one JSON line: pull p50/p99 alone and with the slow connections,
their ratios, the server's resident memory (its whole process tree) before and at the
end of the flood, how many slow connections the server closed, and the load average.
Nothing here asserts; the numbers go to ``docs/performance.md``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import resource
import secrets
import statistics
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from bench.client import Credentials, RegistryClient, Target, image_manifest
from bench.payloads import small_blob
from bench.procmem import ProcFs
from tests.services.docker_registry import start_docker_registry
from tests.services.moorage import start_moorage
from tests.services.process import LOOPBACK

if TYPE_CHECKING:
    from collections.abc import Collection, Sequence

MODES: Final = ("idle", "head", "body")
#: A request head that never ends: its first line, then a header value growing for ever.
_ENDLESS_HEAD: Final = b"GET /v2/ HTTP/1.1\r\nHost: slow\r\nX-Slow: "
#: Opening this many connections at once, at most.
_OPEN_BATCH: Final = 100
_LAYER_BYTES: Final = 256 * 1024


def raise_open_files(needed: int) -> int:
    """Raise this process's soft limit of open files to ``needed`` (at most the hard one)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
    if soft != resource.RLIM_INFINITY and soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
        return wanted
    return soft


@dataclass
class SlowFlood:
    """``count`` slow connections to ``host:port``, each of ``modes[i % len(modes)]``.

    ``idle`` sends nothing; ``head`` trickles an endless request head; ``body`` sends
    ``body_head`` (a complete head with a ``Content-Length``) and then trickles the body.
    A byte goes out on every trickling connection each ``interval`` seconds. With
    ``reconnect`` a connection the server closes is opened again.
    """

    host: str
    port: int
    count: int
    modes: Sequence[str] = MODES
    interval: float = 1.0
    reconnect: bool = False
    body_head: bytes = b""
    #: Connections the server closed (or reset); each counted once.
    closed: int = 0
    #: Connections opened, reopened ones included.
    opened: int = 0
    failed: int = 0
    _live: dict[int, tuple[asyncio.StreamWriter, str, list[int]]] = field(default_factory=dict)
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)
    _stop: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def open_now(self) -> int:
        """Connections currently open."""
        return len(self._live)

    async def start(self) -> None:
        """Open every connection (in batches) and start trickling."""
        for first in range(0, self.count, _OPEN_BATCH):
            batch = range(first, min(self.count, first + _OPEN_BATCH))
            ready = [asyncio.Event() for _ in batch]
            for index, event in zip(batch, ready, strict=True):
                self._tasks.append(asyncio.create_task(self._hold(index, event)))
            await asyncio.gather(*(event.wait() for event in ready))
        self._tasks.append(asyncio.create_task(self._trickle()))

    async def stop(self) -> None:
        """Close every connection and stop."""
        self._stop.set()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(BaseException):
                await task
        for writer, _, _ in list(self._live.values()):
            writer.close()
        self._live.clear()

    async def wait_closed(self, bound_s: float) -> int:
        """Wait until the server closed every connection (at most ``bound_s``); the count."""
        deadline = time.monotonic() + bound_s
        while self.closed < self.count and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        return self.closed

    async def _hold(self, index: int, ready: asyncio.Event) -> None:
        mode = self.modes[index % len(self.modes)]
        while not self._stop.is_set():
            try:
                reader, writer = await asyncio.open_connection(self.host, self.port)
            except OSError:
                self.failed += 1
                ready.set()
                if not self.reconnect:
                    return
                await asyncio.sleep(0.5)
                continue
            self.opened += 1
            if mode == "body":
                writer.write(self.body_head)
            self._live[index] = (writer, mode, [0])
            ready.set()
            try:
                while await reader.read(65536):
                    pass
            except OSError:
                pass
            finally:
                self._live.pop(index, None)
                writer.close()
            if self._stop.is_set():
                return
            self.closed += 1
            if not self.reconnect:
                return

    async def _trickle(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            for writer, mode, position in list(self._live.values()):
                if mode == "idle" or writer.is_closing():
                    continue
                at = position[0]
                position[0] += 1
                byte = (_ENDLESS_HEAD[at : at + 1] or b"a") if mode == "head" else b" "
                with contextlib.suppress(OSError, RuntimeError):
                    writer.write(byte)


def body_head(repository: str, token: str | None) -> bytes:
    """A complete manifest ``PUT`` head announcing a body of 4,000 bytes."""
    lines = [
        f"PUT /v2/{repository}/manifests/slow HTTP/1.1",
        "Host: slow",
        "Content-Type: application/vnd.oci.image.manifest.v1+json",
        "Content-Length: 4000",
    ]
    if token is not None:
        lines.append(f"Authorization: Bearer {token}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def _quantile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


async def measure_pulls(
    client: RegistryClient, repo: str, digests: Collection[str], seconds: float, clients: int
) -> list[float]:
    """Pull latencies (seconds): manifest ``GET`` plus every blob, from ``clients`` at once."""
    deadline = time.monotonic() + seconds
    latencies: list[float] = []

    async def one_client() -> None:
        for _ in range(100_000):
            begin = time.perf_counter()
            if time.monotonic() >= deadline:
                return
            await client.manifest("GET", repo, "latest")
            for digest in digests:
                await client.pull_blob(repo, digest)
            latencies.append(time.perf_counter() - begin)

    await asyncio.gather(*(one_client() for _ in range(clients)))
    return latencies


@dataclass
class Registry:
    """One registry under test and the port its slow connections go to."""

    target: Target
    port: int


async def push_image(client: RegistryClient, repo: str) -> dict[str, int]:
    """Push a config and a 256 KiB layer, then a manifest tagged ``latest``.

    Returns:
        The size of each blob by digest.
    """
    layer = small_blob(os.urandom(_LAYER_BYTES))
    config = small_blob(b'{"architecture":"amd64","os":"linux","rootfs":{"type":"layers"}}')
    for data, digest in (layer, config):
        await client.push_bytes(repo, data, digest)
    manifest = image_manifest(config, [(len(layer[0]), layer[1])])
    await client.put_manifest(repo, "latest", manifest)
    return {config[1]: len(config[0]), layer[1]: len(layer[0])}


async def run_registry(registry: Registry, connections: int, seconds: float) -> dict[str, Any]:
    """Measure one registry alone and beside the slow connections."""
    repo = "bench/slow"
    procs = ProcFs()
    async with RegistryClient(registry.target, 8) as client:
        await client.refresh_token([repo])
        digests = await push_image(client, repo)
        await measure_pulls(client, repo, digests, 1.0, 4)  # warm-up
        alone = await measure_pulls(client, repo, digests, seconds, 4)
        pids = procs.server_pids(registry.port)
        rss_before = procs.total(pids).rss
        token = client.headers().get("Authorization", "").removeprefix("Bearer ") or None
        flood = SlowFlood(
            LOOPBACK, registry.port, connections, reconnect=True, body_head=body_head(repo, token)
        )
        load_before = os.getloadavg()
        await flood.start()
        try:
            await asyncio.sleep(2.0)  # every trickler has sent a byte or two
            await client.refresh_token([repo])
            crowded = await measure_pulls(client, repo, digests, seconds, 4)
            open_at_end = flood.open_now
            rss_during = procs.total(procs.server_pids(registry.port)).rss
            load_during = os.getloadavg()
        finally:
            await flood.stop()
    p50, p99 = _quantile(alone, 0.5), _quantile(alone, 0.99)
    c50, c99 = _quantile(crowded, 0.5), _quantile(crowded, 0.99)
    return {
        "case": f"pull-beside-{connections}-slow",
        "registry": registry.target.name,
        "pulls_alone": len(alone),
        "pulls_crowded": len(crowded),
        "p50_ms_alone": round(p50 * 1000, 2),
        "p99_ms_alone": round(p99 * 1000, 2),
        "p50_ms_crowded": round(c50 * 1000, 2),
        "p99_ms_crowded": round(c99 * 1000, 2),
        "p50_ratio": round(c50 / p50, 2),
        "p99_ratio": round(c99 / p99, 2),
        "mean_ms_crowded": round(statistics.fmean(crowded) * 1000, 2),
        "slow_open_at_end": open_at_end,
        "slow_closed_by_server": flood.closed,
        "slow_opened": flood.opened,
        "slow_failed": flood.failed,
        "rss_mib_before": round(rss_before / 2**20, 1),
        "rss_mib_crowded": round(rss_during / 2**20, 1),
        "loadavg_1m_before": round(load_before[0], 2),
        "loadavg_1m_crowded": round(load_during[0], 2),
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.slowclients", description=__doc__)
    parser.add_argument("--connections", type=int, default=1000, help="slow connections")
    parser.add_argument("--seconds", type=float, default=10.0, help="pull measurement time")
    args = parser.parse_args(argv)
    raise_open_files(4 * args.connections + 1024)
    with (
        tempfile.TemporaryDirectory(prefix="moorage-bench-slow-") as scratch,
        contextlib.ExitStack() as stack,
    ):
        workdir = Path(scratch)
        env = {
            "MOORAGE_DATA_DIR": str(workdir / "moorage" / "data"),
            "MOORAGE_AUTH__ADMIN_PASSWORD": secrets.token_urlsafe(18),
            "MOORAGE_AUTH__CREATE_PROJECT_ON_PUSH": "true",
            "MOORAGE_STORAGE": "filesystem",
        }
        moorage = start_moorage(workdir / "moorage", env)
        stack.callback(moorage.stop)
        peer = start_docker_registry(workdir / "baseline")
        stack.callback(peer.stop)
        registries = [
            Registry(
                Target(
                    "moorage",
                    moorage.url,
                    Credentials(moorage.admin_username, moorage.admin_password),
                ),
                moorage.port,
            ),
            Registry(Target("baseline", peer.url), peer.port),
        ]
        for registry in registries:
            result = asyncio.run(run_registry(registry, args.connections, args.seconds))
            print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
