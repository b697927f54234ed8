"""Webhook delivery: event-to-delivery latency and deliveries per second.

``python -m bench.webhooks [--pushes N] [--targets 1,10,100]`` starts a Temporal dev
server, ``moorage api`` and ``moorage worker`` (SQLite, filesystem) and one receiver on
loopback. For each target count it creates a project with that many webhooks (each its
own URL, subscribed to ``artifact.pushed``), pushes ``N`` images one after the other and
waits until every webhook has received every push. A delivery's latency is the time
from the push's manifest ``PUT`` answer to the receiver reading the request; the rate is
deliveries over the time from the first push's answer to the last delivery. The receiver
answers 204 at once and verifies nothing (the tests verify signatures), so it measures
Moorage, not the receiver. Nothing asserts on time; the JSON lines go into reports.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import httpx
from aiohttp import web

from tests.api.oci import OCIClient
from tests.services.http import answers
from tests.services.moorage import REPO_ROOT, start_moorage
from tests.services.process import LOOPBACK, ManagedProcess, free_port, spawn
from tests.services.temporal import start_temporal

#: Longest wait for one target count's deliveries (seconds).
DELIVERY_BOUND_S = 600.0


@dataclass
class Receiver:
    """Records when each (path, digest) delivery arrived; answers 204."""

    port: int = 0
    arrivals: dict[tuple[str, str], float] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)
    loop: asyncio.AbstractEventLoop | None = None

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        now = time.monotonic()
        digest = str(json.loads(body).get("data", {}).get("digest", ""))
        with self.lock:
            self.arrivals.setdefault((request.path, digest), now)
        return web.Response(status=204)

    def count(self) -> int:
        with self.lock:
            return len(self.arrivals)

    def start(self) -> None:
        ready = threading.Event()

        def serve() -> None:
            loop = asyncio.new_event_loop()
            self.loop = loop
            app = web.Application()
            app.router.add_route("POST", "/{tail:.*}", self.handle)
            runner = web.AppRunner(app, access_log=None)
            loop.run_until_complete(runner.setup())
            self.port = free_port()
            loop.run_until_complete(web.TCPSite(runner, LOOPBACK, self.port).start())
            ready.set()
            loop.run_forever()
            loop.run_until_complete(runner.cleanup())

        threading.Thread(target=serve, name="bench-receiver", daemon=True).start()
        if not ready.wait(30):
            raise RuntimeError("the receiver did not start")

    def stop(self) -> None:
        if self.loop is not None:
            self.loop.call_soon_threadsafe(self.loop.stop)


def _quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _round(
    oci: OCIClient, admin: tuple[str, str], receiver: Receiver, targets: int, pushes: int
) -> dict[str, Any]:
    """One target count: create the webhooks, push, wait for every delivery."""
    project = f"hooks{targets}-{uuid.uuid4().hex[:6]}"
    http = oci.client
    created = http.post("/api/v1/projects", json={"name": project}, auth=admin)
    created.raise_for_status()
    for n in range(targets):
        hook = http.post(
            f"/api/v1/projects/{project}/webhooks",
            auth=admin,
            json={
                "name": f"t{n}",
                "url": f"http://{LOOPBACK}:{receiver.port}/{project}/{n}",
                "events": ["artifact.pushed"],
            },
        )
        hook.raise_for_status()
    repo = f"{project}/app"
    answered: dict[str, float] = {}
    for n in range(pushes):
        pushed = oci.push_image(repo, f"v{n}")
        answered[pushed.digest] = time.monotonic()
    expected = {(f"/{project}/{n}", digest) for n in range(targets) for digest in answered}
    deadline = time.monotonic() + DELIVERY_BOUND_S
    while time.monotonic() < deadline:
        with receiver.lock:
            if expected <= receiver.arrivals.keys():
                break
        time.sleep(0.05)
    with receiver.lock:
        arrived = {key: receiver.arrivals[key] for key in expected if key in receiver.arrivals}
    latencies = [at - answered[digest] for (_path, digest), at in arrived.items()]
    first = min(answered.values())
    span = max(arrived.values()) - first if arrived else float("nan")
    return {
        "case": f"webhooks-{targets}-targets",
        "targets": targets,
        "pushes": pushes,
        "deliveries": len(arrived),
        "missing": len(expected) - len(arrived),
        "p50_ms": round(statistics.median(latencies) * 1000, 1) if latencies else None,
        "p99_ms": round(_quantile(latencies, 0.99) * 1000, 1) if latencies else None,
        "deliveries_per_s": round(len(arrived) / span, 1) if arrived else 0.0,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.webhooks", description=__doc__)
    parser.add_argument("--pushes", type=int, default=50, help="images pushed per target count")
    parser.add_argument("--targets", default="1,10,100", help="comma-separated target counts")
    args = parser.parse_args(argv)
    counts = [int(part) for part in args.targets.split(",") if part.strip()]
    receiver = Receiver()
    processes: list[ManagedProcess] = []
    with tempfile.TemporaryDirectory(prefix="moorage-bench-hooks-") as scratch:
        workdir = Path(scratch)
        temporal = start_temporal(workdir / "temporal")
        api = None
        try:
            receiver.start()
            metrics_port = free_port()
            env = {
                "MOORAGE_DATA_DIR": str(workdir / "data"),
                "MOORAGE_TEMPORAL__ADDRESS": temporal.address,
                "MOORAGE_TEMPORAL__TASK_QUEUE": f"bench-{uuid.uuid4().hex[:8]}",
                "MOORAGE_OUTBOUND__ALLOW": json.dumps([f"{LOOPBACK}/32"]),
                "MOORAGE_OUTBOUND__ALLOW_HTTP": "true",
                "MOORAGE_OBSERVABILITY__METRICS__WORKER_PORT": str(metrics_port),
            }
            api = start_moorage(workdir / "api", env)
            worker_env = {k: v for k, v in os.environ.items() if not k.startswith("MOORAGE_")}
            worker = spawn(
                "moorage worker",
                [sys.executable, "-m", "cli.main", "worker"],
                log_path=workdir / "worker.log",
                env=worker_env | api.env,
                cwd=REPO_ROOT,
            )
            processes.append(worker)
            worker.wait_until(
                partial(answers, LOOPBACK, metrics_port, "/metrics"),
                timeout=120,
                what="worker /metrics",
            )
            admin = (api.admin_username, api.admin_password)
            with httpx.Client(base_url=api.url, timeout=60) as http:
                oci = OCIClient(http, api.admin_password, api.admin_username)
                for targets in counts:
                    print(
                        json.dumps(_round(oci, admin, receiver, targets, args.pushes)), flush=True
                    )
        finally:
            for process in processes:
                process.stop()
            if api is not None:
                api.process.stop()
            temporal.stop()
            receiver.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
