"""At-least-once safety of every state-changing activity (DI-06).

Each test runs the real worker as a process of its own (``tests.services.faulty_worker``)
with one activity (or the outbox dispatcher's marking step) made to stall right after its
side effect (or, for GC deletion, right before it), ``kill -9``s that worker while
Temporal still believes the attempt runs, starts a plain ``moorage worker`` and checks
that the workflow completes and leaves what an undisturbed run leaves: no double usage
(DI-05), no duplicate event, no deletion of a blob re-referenced between the attempts,
tags and manifests exact.

Activities whose lost attempt Temporal only notices after a timeout have that attempt
failed by id once the worker is dead: the same retry the timeout would schedule, without
waiting for it (minutes for most; 30 s for the GC steps' heartbeat timeout). Temporal's
own detection of a dead GC worker by its missing heartbeats is what
``test_gc_crash.py`` waits for, on both backends; an event batch's is waited for here.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import sys
import time
import uuid
from collections.abc import Callable, Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
from litestar.testing import TestClient
from sqlalchemy import select
from temporalio.api.enums.v1 import PendingActivityState
from temporalio.client import Client
from temporalio.exceptions import ApplicationError

from activities.backup_contracts import (
    BACKUP_BEGIN,
    BACKUP_COPY_BLOBS,
    BACKUP_FINISH,
    BACKUP_PRUNE,
    BACKUP_RELEASE,
    BACKUP_VERIFY,
    RESTORE_BLOBS,
    RESTORE_PLAN,
    RESTORE_ROWS,
)
from activities.contracts import (
    GC_COLLECT_BLOBS,
    GC_COLLECT_MANIFESTS,
    GC_RECORD_RUN,
    GC_SWEEP_ORPHANS,
    HANDLE_EVENT,
    REAP_EXPIRED_UPLOADS,
    RECONCILE_QUOTAS,
    RETIRE_SIGNING_KEYS,
    ROTATE_SIGNING_KEY,
    RUN_RETENTION,
    KeyRotationInput,
    ReapUploadsInput,
    ReconcileInput,
)
from api.app import create_app
from cli.composition import compose
from cli.wiring import build_activities
from core.digests import Digest
from core.event_batches import BATCH_WORKFLOW, EventBatch, EventValue
from core.key_rotation import rotation_kid
from core.names import RepositoryName
from core.preheat import (
    CREATE_JOB,
    DELIVER_EVENTS_PREHEAT,
    POLL_JOB,
    RECORD_TASK,
)
from core.preheat import FINISH as PREHEAT_FINISH
from core.preheat import NEXT_TASKS as PREHEAT_NEXT_TASKS
from core.preheat import PLAN as PREHEAT_PLAN
from core.preheat import STOP as PREHEAT_STOP
from core.promotion import COPY_IMAGE, EVALUATE_GATES, RECORD_OUTCOME
from core.promotion_rules import DELIVER_EVENTS_PROMOTION
from core.replication import (
    COPY_ARTIFACT,
    DELIVER_EVENTS_REPLICATION,
    FAIL_TASK,
    FINISH_EXECUTION,
    NEXT_TASKS,
    PLAN_EXECUTION,
    STOP_EXECUTION,
)
from core.scan_jobs import (
    ADAPTER_FAIL,
    ADAPTER_SCAN,
    DELIVER_SCANS,
    SCAN_ANALYZE,
    SCAN_CANDIDATES,
    SCAN_DELEGATE,
    SCAN_FAIL,
    SCAN_MATCH,
    SCAN_REMATCH,
    SCAN_SBOM,
    VULNDB_IMPORT,
)
from core.services.quota import QUOTA_WARNING
from core.settings import Settings
from core.subscribers import LOG_EVENTS
from core.trust_verify import VERIFY_TRUST
from core.webhook_events import DELIVER_WEBHOOKS, SEND_WEBHOOKS
from storage.db.migrate import upgrade
from storage.db.repos.outbox import BATCH, OUTBOX
from storage.db.signing_keys import SqlSigningKeyStore
from tests.api.oci import OCIClient, digest_of, unique_project
from tests.conftest import BACKENDS
from tests.integration.trust_rig import push_signature
from tests.services.control_backends import control_settings, worker_env
from tests.services.faulty_worker import BEFORE, DURING, OUTBOX_MARK, activity_name
from tests.services.moorage import REPO_ROOT
from tests.services.process import ManagedProcess, spawn
from tests.services.temporal import TemporalServer
from tests.unit.core.trust_fixtures import new_key, public_pem

pytestmark = pytest.mark.integration
#: Bound of every wait (seconds); polls also stop at :data:`POLLS`.
BOUND = 180.0
POLLS = 5000
#: Longest a faulty worker stalls when nobody kills it.
HOLD = 300.0
#: Heartbeat timeout of the event batch killed while it heartbeats.
HEARTBEAT_SECONDS = 2.0
T = TypeVar("T")

#: Activities that change state, each killed below after (or before) its side effect.
CRASH_TESTED = frozenset(
    {
        GC_RECORD_RUN,
        GC_COLLECT_MANIFESTS,
        GC_COLLECT_BLOBS,
        GC_SWEEP_ORPHANS,
        RUN_RETENTION,
        RECONCILE_QUOTAS,
        REAP_EXPIRED_UPLOADS,
        ROTATE_SIGNING_KEY,
        RETIRE_SIGNING_KEYS,
        # killed mid-delivery in tests/integration/test_webhook_faults.py
        DELIVER_WEBHOOKS,
        VERIFY_TRUST,
        SEND_WEBHOOKS,
        # killed mid-scan in tests/integration/test_scan_workflows.py
        SCAN_ANALYZE,
        SCAN_MATCH,
        SCAN_SBOM,
        # killed at the served scan (before it, and after it while heartbeating) and in a
        # delegated scan (after it stored the report, and while it polls the scanner), in
        # tests/integration/test_scanner_api.py
        ADAPTER_SCAN,
        SCAN_DELEGATE,
        # killed mid-copy in tests/integration/test_backup_crash.py
        BACKUP_COPY_BLOBS,
        # killed mid-blob in tests/replication/test_replication.py
        COPY_ARTIFACT,
        # killed after its side effect in tests/integration/test_promotions.py
        COPY_IMAGE,
        # killed mid-poll in tests/integration/test_preheat.py
        POLL_JOB,
    }
)
#: State-changing activities that no test kills yet. Each is written to be repeated (the
#: reason beside it); this list is the open debt, so a new activity cannot slip past the
#: check above unnoticed.
NOT_YET_KILLED = frozenset(
    {
        BACKUP_BEGIN,  # hold upserted by backup id, snapshot rewritten whole
        BACKUP_FINISH,  # manifest written last, whole
        BACKUP_RELEASE,  # deletes the backup's own hold
        BACKUP_VERIFY,  # reads; writes its operation's result whole
        BACKUP_PRUNE,  # deletes backups beyond keep_last; a repeat finds them gone
        RESTORE_PLAN,  # reads the backup; checks the target
        RESTORE_BLOBS,  # copies content-addressed objects, checked before use
        RESTORE_ROWS,  # one transaction; a repeat recognises the committed load
        PLAN_EXECUTION,  # tasks unique per (execution, operation, source, reference)
        FAIL_TASK,  # sets one task's final state
        FINISH_EXECUTION,  # sets the execution's final state; its event only when running
        STOP_EXECUTION,  # closes a still active execution once; a repeat finds it closed
        DELIVER_EVENTS_REPLICATION,  # starts runs under ids fixed by policy and batch
        # starts promotions under ids fixed by rule, digest and target (duplicates rejected);
        # a repeat starts nothing, and audits only the starts it made itself
        DELIVER_EVENTS_PROMOTION,
        RECORD_OUTCOME,  # audit event per promotion id; its outbox event keyed by run
        PREHEAT_PLAN,  # tasks inserted once per execution; a repeat returns the stored ones
        CREATE_JOB,  # a job recorded on the task is returned; a crash between the provider's
        # answer and the record asks for the same image twice (the provider dedupes by URL)
        RECORD_TASK,  # sets one task's final state whole
        PREHEAT_FINISH,  # sets the execution's final state from its tasks
        PREHEAT_STOP,  # closes a still active execution once; a repeat finds it closed
        DELIVER_EVENTS_PREHEAT,  # starts runs under ids fixed by policy and batch
    }
)
#: Activities without a side effect of their own (nothing to duplicate or lose).
#: (The scan subscriber only starts runs under ids fixed by the event, a repeat is a no-op;
#: a failure record is written again whole; candidates and re-matches rewrite reports as a
#: fresh match does; an OSV import repeated reads the export again, see
#: tests/scanning/test_osv_import.py.)
STATELESS = frozenset(
    {
        HANDLE_EVENT,
        LOG_EVENTS,
        DELIVER_SCANS,
        SCAN_FAIL,
        SCAN_CANDIDATES,
        SCAN_REMATCH,
        VULNDB_IMPORT,
        ADAPTER_FAIL,  # a served scan's failure record, written again whole
        EVALUATE_GATES,  # reads the trust, scan and provenance results
        NEXT_TASKS,  # reads a page of an execution's pending tasks
        PREHEAT_NEXT_TASKS,  # the same for preheat
    }
)


# --- the backend, the in-process API and the worker processes -------------------------


def _settings(
    backend: str, root: Path, temporal: TemporalServer, request: pytest.FixtureRequest
) -> Settings:
    control = {"gc_every_seconds": 0, "policy_every_seconds": 0}
    return control_settings(backend, root, temporal, request, control, label="act")


def _worker_env(settings: Settings) -> dict[str, str]:
    return worker_env(
        settings,
        {
            "GC_BATCH_SIZE": "1",
            "GC_EVERY_SECONDS": "0",
            "POLICY_EVERY_SECONDS": "0",
            "OUTBOX_POLL_SECONDS": "0.2",
        },
    )


@dataclass
class Crash:
    """Where a test stalls the first worker, and what that worker wrote when it did."""

    activity: str
    when: str = "after"
    workflow_id: str | None = None
    skip: int = 0
    facts: dict[str, Any] = field(default_factory=dict)


@dataclass
class Rig:
    """One backend with the API in process and worker processes started by the test."""

    settings: Settings
    root: Path
    oci: OCIClient
    workers: list[ManagedProcess] = field(default_factory=list)

    @property
    def registry(self) -> Any:
        return self.oci.client.app.state["registry"]  # type: ignore[attr-defined]

    def _spawn(self, name: str, argv: list[str]) -> ManagedProcess:
        log = self.root / f"{name}-{len(self.workers)}.log"
        worker = spawn(name, argv, log_path=log, env=_worker_env(self.settings), cwd=REPO_ROOT)
        self.workers.append(worker)
        return worker

    def start_faulty(self, crash: Crash) -> ManagedProcess:
        marker = self.root / f"stalled-{len(self.workers)}.json"
        argv = [sys.executable, "-m", "tests.services.faulty_worker", "--activity"]
        argv += [crash.activity, "--when", crash.when, "--marker", str(marker)]
        argv += ["--hold", str(HOLD), "--skip", str(crash.skip)]
        if crash.workflow_id is not None:
            argv += ["--workflow-id", crash.workflow_id]
        worker = self._spawn("faulty worker", argv)
        worker.cleanups.append(lambda: marker.unlink(missing_ok=True))
        crash.facts["marker"] = str(marker)
        return worker

    def wait_stalled(self, worker: ManagedProcess, crash: Crash) -> None:
        marker = Path(crash.facts["marker"])
        worker.wait_until(marker.exists, timeout=BOUND, what=f"{crash.activity} stalls")
        crash.facts |= json.loads(marker.read_text(encoding="utf-8"))
        assert crash.facts.get("attempt", 1) == 1, crash.facts  # stalled on first delivery

    def kill(self, worker: ManagedProcess) -> None:
        """``kill -9`` this worker's PID only and reap it."""
        worker.popen.kill()
        worker.popen.wait(timeout=30)
        worker.stop()

    def start_plain(self) -> ManagedProcess:
        return self._spawn("moorage worker", [sys.executable, "-m", "cli.main", "worker"])

    def stop_all(self) -> None:
        for worker in self.workers:
            worker.stop()


@pytest.fixture(params=BACKENDS)
def rig(
    request: pytest.FixtureRequest, tmp_path: Path, temporal_server: TemporalServer
) -> Iterator[Rig]:
    settings = _settings(str(request.param), tmp_path, temporal_server, request)
    assert settings.auth.admin_password is not None
    with TestClient(create_app(settings)) as http:
        rig = Rig(
            settings, tmp_path, OCIClient(http, settings.auth.admin_password.get_secret_value())
        )
        try:
            yield rig
        finally:
            rig.stop_all()


def _crash_and_recover(
    rig: Rig, crash: Crash, *, between: Callable[[], None] = lambda: None, expedite: bool = False
) -> None:
    """Stall ``crash.activity`` in a faulty worker, kill it, run ``between``, start a
    plain worker; with ``expedite`` fail the lost attempt by id instead of waiting for
    Temporal's timeout."""
    faulty = rig.start_faulty(crash)
    rig.wait_stalled(faulty, crash)
    rig.kill(faulty)
    between()
    rig.start_plain()
    if expedite:
        _run(lambda: _fail_lost_attempt(rig.settings, crash.facts))


# --- Temporal from synchronous tests ------------------------------------------------


def _run(make: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run a coroutine on a loop of its own (a thread keeps it apart from other loops)."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, make()).result(timeout=BOUND + 30)


async def _client(settings: Settings) -> Client:
    return await Client.connect(settings.temporal.address, namespace=settings.temporal.namespace)


async def _fail_lost_attempt(settings: Settings, facts: dict[str, Any]) -> None:
    """Fail the killed worker's attempt, as its timeout would; the retry policy applies."""
    client = await _client(settings)
    handle = client.get_async_activity_handle(
        workflow_id=facts["workflow_id"], run_id=facts["run_id"], activity_id=facts["activity_id"]
    )
    await handle.fail(ApplicationError("the worker running this attempt was killed"))


async def _fail_attempts_of(settings: Settings, workflow_ids: list[str], pid: int) -> int:
    """Fail (as their timeouts would) the attempts the dead worker ``pid`` was running in
    the given workflows; returns how many there were."""
    client = await _client(settings)
    started = PendingActivityState.PENDING_ACTIVITY_STATE_STARTED
    failed = 0
    for workflow_id in workflow_ids:
        description = await client.get_workflow_handle(workflow_id).describe()
        for pending in description.raw_description.pending_activities:
            if pending.state == started and pending.last_worker_identity.startswith(f"{pid}@"):
                facts = {"workflow_id": workflow_id, "run_id": description.run_id}
                facts["activity_id"] = pending.activity_id
                await _fail_lost_attempt(settings, facts)
                failed += 1
    return failed


async def _start(settings: Settings, workflow: str, arg: object, workflow_id: str) -> None:
    client = await _client(settings)
    await client.start_workflow(
        workflow, arg, id=workflow_id, task_queue=settings.temporal.task_queue
    )


async def _result(settings: Settings, workflow_id: str) -> Any:
    client = await _client(settings)
    async with asyncio.timeout(BOUND):
        return await client.get_workflow_handle(workflow_id).result()


async def _runs_of(settings: Settings, workflow_id: str) -> list[str]:
    """Status of every execution with ``workflow_id`` (visibility is eventually consistent,
    so this waits, bounded, until at least one is listed and none is running)."""
    client = await _client(settings)
    async with asyncio.timeout(BOUND):
        while True:
            found = [
                str(execution.status.name if execution.status else None)
                async for execution in client.list_workflows(f'WorkflowId = "{workflow_id}"')
            ]
            if found and "RUNNING" not in found:
                return found
            await asyncio.sleep(0.3)


# --- what users see -------------------------------------------------------------------


@dataclass
class Image:
    repo: str
    digest: str
    payload: bytes
    blobs: dict[str, bytes]


def _push(oci: OCIClient, repo: str, reference: str, layers: list[bytes] | None = None) -> Image:
    """Push an image (config and layers) and its manifest under ``reference``."""
    layers = layers if layers is not None else [secrets.token_bytes(2048)]
    config = json.dumps({"architecture": "amd64", "os": "linux", "n": uuid.uuid4().hex}).encode()
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": oci.push_blob(repo, config),
            "size": len(config),
        },
        "layers": [
            {
                "mediaType": "application/vnd.oci.image.layer.v1.tar",
                "digest": oci.push_blob(repo, layer),
                "size": len(layer),
            }
            for layer in layers
        ],
    }
    payload = json.dumps(manifest).encode()
    digest = digest_of(payload)
    response = oci.put_manifest(repo, digest if reference == "" else reference, payload)
    assert response.status_code == 201, response.text
    blobs = {digest_of(data): data for data in [config, *layers]}
    return Image(repo, digest, payload, blobs)


def _status(oci: OCIClient, repo: str, path: str) -> int:
    return oci.request("HEAD", f"/v2/{repo}/{path}", repo).status_code


def _assert_pullable(oci: OCIClient, image: Image, reference: str) -> None:
    got = oci.request("GET", f"/v2/{image.repo}/manifests/{reference}", image.repo)
    assert got.status_code == 200, got.text
    assert got.content == image.payload
    for digest, data in image.blobs.items():
        blob = oci.request("GET", f"/v2/{image.repo}/blobs/{digest}", image.repo)
        assert (blob.status_code, blob.content) == (200, data), digest


def _assert_gone(oci: OCIClient, image: Image, blobs: set[str]) -> None:
    assert _status(oci, image.repo, f"manifests/{image.digest}") == 404
    for digest in blobs:
        assert _status(oci, image.repo, f"blobs/{digest}") == 404, digest


def _project(repo: str) -> str:
    return repo.split("/", maxsplit=1)[0]


def _stored(rig: Rig, repo: str) -> set[str]:
    """Digests of the blob objects in the project's storage tenant."""
    repository = rig.registry.repositories.find(RepositoryName.parse(repo))
    return set(map(str, rig.registry.store.list_blobs(repository.storage_id)))


def _usage(oci: OCIClient, project: str) -> int:
    response = oci.client.get(f"/api/v1/projects/{project}/quota", auth=("admin", oci.password))
    assert response.status_code == 200, response.text
    return int(response.json()["used_bytes"])


def _assert_usage_exact(oci: OCIClient, images: list[Image]) -> None:
    """DI-05: reported usage = bytes of the distinct blobs the project's repositories
    serve + bytes of the manifests they serve (among every image the test pushed)."""
    blobs: dict[str, int] = {}
    manifests: dict[tuple[str, str], int] = {}
    for image in images:
        if _status(oci, image.repo, f"manifests/{image.digest}") == 200:
            manifests[(image.repo, image.digest)] = len(image.payload)
        for digest, data in image.blobs.items():
            if _status(oci, image.repo, f"blobs/{digest}") == 200:
                blobs[digest] = len(data)
    for project in {_project(image.repo) for image in images}:
        expected = sum(size for (repo, _), size in manifests.items() if _project(repo) == project)
        expected += sum(blobs.values())
        assert _usage(oci, project) == expected


def _admin(oci: OCIClient, method: str, url: str, **kwargs: Any) -> httpx.Response:
    return oci.client.request(method, url, auth=("admin", oci.password), **kwargs)


def _request_gc(oci: OCIClient, *, delete_untagged: bool = False) -> str:
    body = {"dry_run": False, "delete_untagged": delete_untagged, "review_delay_seconds": 0}
    response = _admin(oci, "POST", "/api/v1/system/gc", json=body)
    assert response.status_code == 202, response.text
    return str(response.json()["id"])


def _settled(rig: Rig, url: str) -> dict[str, Any]:
    """The run at ``url`` once its workflow (named by the run id) has completed."""
    _run(partial(_result, rig.settings, url.rsplit("/", maxsplit=1)[-1]))
    body: dict[str, Any] = _admin(rig.oci, "GET", url).json()
    return body


def _wait_finished(oci: OCIClient, url: str) -> dict[str, Any]:
    deadline = time.monotonic() + BOUND
    for _ in range(POLLS):
        body: dict[str, Any] = _admin(oci, "GET", url).json()
        if body["state"] in {"completed", "failed"}:
            return body
        assert time.monotonic() < deadline, f"{url} still {body['state']}"
        time.sleep(0.2)
    raise AssertionError(f"{url} did not finish")


def _events(rig: Rig, kind: str, **where: Any) -> list[tuple[int, str | None, Any]]:
    """Outbox events of ``kind`` (id, digest, dispatched_at) matching ``where``."""
    query = select(OUTBOX.c.id, OUTBOX.c.digest, OUTBOX.c.dispatched_at).where(
        OUTBOX.c.kind == kind
    )
    for column, value in where.items():
        query = query.where(OUTBOX.c[column] == value)
    with rig.registry.metadata.read() as session:
        return [tuple(row) for row in session._c.execute(query.order_by(OUTBOX.c.id))]


def _tombstones(rig: Rig) -> list[Any]:
    with rig.registry.metadata.read() as session:
        return list(session.collector.blob_tombstones(100, lock=False))


# --- the tests ------------------------------------------------------------------------


def test_every_state_changing_activity_is_killed_in_a_test(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data")
    upgrade(settings)
    root = compose(settings)
    registered = {activity_name(fn) for fn in build_activities(root)}
    root.close()
    assert registered == CRASH_TESTED | STATELESS | NOT_YET_KILLED


def _garbage(rig: Rig) -> tuple[Image, Image]:
    """A tagged live image and a deleted one (its blobs wait for GC), in one repository."""
    repo = f"{unique_project()}/app"
    live = _push(rig.oci, repo, "live")
    garbage = _push(rig.oci, repo, "old")
    deleted = rig.oci.request("DELETE", f"/v2/{repo}/manifests/{garbage.digest}", repo)
    assert deleted.status_code == 202
    return live, garbage


def test_gc_blob_deletion_redelivered_spares_a_blob_pushed_again_in_between(rig: Rig) -> None:
    live, garbage = _garbage(rig)
    layer = next(d for d, data in garbage.blobs.items() if len(data) == 2048)
    run = _request_gc(rig.oci)
    repushed: list[Image] = []

    def push_again() -> None:
        assert _status(rig.oci, live.repo, f"blobs/{layer}") == 404  # deleted: gone already
        repushed.append(_push(rig.oci, live.repo, "back", [garbage.blobs[layer]]))

    _crash_and_recover(
        rig, Crash(GC_COLLECT_BLOBS, workflow_id=run), between=push_again, expedite=True
    )
    assert _settled(rig, f"/api/v1/system/gc/{run}")["state"] == "completed"
    (back,) = repushed
    _assert_pullable(rig.oci, live, "live")
    _assert_pullable(rig.oci, back, "back")
    _assert_gone(rig.oci, garbage, set(garbage.blobs) - {layer})
    assert _stored(rig, live.repo) == set(live.blobs) | set(back.blobs)
    assert _tombstones(rig) == []
    _assert_usage_exact(rig.oci, [live, garbage, back])


def test_gc_report_of_a_redelivered_step_counts_what_the_run_deleted(rig: Rig) -> None:
    live, garbage = _garbage(rig)
    run = _request_gc(rig.oci)
    _crash_and_recover(rig, Crash(GC_COLLECT_BLOBS, workflow_id=run), expedite=True)
    final = _settled(rig, f"/api/v1/system/gc/{run}")
    assert final["state"] == "completed"
    _assert_gone(rig.oci, garbage, set(garbage.blobs))
    _assert_pullable(rig.oci, live, "live")
    counts = {key: final["report"][key] for key in ("deleted", "bytes_freed")}
    freed = sum(len(data) for data in garbage.blobs.values())
    assert counts == {"deleted": len(garbage.blobs), "bytes_freed": freed}


def test_gc_blob_deletion_killed_before_it_acts_spares_a_blob_referenced_in_between(
    rig: Rig,
) -> None:
    live, garbage = _garbage(rig)
    layer = next(d for d, data in garbage.blobs.items() if len(data) == 2048)
    run = _request_gc(rig.oci)
    kept: list[Image] = []

    def reference_again() -> None:
        assert _status(rig.oci, live.repo, f"blobs/{layer}") == 200  # nothing deleted yet
        kept.append(_push(rig.oci, live.repo, "kept", [garbage.blobs[layer]]))

    crash = Crash(GC_COLLECT_BLOBS, when=BEFORE, workflow_id=run)
    _crash_and_recover(rig, crash, between=reference_again, expedite=True)
    assert _settled(rig, f"/api/v1/system/gc/{run}")["state"] == "completed"
    _assert_pullable(rig.oci, live, "live")
    _assert_pullable(rig.oci, kept[0], "kept")
    _assert_gone(rig.oci, garbage, set(garbage.blobs) - {layer})
    assert _stored(rig, live.repo) == set(live.blobs) | set(kept[0].blobs)
    _assert_usage_exact(rig.oci, [live, garbage, *kept])


def test_gc_manifest_deletion_redelivered_spares_a_manifest_tagged_in_between(rig: Rig) -> None:
    repo = f"{unique_project()}/app"
    live = _push(rig.oci, repo, "live")
    untagged = [_push(rig.oci, repo, ""), _push(rig.oci, repo, "")]
    run = _request_gc(rig.oci, delete_untagged=True)

    def tag_again() -> None:
        assert _status(rig.oci, repo, f"manifests/{untagged[0].digest}") == 404
        assert rig.oci.put_manifest(repo, "again", untagged[0].payload).status_code == 201

    crash = Crash(GC_COLLECT_MANIFESTS, workflow_id=run)
    _crash_and_recover(rig, crash, between=tag_again, expedite=True)
    assert _settled(rig, f"/api/v1/system/gc/{run}")["state"] == "completed"
    _assert_pullable(rig.oci, live, "live")
    _assert_pullable(rig.oci, untagged[0], "again")
    _assert_gone(rig.oci, untagged[1], set(untagged[1].blobs))
    assert _stored(rig, repo) == set(live.blobs) | set(untagged[0].blobs)
    deleted = _events(rig, "manifest.deleted", digest=untagged[1].digest)
    assert len(deleted) == 1, deleted  # one deletion, one event
    _assert_usage_exact(rig.oci, [live, *untagged])


def test_orphan_sweep_redelivered_spares_an_object_pushed_again_in_between(rig: Rig) -> None:
    repo = f"{unique_project()}/app"
    live = _push(rig.oci, repo, "live")
    repository = rig.registry.repositories.find(RepositoryName.parse(repo))
    orphans = [secrets.token_bytes(1024), secrets.token_bytes(1024)]
    for data in orphans:
        rig.registry.store.put_blob(repository.storage_id, Digest.of(data), data)
    run = _request_gc(rig.oci)
    pushed: list[Image] = []

    def push_again() -> None:
        assert _stored(rig, repo) == set(live.blobs)  # both orphans swept
        pushed.append(_push(rig.oci, repo, "o1", [orphans[0]]))

    _crash_and_recover(
        rig, Crash(GC_SWEEP_ORPHANS, workflow_id=run), between=push_again, expedite=True
    )
    assert _settled(rig, f"/api/v1/system/gc/{run}")["state"] == "completed"
    _assert_pullable(rig.oci, pushed[0], "o1")
    _assert_pullable(rig.oci, live, "live")
    assert _stored(rig, repo) == set(live.blobs) | set(pushed[0].blobs)
    assert digest_of(orphans[1]) not in _stored(rig, repo)
    _assert_usage_exact(rig.oci, [live, *pushed])


def test_gc_run_record_redelivered_keeps_the_report_of_the_run(rig: Rig) -> None:
    live, garbage = _garbage(rig)
    run = _request_gc(rig.oci)
    url = f"/api/v1/system/gc/{run}"
    recorded: list[dict[str, Any]] = []

    def read_report() -> None:
        recorded.append(_admin(rig.oci, "GET", url).json())

    crash = Crash(GC_RECORD_RUN, workflow_id=run, skip=1)  # the final ("completed") record
    _crash_and_recover(rig, crash, between=read_report, expedite=True)
    result = _run(lambda: _result(rig.settings, run))
    final = _admin(rig.oci, "GET", url).json()
    assert recorded[0]["state"] == "completed"
    assert final["report"] == recorded[0]["report"]
    assert final["report"]["deleted"] == result["deleted"] == len(garbage.blobs)
    assert _run(lambda: _runs_of(rig.settings, run)) == ["COMPLETED"]
    _assert_pullable(rig.oci, live, "live")
    _assert_gone(rig.oci, garbage, set(garbage.blobs))
    _assert_usage_exact(rig.oci, [live, garbage])


def _retention_project(rig: Rig) -> tuple[str, Image, list[Image]]:
    repo = f"{unique_project()}/app"
    project = _project(repo)
    keep = _push(rig.oci, repo, "keep-1")
    drops = [_push(rig.oci, repo, "drop-1"), _push(rig.oci, repo, "drop-2")]
    rules = {"rules": [{"template": "always", "tag": {"pattern": "keep-*"}}]}
    put = _admin(rig.oci, "PUT", f"/api/v1/projects/{project}/retention", json=rules)
    assert put.is_success, put.text
    return project, keep, drops


def _request_retention(oci: OCIClient, project: str, *, dry_run: bool) -> str:
    url = f"/api/v1/projects/{project}/retention/runs"
    response = _admin(oci, "POST", url, json={"dry_run": dry_run})
    assert response.status_code == 202, response.text
    return f"{url}/{response.json()['id']}"


def _deletions(report: dict[str, Any]) -> set[str]:
    return {item["digest"] for item in report["items"] if item["action"] == "delete"}


def test_retention_redelivered_deletes_once_and_reports_what_it_deleted(rig: Rig) -> None:
    project, keep, drops = _retention_project(rig)
    faulty = rig.start_faulty(crash := Crash(RUN_RETENTION, skip=1))  # the dry run goes through
    dry = _wait_finished(rig.oci, _request_retention(rig.oci, project, dry_run=True))
    assert _deletions(dry["report"]) == {image.digest for image in drops}
    _assert_pullable(rig.oci, drops[0], "drop-1")
    run = _request_retention(rig.oci, project, dry_run=False)
    rig.wait_stalled(faulty, crash)
    for image in drops:
        assert _status(rig.oci, image.repo, f"manifests/{image.digest}") == 404  # done once
    rig.kill(faulty)
    rig.start_plain()
    _run(lambda: _fail_lost_attempt(rig.settings, crash.facts))
    final = _settled(rig, run)
    assert final["state"] == "completed"
    _assert_pullable(rig.oci, keep, "keep-1")
    for image in drops:
        assert _status(rig.oci, image.repo, "manifests/" + image.digest) == 404
        assert len(_events(rig, "manifest.deleted", digest=image.digest)) == 1
    _assert_usage_exact(rig.oci, [keep, *drops])
    assert _deletions(final["report"]) == _deletions(dry["report"])


def test_quota_reconcile_redelivered_reports_exact_usage_and_warns_once(rig: Rig) -> None:
    repo = f"{unique_project()}/app"
    image = _push(rig.oci, repo, "v1", [secrets.token_bytes(3000)])
    used = _usage(rig.oci, _project(repo))
    limits = {"bytes": used + 100}
    put = _admin(rig.oci, "PUT", f"/api/v1/projects/{_project(repo)}/quota", json=limits)
    assert put.is_success, put.text
    project_id = rig.registry.repositories.find(RepositoryName.parse(repo)).project_id
    warnings_before = len(_events(rig, QUOTA_WARNING, project_id=project_id))
    workflow_id = f"reconcile-{uuid.uuid4().hex}"
    rig.start_faulty(crash := Crash(RECONCILE_QUOTAS, workflow_id=workflow_id))
    _run(lambda: _start(rig.settings, "QuotaReconcileWorkflow", ReconcileInput(), workflow_id))
    faulty = rig.workers[-1]
    rig.wait_stalled(faulty, crash)
    assert len(_events(rig, QUOTA_WARNING, project_id=project_id)) == warnings_before + 1
    rig.kill(faulty)
    rig.start_plain()
    _run(lambda: _fail_lost_attempt(rig.settings, crash.facts))
    entries = _run(lambda: _result(rig.settings, workflow_id))
    (entry,) = [e for e in entries if e["project"] == _project(repo)]
    assert (entry["used_bytes"], entry["warning"], entry["drift"]) == (used, True, [])
    _assert_usage_exact(rig.oci, [image])
    warnings = _events(rig, QUOTA_WARNING, project_id=project_id)
    assert len(warnings) == warnings_before + 1, "one reconcile run, one quota warning"


def test_upload_reaper_redelivered_spares_a_session_started_in_between(rig: Rig) -> None:
    repo = f"{unique_project()}/app"
    live = _push(rig.oci, repo, "live")
    short = rig.settings.model_copy(
        update={"limits": rig.settings.limits.model_copy(update={"upload_ttl_seconds": 1})}
    )
    with TestClient(create_app(short)) as expiring:
        oci = OCIClient(expiring, rig.oci.password)
        expired = oci.request("POST", f"/v2/{repo}/blobs/uploads/", repo).headers["location"]
        assert oci.request("PATCH", expired, repo, content=b"x" * 100).status_code == 202
    _wait_expired(rig, 1)
    workflow_id = f"reap-{uuid.uuid4().hex}"
    fresh: list[str] = []
    data = secrets.token_bytes(512)

    def start_another() -> None:
        assert rig.oci.request("GET", expired, repo).status_code == 404  # reaped once
        fresh.append(
            rig.oci.request("POST", f"/v2/{repo}/blobs/uploads/", repo).headers["location"]
        )
        assert rig.oci.request("PATCH", fresh[0], repo, content=data).status_code == 202

    crash = Crash(REAP_EXPIRED_UPLOADS, workflow_id=workflow_id)
    faulty = rig.start_faulty(crash)
    _run(lambda: _start(rig.settings, "ReapUploadsWorkflow", ReapUploadsInput(3600), workflow_id))
    rig.wait_stalled(faulty, crash)
    rig.kill(faulty)
    start_another()
    rig.start_plain()
    _run(lambda: _fail_lost_attempt(rig.settings, crash.facts))
    _run(lambda: _result(rig.settings, workflow_id))
    assert rig.oci.request("GET", expired, repo).status_code == 404
    sep = "&" if "?" in fresh[0] else "?"
    done = rig.oci.request("PUT", f"{fresh[0]}{sep}digest={digest_of(data)}", repo)
    assert done.status_code == 201, done.text
    assert rig.oci.request("GET", f"/v2/{repo}/blobs/{digest_of(data)}", repo).content == data
    _assert_pullable(rig.oci, live, "live")


def _wait_expired(rig: Rig, count: int) -> None:
    """Wait (bounded) until ``count`` upload sessions are past their expiry."""
    deadline = time.monotonic() + BOUND
    for _ in range(POLLS):
        with rig.registry.metadata.read() as session:
            if len(session.uploads.expired(datetime.now(UTC), 100)) >= count:
                return
        assert time.monotonic() < deadline, "upload sessions did not expire"
        time.sleep(0.2)


def test_outbox_redelivery_after_a_crash_starts_no_second_event_run(rig: Rig) -> None:
    repo = f"{unique_project()}/app"
    faulty = rig.start_faulty(crash := Crash(OUTBOX_MARK))
    _push(rig.oci, repo, "v1")
    rig.wait_stalled(faulty, crash)
    rig.kill(faulty)
    workflow_id, started_at = _batch_row(rig, crash.facts["batch_id"])
    assert started_at is None  # started, not marked
    rig.start_plain()
    deadline = time.monotonic() + BOUND
    for _ in range(POLLS):
        if _batch_row(rig, crash.facts["batch_id"])[1] is not None:
            break
        assert time.monotonic() < deadline, "the batch was not started again"
        time.sleep(0.2)
    # NOTE: the killed worker may have been running the batch's activity too
    _run(partial(_fail_attempts_of, rig.settings, [workflow_id], crash.facts["pid"]))
    assert _run(partial(_runs_of, rig.settings, workflow_id)) == ["COMPLETED"], workflow_id


def _batch_row(rig: Rig, batch_id: int) -> tuple[str, Any]:
    """(workflow id, started at) of a stored event batch."""
    query = select(BATCH.c.workflow_id, BATCH.c.started_at).where(BATCH.c.id == batch_id)
    with rig.registry.metadata.read() as session:
        workflow_id, started_at = session._c.execute(query).one()
    return workflow_id, started_at


def _kids(rig: Rig) -> list[str]:
    store = SqlSigningKeyStore(rig.registry.metadata)  # the API's own database
    return [key.kid for key in store.stored_keys()]


@pytest.mark.parametrize("activity", [ROTATE_SIGNING_KEY, RETIRE_SIGNING_KEYS])
def test_key_rotation_redelivered_leaves_exactly_the_new_key(rig: Rig, activity: str) -> None:
    scheduled = datetime.now(UTC).replace(microsecond=0)
    kid = rotation_kid(scheduled)
    assert kid not in _kids(rig)
    workflow_id = f"rotate-{uuid.uuid4().hex}"
    arg = KeyRotationInput(grace_seconds=0, scheduled_at=scheduled.isoformat())
    crash = Crash(activity, workflow_id=workflow_id)
    faulty = rig.start_faulty(crash)
    _run(lambda: _start(rig.settings, "KeyRotationWorkflow", arg, workflow_id))
    rig.wait_stalled(faulty, crash)
    stalled = _kids(rig)
    assert stalled.count(kid) == 1
    rig.kill(faulty)
    rig.start_plain()
    _run(lambda: _fail_lost_attempt(rig.settings, crash.facts))
    result = _run(lambda: _result(rig.settings, workflow_id))
    assert result["kid"] == kid
    assert _kids(rig) == [kid]  # one new key; every older one retired, once


def test_trust_verification_redelivered_after_a_kill_stores_one_set_of_results(rig: Rig) -> None:
    repo = f"{unique_project()}/app"
    image = _push(rig.oci, repo, "v1")
    key = new_key()
    document = {"keys": [{"name": "ci", "public_key": public_pem(key)}]}
    saved = _admin(rig.oci, "PUT", f"/api/v1/projects/{_project(repo)}/trust/policy", json=document)
    assert saved.status_code == 200, saved.text
    signature = push_signature(rig.oci, repo, image.digest, key)
    tagged = [e for e in _events(rig, "tag.created", repository=repo) if e[1] == signature]
    batch = EventBatch(
        "trust",
        VERIFY_TRUST,
        0,
        [EventValue(tagged[0][0], "tag.created", None, repo, signature,
                    "sha256-" + image.digest.partition(":")[2] + ".sig", None, "")],
    )  # fmt: skip
    workflow_id = f"trust-crash-{uuid.uuid4().hex}"
    crash = Crash(VERIFY_TRUST, workflow_id=workflow_id)
    _run(lambda: _start(rig.settings, BATCH_WORKFLOW, batch, workflow_id))
    _crash_and_recover(rig, crash, expedite=True)

    assert _run(lambda: _result(rig.settings, workflow_id)) == 1
    stored = rig.registry.extras["trust_store"].results(repo, image.digest)
    assert [(r.finding.signer, r.finding.verified) for r in stored] == [("ci", True)]


def test_an_event_batch_on_a_killed_worker_is_retried_after_its_heartbeat_timeout(
    rig: Rig,
) -> None:
    """No shortcut here: Temporal itself notices the dead worker by the missing heartbeats,
    well before the batch activity's 5-minute start-to-close timeout (the wait's bound is
    shorter than that)."""
    repo = f"{unique_project()}/app"
    image = _push(rig.oci, repo, "v1")
    key = new_key()
    document = {"keys": [{"name": "ci", "public_key": public_pem(key)}]}
    saved = _admin(rig.oci, "PUT", f"/api/v1/projects/{_project(repo)}/trust/policy", json=document)
    assert saved.status_code == 200, saved.text
    signature = push_signature(rig.oci, repo, image.digest, key)
    tagged = [e for e in _events(rig, "tag.created", repository=repo) if e[1] == signature]
    batch = EventBatch(
        "trust",
        VERIFY_TRUST,
        0,
        [EventValue(tagged[0][0], "tag.created", None, repo, signature,
                    "sha256-" + image.digest.partition(":")[2] + ".sig", None, "")],
        heartbeat_seconds=HEARTBEAT_SECONDS,
    )  # fmt: skip
    workflow_id = f"trust-heartbeat-{uuid.uuid4().hex}"
    crash = Crash(VERIFY_TRUST, when=DURING, workflow_id=workflow_id)
    _run(lambda: _start(rig.settings, BATCH_WORKFLOW, batch, workflow_id))
    faulty = rig.start_faulty(crash)
    rig.wait_stalled(faulty, crash)

    # While the worker lives, its heartbeats keep the first attempt going past the timeout.
    time.sleep(3 * HEARTBEAT_SECONDS)
    assert _run(lambda: _started_attempts(rig.settings, workflow_id)) == [1]

    rig.kill(faulty)
    rig.start_plain()
    assert _run(lambda: _result(rig.settings, workflow_id)) == 1
    stored = rig.registry.extras["trust_store"].results(repo, image.digest)
    assert [(r.finding.signer, r.finding.verified) for r in stored] == [("ci", True)]


async def _started_attempts(settings: Settings, workflow_id: str) -> list[int]:
    """The attempt numbers of the workflow's activities that a worker is running now."""
    client = await _client(settings)
    description = await client.get_workflow_handle(workflow_id).describe()
    started = PendingActivityState.PENDING_ACTIVITY_STATE_STARTED
    return [
        pending.attempt
        for pending in description.raw_description.pending_activities
        if pending.state == started
    ]
