"""Metrics as an operator sees them: a real Prometheus scrapes the API and the worker.

The API runs with two server worker processes (their counts are summed), the worker
with its own metrics port and the Temporal SDK's; Prometheus (Debian's package)
scrapes all three every second, and PromQL over its HTTP API must count exactly the
pulls the test made.
"""

from __future__ import annotations

import os
import shutil
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.api.oci import OCI_MANIFEST, OCIClient, unique_project
from tests.services.http import answers
from tests.services.moorage import REPO_ROOT, MoorageServer, start_moorage
from tests.services.process import LOOPBACK, ManagedProcess, free_ports, spawn
from tests.services.temporal import TemporalServer

pytestmark = pytest.mark.integration

PULLS = 7
MANIFEST_ROUTE = "/v2/{name}/manifests/{reference}"
#: Bound on Prometheus scraping what was done (scrapes run every second).
SCRAPED_WITHIN = 60.0


@dataclass
class Stack:
    api: MoorageServer
    api_metrics_port: int
    worker: ManagedProcess
    worker_port: int
    temporal_port: int
    prometheus_url: str


def _prometheus() -> str:
    found = shutil.which("prometheus") or "/usr/bin/prometheus"
    assert Path(found).is_file(), "Debian's prometheus package is needed (scripts/install-tools)"
    return found


def _write_config(path: Path, api: int, worker: int, temporal: int) -> None:
    jobs = {"moorage-api": api, "moorage-worker": worker, "moorage-temporal": temporal}
    lines = ["global:", "  scrape_interval: 1s", "  scrape_timeout: 1s", "scrape_configs:"]
    for job, port in jobs.items():
        lines += [
            f"  - job_name: {job}",
            "    static_configs:",
            f"      - targets: ['{LOOPBACK}:{port}']",
        ]
    path.write_text("\n".join(lines) + "\n")


@pytest.fixture
def stack(tmp_path: Path, temporal_server: TemporalServer) -> Iterator[Stack]:
    api_metrics, worker_port, temporal_port, prometheus_port = free_ports(4)
    env = {
        "MOORAGE_DATA_DIR": str(tmp_path / "data"),
        "MOORAGE_AUTH__CREATE_PROJECT_ON_PUSH": "true",
        "MOORAGE_TEMPORAL__ADDRESS": temporal_server.address,
        "MOORAGE_TEMPORAL__TASK_QUEUE": f"q-{uuid.uuid4().hex}",
        "MOORAGE_CONTROL__GC_EVERY_SECONDS": "0",
        "MOORAGE_CONTROL__POLICY_EVERY_SECONDS": "0",
        "MOORAGE_OBSERVABILITY__METRICS__API_PORT": str(api_metrics),
        "MOORAGE_OBSERVABILITY__METRICS__WORKER_PORT": str(worker_port),
        "MOORAGE_OBSERVABILITY__METRICS__TEMPORAL_PORT": str(temporal_port),
    }
    api = start_moorage(tmp_path / "api", env, ["--workers", "2"])
    processes: list[ManagedProcess] = []
    try:
        worker_env = {k: v for k, v in os.environ.items() if not k.startswith("MOORAGE_")}
        worker = spawn(
            "moorage worker",
            [sys.executable, "-m", "cli.main", "worker"],
            log_path=tmp_path / "worker.log",
            env=worker_env | api.env,
            cwd=REPO_ROOT,
        )
        processes.append(worker)
        worker.wait_until(
            partial(answers, LOOPBACK, worker_port, "/metrics"), timeout=60, what="/metrics"
        )
        config = tmp_path / "prometheus.yml"
        _write_config(config, api_metrics, worker_port, temporal_port)
        prometheus = spawn(
            "prometheus",
            [
                _prometheus(),
                f"--config.file={config}",
                f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                f"--web.listen-address={LOOPBACK}:{prometheus_port}",
            ],
            log_path=tmp_path / "prometheus.log",
        )
        processes.append(prometheus)
        prometheus.wait_until(
            partial(answers, LOOPBACK, prometheus_port, "/-/ready"), timeout=60, what="ready"
        )
        yield Stack(
            api,
            api_metrics,
            worker,
            worker_port,
            temporal_port,
            f"http://{LOOPBACK}:{prometheus_port}",
        )
    finally:
        for process in reversed(processes):
            process.stop()
        api.stop()


def _query(url: str, promql: str) -> list[dict[str, Any]]:
    response = httpx.get(f"{url}/api/v1/query", params={"query": promql}, timeout=5)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "success", body
    result: list[dict[str, Any]] = body["data"]["result"]
    return result


def _value_when_scraped(url: str, promql: str, expected: float) -> float | None:
    """The query's single value once it equals ``expected`` or the bound passes."""
    deadline = time.monotonic() + SCRAPED_WITHIN
    value: float | None = None
    while time.monotonic() < deadline:
        result = _query(url, promql)
        value = float(result[0]["value"][1]) if result else None
        if value == expected:
            return value
        time.sleep(0.5)
    return value


def _targets_up(url: str, jobs: int) -> set[tuple[str, str]]:
    """Each job's ``up`` once all ``jobs`` were scraped and reached, or as last scraped.

    A job appears with its first scrape, and a single scrape can miss its one-second
    timeout on a loaded machine (``up`` 0 until the next one), so the answer is the first
    in which every target was reached, or the last one when the bound passes.
    """
    deadline = time.monotonic() + SCRAPED_WITHIN
    while True:
        up = {(s["metric"]["job"], s["value"][1]) for s in _query(url, "up")}
        reached = len(up) == jobs and all(value == "1" for _, value in up)
        if reached or time.monotonic() >= deadline:
            return up
        time.sleep(0.5)


def _manifest_gets(exposition: str) -> list[float]:
    """The values of the successful manifest GET counters in an exposition."""
    return [
        float(line.rsplit(" ", 1)[1])
        for line in exposition.splitlines()
        if line.startswith("moorage_http_request_total{")
        and f'operation="{MANIFEST_ROUTE}"' in line
        and 'method="GET"' in line
        and 'code="200"' in line
    ]


def _exposition_counting(http: httpx.Client, pulls: int) -> str:
    """The API's ``/metrics`` once it counts ``pulls`` manifest GETs or the bound passes."""
    deadline = time.monotonic() + SCRAPED_WITHIN
    exposition = http.get("/metrics").text
    while _manifest_gets(exposition) != [pulls] and time.monotonic() < deadline:
        time.sleep(0.1)
        exposition = http.get("/metrics").text
    return exposition


def test_prometheus_counts_the_pulls_made(stack: Stack) -> None:
    with httpx.Client(base_url=stack.api.url, timeout=30) as http:
        client = OCIClient(http, stack.api.admin_password)
        project = unique_project()
        repo = f"{project}/app"
        client.push_image(repo, "v1")
        for _ in range(PULLS):
            pulled = client.request(
                "GET", f"/v2/{repo}/manifests/v1", repo, headers={"Accept": OCI_MANIFEST}
            )
            assert pulled.status_code == 200
        # A request is counted by its end hook, which runs once its last byte is handed
        # to the server: the client can read the answer a moment before that.
        exposition = _exposition_counting(http, PULLS)

    pulls = (
        f'sum(moorage_http_request_total{{job="moorage-api",operation="{MANIFEST_ROUTE}",'
        'method="GET",code="200"})'
    )
    assert _value_when_scraped(stack.prometheus_url, pulls, PULLS) == PULLS
    # The API's own /metrics sums both server workers the same way.
    assert _manifest_gets(exposition) == [PULLS]
    # Bounded labels: no repository or user name anywhere in the exposition.
    assert project not in exposition
    assert "admin" not in exposition

    assert _targets_up(stack.prometheus_url, jobs=3) == {
        ("moorage-api", "1"),
        ("moorage-worker", "1"),
        ("moorage-temporal", "1"),
    }
    backlog = _query(stack.prometheus_url, 'moorage_task_queue_size{type="outbox"}')
    assert len(backlog) == 1
    assert _query(stack.prometheus_url, "moorage_ops_stats_up")[0]["value"][1] == "1"
    temporal = _query(
        stack.prometheus_url, 'count({job="moorage-temporal",__name__=~"temporal_.+"})'
    )
    assert temporal
    assert float(temporal[0]["value"][1]) > 0
    # The series the alert rules use for worker starvation.
    slots = _query(stack.prometheus_url, "temporal_worker_task_slots_available")
    assert {s["metric"].get("worker_type") for s in slots} >= {"ActivityWorker", "WorkflowWorker"}
