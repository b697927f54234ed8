"""The HA topology: two ``moorage api`` processes behind HAProxy, two ``moorage worker``
processes, one PostgreSQL, one SeaweedFS S3 server and one Temporal server.

Every process binds 127.0.0.1. The API processes share one data directory (keys and
settings, as a shared volume would) and one database and bucket; each keeps its port
across restarts, so HAProxy's configuration never changes. The faults act on PIDs this
module started: ``kill -9`` of an API's or a worker's process group (the process and
the server workers it forked), a PostgreSQL restart on the same data directory and port,
and a stop and start of SeaweedFS with the same command line.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import signal
import sys
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Any

from temporalio.api.enums.v1 import PendingActivityState
from temporalio.client import Client
from temporalio.exceptions import ApplicationError

from tests.services.haproxy import HAProxy, start_haproxy
from tests.services.http import answers
from tests.services.moorage import REPO_ROOT
from tests.services.postgres import Postgres, start_postgres
from tests.services.process import LOOPBACK, ManagedProcess, free_ports, spawn
from tests.services.seaweedfs import start_again, start_seaweedfs
from tests.services.temporal import TemporalServer, start_temporal

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from pathlib import Path

    from tests.services.s3 import S3Server

START_TIMEOUT = 90.0
#: Bound on waiting for HAProxy to see a back end change state.
POOL_TIMEOUT = 30.0
BUCKET = "moorage-ha"
API_NAMES = ("api1", "api2")
WORKER_NAMES = ("worker1", "worker2")


@dataclass
class Topology:
    """Everything the HA tests run against, and the faults they inject."""

    root: Path
    postgres: Postgres
    s3: S3Server
    temporal: TemporalServer
    env: dict[str, str]
    api_ports: dict[str, int]
    apis: dict[str, ManagedProcess] = field(default_factory=dict)
    workers: dict[str, ManagedProcess] = field(default_factory=dict)
    haproxy: HAProxy | None = None

    @property
    def url(self) -> str:
        assert self.haproxy is not None
        return self.haproxy.url

    @property
    def admin_password(self) -> str:
        return self.env["MOORAGE_AUTH__ADMIN_PASSWORD"]

    # --- processes --------------------------------------------------------------------

    def start_api(self, name: str) -> None:
        """Start the API process ``name`` on its port; wait for ``GET /readyz`` = 200."""
        port = self.api_ports[name]
        argv = [sys.executable, "-m", "cli.main", "api", "--listen", f"{LOOPBACK}:{port}"]
        process = spawn(
            f"moorage {name}",
            [*argv, "--workers", "1"],
            log_path=self.root / f"{name}.log",
            env=self.env,
            cwd=REPO_ROOT,
        )
        self.apis[name] = process
        process.wait_until(
            partial(answers, LOOPBACK, port, "/readyz"), timeout=START_TIMEOUT, what="/readyz"
        )

    def start_worker(self, name: str) -> None:
        """Start the worker process ``name`` (its readiness shows in the events it runs)."""
        self.workers[name] = spawn(
            f"moorage {name}",
            [sys.executable, "-m", "cli.main", "worker"],
            log_path=self.root / f"{name}.log",
            env=self.env,
            cwd=REPO_ROOT,
        )

    def kill_api(self, name: str) -> None:
        """``kill -9`` the API process ``name`` and the server workers it forked."""
        _kill_group(self.apis.pop(name))

    def kill_worker(self, name: str) -> int:
        """``kill -9`` the worker process ``name``; return its PID."""
        process = self.workers.pop(name)
        _kill_group(process)
        return process.pid

    def fail_attempts_of(self, pid: int) -> int:
        """Fail the activity attempts the dead worker ``pid`` was running, as their
        start-to-close timeouts would (minutes later); the retry policies apply.

        Returns:
            How many attempts there were.
        """
        with ThreadPoolExecutor(max_workers=1) as pool:
            failing = pool.submit(asyncio.run, _fail_attempts_of(self.temporal.address, pid))
            return failing.result(timeout=START_TIMEOUT)

    def restart_postgres(self) -> None:
        """Stop PostgreSQL (fast shutdown: clients are cut off) and start it again."""
        stopped = self.postgres.process
        cleanups, stopped.cleanups = stopped.cleanups, []
        stopped.stop()
        account = None if os.geteuid() != 0 else "postgres"
        process = spawn(
            "postgres",
            [str(arg) for arg in stopped.popen.args],  # type: ignore[union-attr]
            log_path=stopped.log_path,
            env={**os.environ, "LC_ALL": "C", "TZ": "UTC"},
            user=account,
            stop_signal=signal.SIGINT,
        )
        process.cleanups = cleanups
        self.postgres.process = process
        process.wait_until(self._postgres_answers, timeout=START_TIMEOUT, what="SELECT 1")

    def _postgres_answers(self) -> bool:
        try:
            with self.postgres.connect() as conn:
                conn.execute("SELECT 1")
        except Exception:
            return False
        return True

    def stop_s3(self) -> None:
        """Stop the S3 server (its PID only)."""
        self.s3.stop()

    def start_s3(self) -> None:
        """Start the S3 server again: same ports, same data, same bucket."""
        start_again(self.s3, BUCKET)

    # --- the load balancer's view -----------------------------------------------------

    def wait_pool(self, name: str, state: str, timeout: float = POOL_TIMEOUT) -> None:
        """Wait until HAProxy reports the back end ``name`` in ``state`` (UP or DOWN)."""
        assert self.haproxy is not None
        deadline = time.monotonic() + timeout
        while (seen := self.haproxy.server_states().get(name)) != state:
            if time.monotonic() > deadline:
                raise AssertionError(f"HAProxy shows {name} {seen}, not {state}, after {timeout} s")
            time.sleep(0.1)

    def wait_all_up(self) -> None:
        for name in API_NAMES:
            self.wait_pool(name, "UP")

    def stop(self) -> None:
        stops: list[Callable[[], None]] = []
        if self.haproxy is not None:
            stops.append(self.haproxy.stop)
        stops += [p.stop for p in self.apis.values()] + [p.stop for p in self.workers.values()]
        stops += [self.s3.stop, self.postgres.stop, self.temporal.stop]
        for stop in stops:
            with contextlib.suppress(Exception):
                stop()


async def _fail_attempts_of(address: str, pid: int) -> int:
    client = await Client.connect(address)
    started = PendingActivityState.PENDING_ACTIVITY_STATE_STARTED
    failed = 0
    async for execution in client.list_workflows("ExecutionStatus = 'Running'"):
        handle = client.get_workflow_handle(execution.id, run_id=execution.run_id)
        description = await handle.describe()
        for pending in description.raw_description.pending_activities:
            if pending.state == started and pending.last_worker_identity.startswith(f"{pid}@"):
                attempt = client.get_async_activity_handle(
                    workflow_id=execution.id,
                    run_id=execution.run_id,
                    activity_id=pending.activity_id,
                )
                await attempt.fail(ApplicationError("the worker running this attempt was killed"))
                failed += 1
    return failed


def _kill_group(process: ManagedProcess) -> None:
    # NOTE: the process leads a session of its own (``spawn``): its group is its PID.
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.popen.wait(timeout=30)
    process.stop()


def _environment(
    root: Path, postgres: Postgres, s3: S3Server, temporal: TemporalServer
) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MOORAGE_")}
    env |= {
        "PYTHONUNBUFFERED": "1",
        "MOORAGE_DATA_DIR": str(root / "data"),
        "MOORAGE_DATABASE_URL": postgres.url,
        "MOORAGE_STORAGE": "s3",
        "MOORAGE_S3__ENDPOINT_URL": s3.endpoint_url,
        "MOORAGE_S3__BUCKET": BUCKET,
        "MOORAGE_S3__ACCESS_KEY_ID": s3.access_key_id,
        "MOORAGE_S3__SECRET_ACCESS_KEY": s3.secret_access_key,
        "MOORAGE_TEMPORAL__ADDRESS": temporal.address,
        "MOORAGE_AUTH__ADMIN_PASSWORD": secrets.token_urlsafe(18),
        "MOORAGE_AUTH__CREATE_PROJECT_ON_PUSH": "true",
        # The dispatcher polls often and batches briefly, so events flow within the test.
        "MOORAGE_CONTROL__OUTBOX_POLL_SECONDS": "0.2",
        "MOORAGE_CONTROL__EVENT_BATCH_SECONDS": "0.2",
        "MOORAGE_CONTROL__GC_EVERY_SECONDS": "0",
        "MOORAGE_CONTROL__POLICY_EVERY_SECONDS": "0",
    }
    return env


@contextlib.contextmanager
def running_topology(root: Path) -> Iterator[Topology]:
    """Start the whole topology under ``root``; stop every process it started on exit."""
    root.mkdir(parents=True, exist_ok=True)
    with ThreadPoolExecutor(max_workers=3) as pool:
        pg_start = pool.submit(start_postgres, root / "postgres")
        s3_start = pool.submit(start_seaweedfs, root / "seaweedfs", BUCKET)
        temporal_start = pool.submit(start_temporal, root / "temporal")
    starts: list[Future[Any]] = [pg_start, s3_start, temporal_start]
    failures = [exc for f in starts if (exc := f.exception()) is not None]
    if failures:
        for start in starts:
            if start.exception() is None:
                start.result().stop()
        raise failures[0]
    postgres, s3, temporal = pg_start.result(), s3_start.result(), temporal_start.result()
    ports = dict(zip(API_NAMES, free_ports(len(API_NAMES)), strict=True))
    topology = Topology(
        root=root,
        postgres=postgres,
        s3=s3,
        temporal=temporal,
        env=_environment(root, postgres, s3, temporal),
        api_ports=ports,
    )
    try:
        # NOTE: the first API process migrates; the rest start beside each other.
        topology.start_api(API_NAMES[0])
        for name in WORKER_NAMES:
            topology.start_worker(name)
        with ThreadPoolExecutor(max_workers=len(API_NAMES)) as pool:
            for future in [pool.submit(topology.start_api, n) for n in API_NAMES[1:]]:
                future.result()
        topology.haproxy = start_haproxy(root / "haproxy", list(ports.items()))
        topology.wait_all_up()
        yield topology
    finally:
        topology.stop()
