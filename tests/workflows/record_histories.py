"""Record one history per workflow for the replay test.

Run ``python -m tests.workflows.record_histories [NAME...]`` after an intended change of
a workflow's commands (and keep the old file under a new name if old runs must replay);
names limit the recording to those histories.
It starts a private Temporal dev server, runs each workflow against stand-in activities
registered under the real activity names, and writes ``histories/<workflow>.json``.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from temporalio import activity
from temporalio.client import Client, WorkflowFailureError, WorkflowHandle
from temporalio.exceptions import ApplicationError, CancelledError, is_cancelled_exception
from temporalio.service import RPCError

from activities.backup_contracts import (
    BACKUP_BEGIN,
    BACKUP_COPY_BLOBS,
    BACKUP_FINISH,
    RESTORE_BLOBS,
    RESTORE_PLAN,
    RESTORE_ROWS,
    BackupInput,
    BackupResult,
    BackupStepResult,
    RestoreInput,
    RestorePlan,
    RestoreResult,
    RestoreStepInput,
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
    EventInput,
    GcInput,
    GcRecordInput,
    GcRecordResult,
    GcStepResult,
    KeyRotationInput,
    KeyRotationResult,
    ReapUploadsInput,
    ReapUploadsResult,
    ReconcileInput,
    RetentionInput,
    RetireKeysInput,
    RotateKeyInput,
)
from cli.worker import build_worker
from core import preheat
from core.event_batches import EventBatch, EventValue
from core.promotion import (
    COPY_IMAGE,
    EVALUATE_GATES,
    RECORD_OUTCOME,
    CopyInput,
    CopyResult,
    Evaluation,
    GateResult,
    Gates,
    OutcomeInput,
    PromotionRequest,
)
from core.replication import (
    COPY_ARTIFACT,
    FAIL_TASK,
    FINISH_EXECUTION,
    NEXT_TASKS,
    PLAN_EXECUTION,
    STOP_EXECUTION,
    ArtifactInput,
    ExecutionRequest,
    FailInput,
    FinishInput,
    Plan,
    RetryShape,
    TaskPage,
    TaskResult,
    TaskStatus,
    TriggerKind,
)
from core.scan_jobs import (
    ADAPTER_FAIL,
    ADAPTER_SCAN,
    NOT_DELEGATED,
    SCAN_ANALYZE,
    SCAN_CANDIDATES,
    SCAN_DELEGATE,
    SCAN_FAIL,
    SCAN_MATCH,
    SCAN_REMATCH,
    SCAN_SBOM,
    VULNDB_IMPORT,
    AdapterFailure,
    CandidatesInput,
    CandidatesPage,
    ImportInput,
    ImportOutcome,
    RematchInput,
    RematchPage,
    ScanFailure,
    ScanManyInput,
)
from core.scan_records import ScanTarget
from core.subscribers import LOG_EVENTS
from core.task_pages import PageRequest, TaskIds
from tests.services.temporal import start_temporal
from workflows.backup import BackupWorkflow, RestoreBackupWorkflow
from workflows.events import ArtifactEventWorkflow, EventBatchWorkflow
from workflows.gc import GarbageCollectionWorkflow
from workflows.keys import KeyRotationWorkflow
from workflows.preheat import PreheatExecutionWorkflow
from workflows.promotions import PromotionWorkflow
from workflows.quota import QuotaReconcileWorkflow
from workflows.replication import ReplicationArtifactWorkflow, ReplicationExecutionWorkflow
from workflows.retention import RetentionWorkflow
from workflows.scanner_api import ScannerApiScanWorkflow
from workflows.scans import ScanArtifactWorkflow, ScanManyWorkflow, ScanRematchWorkflow
from workflows.uploads import ReapUploadsWorkflow
from workflows.vulndb import VulnDbImportWorkflow

HISTORIES = Path(__file__).parent / "histories"


def _step(name: str) -> Any:
    @activity.defn(name=name)
    def step(params: GcInput) -> GcStepResult:
        del params
        return GcStepResult(2, 1, 1, 10)

    return step


@activity.defn(name=GC_RECORD_RUN)
def record_run(params: GcRecordInput) -> GcRecordResult:
    return GcRecordResult(params.state)


@activity.defn(name=HANDLE_EVENT)
def handle_event(params: EventInput) -> str:
    return params.kind


@activity.defn(name=LOG_EVENTS)
def deliver_events(batch: EventBatch) -> int:
    return len(batch.events)


@activity.defn(name=RUN_RETENTION)
def run_retention(params: RetentionInput) -> dict[str, Any]:
    del params
    return {"retained": 1, "deleted": 1}


@activity.defn(name=RECONCILE_QUOTAS)
def reconcile(params: ReconcileInput) -> list[dict[str, Any]]:
    del params
    return [{"project": "p", "used_bytes": 1, "drift": []}]


@activity.defn(name=REAP_EXPIRED_UPLOADS)
def reap(params: ReapUploadsInput) -> ReapUploadsResult:
    del params
    return ReapUploadsResult(1, 0)


@activity.defn(name=ROTATE_SIGNING_KEY)
def rotate_key(params: RotateKeyInput) -> KeyRotationResult:
    return KeyRotationResult(f"rot-{params.scheduled_at}", True, [])


@activity.defn(name=RETIRE_SIGNING_KEYS)
def retire_keys(params: RetireKeysInput) -> list[str]:
    del params
    return ["old"]


def _backup_step(name: str) -> Any:
    @activity.defn(name=name)
    def step(params: BackupInput) -> BackupStepResult:
        del params
        return BackupStepResult(2, 1, 1, 10)

    return step


@activity.defn(name=BACKUP_FINISH)
def backup_finish(params: BackupInput) -> BackupResult:
    return BackupResult(params.backup_id, 2, 0, 10, "/backups")


@activity.defn(name=RESTORE_PLAN)
def restore_plan(params: RestoreInput) -> RestorePlan:
    del params
    return RestorePlan({"1": "t1"})


@activity.defn(name=RESTORE_BLOBS)
def restore_blobs(params: RestoreStepInput) -> BackupStepResult:
    del params
    return BackupStepResult(2, 2, 0, 10)


@activity.defn(name=RESTORE_ROWS)
def restore_rows(params: RestoreStepInput) -> RestoreResult:
    return RestoreResult(params.backup_id, params.project, 0, {"project": 1})


_RETRY = RetryShape(0.1, 1.0, 3, 60.0, 10.0)
#: The replication run that is stopped while it copies (its history's name).
STOPPED = "replication_stopped"
#: The replication run whose plan found everything in place (and closed the execution).
IN_PLACE = "replication_in_place"
#: The replication execution of one task a page and a run: its first run continues as
#: new (``<name>.json``), its second copies the other task (``<name>_last.json``).
CONTINUED = "replication_continued"


@activity.defn(name=PLAN_EXECUTION)
def plan_execution(request: ExecutionRequest) -> Plan:
    if request.execution_id == IN_PLACE:
        return Plan(IN_PLACE, "p", 2, [], [], _RETRY, "succeeded")
    if request.execution_id == CONTINUED:
        return Plan(CONTINUED, "p", 2, [1], [("p", "p/a")], _RETRY, None, True, 1, 1)
    names = [("p", "p/a"), ("p", "p/b")]
    return Plan(request.execution_id, "p", 2, [1, 2], names, _RETRY, None, False, 250, 1000)


@activity.defn(name=NEXT_TASKS)
def next_tasks(page: PageRequest) -> TaskPage:
    if page.after < 2:  # the second of the two tasks comes next
        return TaskPage([2], [("p", "p/b")], more=False)
    return TaskPage([], [], more=False)


@activity.defn(name=COPY_ARTIFACT)
def copy_artifact(params: ArtifactInput) -> TaskResult:
    if params.execution_id == STOPPED:
        # NOTE: copies until the execution is stopped (its cancellation comes on a heartbeat)
        for _ in range(600):
            activity.heartbeat()
            activity.wait_for_cancelled_sync(0.1)
            if activity.is_cancelled():
                raise CancelledError
    return TaskResult(TaskStatus.COPIED, f"sha256:{params.task_id:064x}", 10, 1, 0)


@activity.defn(name=FAIL_TASK)
def fail_task(params: FailInput) -> None:
    del params


@activity.defn(name=FINISH_EXECUTION)
def finish_execution(params: FinishInput) -> str:
    del params
    return "succeeded"


@activity.defn(name=STOP_EXECUTION)
def stop_execution(params: FinishInput) -> str:
    del params
    return "stopped"


@activity.defn(name=SCAN_ANALYZE)
def scan_analyze(params: ScanTarget) -> bool:
    del params
    return True


@activity.defn(name=SCAN_MATCH)
def scan_match(params: ScanTarget) -> str:
    del params
    return "succeeded"


@activity.defn(name=SCAN_SBOM)
def scan_sbom(params: ScanTarget) -> int:
    del params
    return 2


@activity.defn(name=SCAN_FAIL)
def scan_fail(params: ScanFailure) -> None:
    del params


_TARGET = ScanTarget(1, "p", "p/a", "sha256:" + "a" * 64)
#: A target of a project whose scans the stand-in external scanner takes.
_DELEGATED = ScanTarget(2, "ext", "ext/a", "sha256:" + "c" * 64)


@activity.defn(name=SCAN_DELEGATE)
def scan_delegate(params: ScanTarget) -> str:
    return "succeeded" if params.project == _DELEGATED.project else NOT_DELEGATED


@activity.defn(name=ADAPTER_SCAN)
def scanner_api_scan(params: str) -> str:
    del params
    return "succeeded"


@activity.defn(name=ADAPTER_FAIL)
def scanner_api_fail(params: AdapterFailure) -> None:
    del params


@activity.defn(name=SCAN_CANDIDATES)
def scan_candidates(params: CandidatesInput) -> CandidatesPage:
    other = ScanTarget(1, "p", "p/a", "sha256:" + "b" * 64)
    return CandidatesPage([_TARGET, other], params.after + 2, more=False)


@activity.defn(name=SCAN_REMATCH)
def scan_rematch(params: RematchInput) -> RematchPage:
    return RematchPage(params.after + 2, 2, more=False)


@activity.defn(name=VULNDB_IMPORT)
def vulndb_import(params: ImportInput) -> ImportOutcome:
    del params
    return ImportOutcome(3)


@activity.defn(name=EVALUATE_GATES)
def promotion_evaluate(params: PromotionRequest) -> Evaluation:
    del params
    return Evaluation([GateResult("scan", passed=True, reason="no finding at or above high")])


@activity.defn(name=COPY_IMAGE)
def promotion_copy(params: CopyInput) -> CopyResult:
    return CopyResult(params.request.source_digest, 1, 2, 0)


@activity.defn(name=RECORD_OUTCOME)
def promotion_record(params: OutcomeInput) -> None:
    del params


_POLL = preheat.PollShape(0.01, 0.01, 60.0, 1.0)


#: The preheat execution of one task a page and a run (``<name>.json`` its first run,
#: continued as new; ``<name>_last.json`` its second).
PREHEAT_CONTINUED = "preheat_continued"


@activity.defn(name=preheat.PLAN)
def preheat_plan(request: preheat.ExecutionRequest) -> preheat.Plan:
    if request.execution_id == PREHEAT_CONTINUED:
        return preheat.Plan(PREHEAT_CONTINUED, [1], 2, _POLL, True, 1, 1)
    return preheat.Plan(request.execution_id or "preheat", [1, 2], 2, _POLL, False, 250, 500)


@activity.defn(name=preheat.NEXT_TASKS)
def preheat_next_tasks(page: PageRequest) -> TaskIds:
    return TaskIds([2], more=False) if page.after < 2 else TaskIds([], more=False)


@activity.defn(name=preheat.CREATE_JOB)
def preheat_create_job(params: preheat.TaskInput) -> preheat.JobRef:
    if params.task_id == 2:
        raise ApplicationError("refused", type=preheat.FINAL_ERROR, non_retryable=True)
    return preheat.JobRef(str(params.task_id))


@activity.defn(name=preheat.POLL_JOB)
def preheat_poll_job(params: preheat.PollInput) -> preheat.JobStatus:
    return preheat.JobStatus(
        preheat.JobState.SUCCEEDED, [preheat.Peer(ok=True, hostname="seed", cluster_id=1)]
    )


@activity.defn(name=preheat.RECORD_TASK)
def preheat_record_task(params: preheat.RecordInput) -> None:
    del params


@activity.defn(name=preheat.FINISH)
def preheat_finish(params: preheat.FinishInput) -> str:
    del params
    return "partial"


_PROMOTION = PromotionRequest(
    "promotion-record", "p/a", f"sha256:{1:064x}", "q/a", "prod", Gates(max_severity="high"), "ci"
)
_EVENT = EventValue(1, "manifest.pushed", 1, "p/a", None, "v1", None, "2026-12-03T04:00:00+00:00")
#: What to record: ``histories/<name>.json`` of each run (pass names to record only those;
#: ``event`` is the former per-event workflow, kept to prove old runs still replay).
RUNS: list[tuple[str, Any, Any]] = [
    # NOTE: gc.json is the history of the GC workflow before its summary patch (kept).
    ("gc_summary", GarbageCollectionWorkflow.run, GcInput("gc-record", delete_untagged=True)),
    ("event", ArtifactEventWorkflow.run, EventInput(1, "manifest.pushed", 1, "p/a", None, None)),
    ("event_batch", EventBatchWorkflow.run, EventBatch("log", LOG_EVENTS, 1, [_EVENT, _EVENT])),
    ("retention", RetentionWorkflow.run, RetentionInput("retention-record", "p")),
    ("reap_uploads", ReapUploadsWorkflow.run, ReapUploadsInput(3600)),
    ("quota", QuotaReconcileWorkflow.run, ReconcileInput("quota-record")),
    ("keys", KeyRotationWorkflow.run, KeyRotationInput(grace_seconds=1)),
    ("backup", BackupWorkflow.run, BackupInput("20261203-000000-record")),
    ("restore", RestoreBackupWorkflow.run, RestoreInput("20261203-000000-record", "p")),
    # NOTE: replication*_remote_plan.json are the histories before the plan became a
    # local activity, replication*_unpaged.json those before its tasks came in pages
    # (both kept).
    (
        "replication",
        ReplicationExecutionWorkflow.run,
        ExecutionRequest("replication-record", 1, TriggerKind.MANUAL),
    ),
    (
        STOPPED,
        ReplicationExecutionWorkflow.run,
        ExecutionRequest(STOPPED, 1, TriggerKind.MANUAL),
    ),
    (
        IN_PLACE,
        ReplicationExecutionWorkflow.run,
        ExecutionRequest(IN_PLACE, 1, TriggerKind.MANUAL),
    ),
    (
        CONTINUED,
        ReplicationExecutionWorkflow.run,
        ExecutionRequest(CONTINUED, 1, TriggerKind.MANUAL),
    ),
    (
        "replication_artifact",
        ReplicationArtifactWorkflow.run,
        ArtifactInput("replication-record", 1, 1, _RETRY),
    ),
    # NOTE: scan.json is the history before the delegation patch (kept).
    ("scan_local", ScanArtifactWorkflow.run, _TARGET),
    ("scan_delegated", ScanArtifactWorkflow.run, _DELEGATED),
    ("scanner_api", ScannerApiScanWorkflow.run, "0123456789abcdef"),
    ("scan_many", ScanManyWorkflow.run, ScanManyInput(1, concurrency=1)),
    ("scan_rematch", ScanRematchWorkflow.run, RematchInput()),
    ("vulndb_import", VulnDbImportWorkflow.run, ImportInput()),
    ("promotion", PromotionWorkflow.run, _PROMOTION),
    (
        "preheat",
        PreheatExecutionWorkflow.run,
        preheat.ExecutionRequest("preheat-record", 1, preheat.TriggerKind.MANUAL),
    ),
    (
        PREHEAT_CONTINUED,
        PreheatExecutionWorkflow.run,
        preheat.ExecutionRequest(PREHEAT_CONTINUED, 1, preheat.TriggerKind.MANUAL),
    ),
]


async def record(address: str, names: set[str]) -> None:
    client = await Client.connect(address)
    task_queue = f"record-{uuid.uuid4().hex}"
    activities = [
        record_run,
        handle_event,
        deliver_events,
        run_retention,
        reap,
        reconcile,
        rotate_key,
        retire_keys,
        plan_execution,
        next_tasks,
        copy_artifact,
        fail_task,
        finish_execution,
        stop_execution,
        scan_analyze,
        scan_match,
        scan_sbom,
        scan_fail,
        scan_candidates,
        scan_rematch,
        scan_delegate,
        scanner_api_scan,
        scanner_api_fail,
        vulndb_import,
        promotion_evaluate,
        promotion_copy,
        promotion_record,
        preheat_plan,
        preheat_next_tasks,
        preheat_create_job,
        preheat_poll_job,
        preheat_record_task,
        preheat_finish,
        *(_step(n) for n in (GC_COLLECT_MANIFESTS, GC_COLLECT_BLOBS, GC_SWEEP_ORPHANS)),
        *(_backup_step(n) for n in (BACKUP_BEGIN, BACKUP_COPY_BLOBS)),
        backup_finish,
        restore_plan,
        restore_blobs,
        restore_rows,
    ]
    with ThreadPoolExecutor(4) as executor:
        async with build_worker(
            client, task_queue=task_queue, activities=activities, executor=executor
        ):
            for name, run, arg in RUNS:
                if names and name not in names:
                    continue
                # NOTE: the id is the name, as the replay test replays it (child ids follow it)
                handle = await client.start_workflow(run, arg, id=name, task_queue=task_queue)
                if name == STOPPED:
                    await _stop(client, handle)
                else:
                    await asyncio.wait_for(handle.result(), 60)
                # NOTE: the first run's history (a run continued as new has others)
                first = client.get_workflow_handle(name, run_id=handle.first_execution_run_id)
                history = await first.fetch_history()
                (HISTORIES / f"{name}.json").write_text(history.to_json(), encoding="utf-8")
                if name in (CONTINUED, PREHEAT_CONTINUED):
                    last = await client.get_workflow_handle(name).fetch_history()
                    (HISTORIES / f"{name}_last.json").write_text(last.to_json(), encoding="utf-8")


async def _stop(client: Client, handle: WorkflowHandle[Any, Any]) -> None:
    """Cancel the run once its first copy runs; wait until it ended cancelled."""
    child = client.get_workflow_handle(f"{STOPPED}-task-1")
    for _ in range(300):
        try:
            if (await child.describe()).raw_description.pending_activities:
                break
        except RPCError:
            pass
        await asyncio.sleep(0.1)
    await handle.cancel()
    try:
        await asyncio.wait_for(handle.result(), 60)
    except WorkflowFailureError as exc:
        if not is_cancelled_exception(exc.cause):
            raise
    else:
        raise AssertionError("the stopped run was not cancelled")


def main() -> None:
    """Record every history, or those named on the command line."""
    names = set(sys.argv[1:])
    with tempfile.TemporaryDirectory() as workdir:
        server = start_temporal(Path(workdir))
        try:
            asyncio.run(record(server.address, names))
        finally:
            server.stop()


if __name__ == "__main__":
    main()
