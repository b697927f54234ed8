"""High availability under faults (issue 15 item 6).

Two ``moorage api`` processes behind HAProxy (health-checked on ``/readyz``), two
``moorage worker`` processes, one PostgreSQL, one SeaweedFS and one Temporal server
(``tests.ha.topology``). Each test runs a bounded push/pull load through HAProxy and
injects one fault: ``kill -9`` of an API process, ``kill -9`` of a worker, a PostgreSQL
restart, S3 stopped for 10 s. Every test then checks (``tests.ha.phases``): clients got
only successes or fast 503s with an OCI error body (no 500, no hang), their retries
succeeded, every committed image pulls byte-identical, and every pushed manifest's event
was dispatched exactly once. Availability per fault is printed at the end of the module
(and written to ``availability.json`` in the topology's directory).
"""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING

import pytest

from tests.ha.phases import PhaseResult, dispatch_problems, pull_all, run_phase
from tests.ha.topology import Topology, running_topology

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from pathlib import Path

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("ha")]
#: How long S3 stays down.
S3_DOWN_SECONDS = 10.0
#: How long the load runs on the remaining process after a kill.
DEGRADED_SECONDS = 2.0


@pytest.fixture(scope="module")
def results(request: pytest.FixtureRequest) -> Iterator[dict[str, PhaseResult]]:
    """Each fault's result, reported when the module ends."""
    found: dict[str, PhaseResult] = {}
    yield found
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    lines = ["", "HA availability (from the fault to the end of the load):"]
    lines += [
        f"  {r.fault}: {r.during.percent:.1f} % of {r.during.requests} requests succeeded,"
        f" longest gap {r.during.longest_gap:.2f} s ({r.during.gap_began:.1f} s after the fault),"
        f" slowest failure {r.during.slowest_failure:.2f} s"
        for r in found.values()
    ]
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    if reporter is not None and capture is not None:
        with capture.global_and_fixture_disabled():
            for line in lines:
                reporter.write_line(line)


@pytest.fixture(scope="module")
def topology(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Topology]:
    root: Path = tmp_path_factory.mktemp("ha")
    with running_topology(root) as started:
        yield started


@pytest.fixture
def phase(
    topology: Topology, results: dict[str, PhaseResult]
) -> Callable[[str, Callable[[], None]], PhaseResult]:
    """Run a fault under load, check what every phase checks, record the result."""

    def run(fault: str, inject: Callable[[], None]) -> PhaseResult:
        topology.wait_all_up()
        result = run_phase(topology, fault, inject)
        results[fault] = result
        _save(topology, results)
        assert result.violations == []
        assert result.images, "no image was committed"
        everything = [image for r in results.values() for image in r.images]
        assert pull_all(topology, everything) == []
        assert dispatch_problems(topology, result.images) == []
        return result

    return run


def _save(topology: Topology, results: dict[str, PhaseResult]) -> None:
    document = {
        fault: {
            "requests": r.during.requests,
            "succeeded": r.during.succeeded,
            "percent": round(r.during.percent, 2),
            "longest_gap_seconds": round(r.during.longest_gap, 3),
            "gap_began_seconds": round(r.during.gap_began, 3),
            "slowest_failure_seconds": round(r.during.slowest_failure, 3),
            "images": len(r.images),
        }
        for fault, r in results.items()
    }
    (topology.root / "availability.json").write_text(json.dumps(document, indent=2))


def test_kill_api_process(topology: Topology, phase: Callable[..., PhaseResult]) -> None:
    """A killed API process leaves HAProxy's pool; the other one serves everything."""

    def inject() -> None:
        topology.kill_api("api1")
        topology.wait_pool("api1", "DOWN")
        time.sleep(DEGRADED_SECONDS)
        topology.start_api("api1")
        topology.wait_pool("api1", "UP")

    phase("kill-api", inject)


def test_kill_worker(topology: Topology, phase: Callable[..., PhaseResult]) -> None:
    """Events keep flowing through the other worker; none is lost or delivered twice."""

    def inject() -> None:
        pid = topology.kill_worker("worker1")
        # NOTE: an event batch's attempt on the dead worker would hold its subscriber's
        # later batches until its start-to-close timeout (5 minutes); fail it now instead.
        topology.fail_attempts_of(pid)
        time.sleep(DEGRADED_SECONDS)
        topology.start_worker("worker1")

    phase("kill-worker", inject)


def test_restart_postgres(topology: Topology, phase: Callable[..., PhaseResult]) -> None:
    """Requests during the restart fail with 503; the pools reconnect afterwards."""

    def inject() -> None:
        topology.restart_postgres()
        topology.wait_all_up()

    phase("restart-postgres", inject)


def test_stop_s3(topology: Topology, phase: Callable[..., PhaseResult]) -> None:
    """With S3 away for 10 s, requests fail fast with 503 and succeed once it is back."""

    def inject() -> None:
        topology.stop_s3()
        time.sleep(S3_DOWN_SECONDS)
        topology.start_s3()
        topology.wait_all_up()

    phase("stop-s3", inject)
