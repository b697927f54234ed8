"""Replication policies and executions: the rules, the records and the store port.

A policy copies between this installation and one registry endpoint (``core.endpoints``),
Harbor's model: ``push`` copies local repositories to the endpoint, ``pull`` copies the
endpoint's repositories here. Filters choose what (repository and tag doublestar globs,
artifact type, with or without referrers); the destination name is the source name with
``flatten`` leading path components dropped and ``prefix`` put in front. Triggers:
``manual`` (an API call), ``scheduled`` (a Temporal schedule of the policy's cron
expression) and ``event`` (push policies: the replication subscriber starts a run for
each pushed, tagged or deleted artifact the filters select).

An execution is one run of a policy (one workflow, its id the execution's id) with one
task per artifact; a task is copied by digest (``core.replication_copy``) and its result
is recorded on its row. Two sites replicating both ways never loop: a task whose
destination already holds the tag at the same digest changes nothing at the destination,
so it writes no event there (and a deletion of something already gone does nothing).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Final, Protocol

from core import events
from core.errors import ConflictError, InvalidInputError, NotFoundError
from core.patterns import matches
from core.subscribers import Interest, Subscriber, all_or_nothing

if TYPE_CHECKING:
    from core.execution_reconcile import Ending

#: Activity name of the replication subscriber (``core.subscribers``).
DELIVER_EVENTS_REPLICATION: Final = "deliver_events_replication"
#: The events that trigger event-based push policies.
TRIGGER_EVENTS: Final = frozenset(
    {
        events.MANIFEST_PUSHED,
        events.TAG_CREATED,
        events.TAG_MOVED,
        events.TAG_DELETED,
        events.MANIFEST_DELETED,
    }
)
#: The replication subscriber of the event fan-out.
REPLICATION_SUBSCRIBER: Final = Subscriber(
    "replication", TRIGGER_EVENTS, DELIVER_EVENTS_REPLICATION
)
#: Workflow type names (``workflows.replication``).
EXECUTION_WORKFLOW: Final = "ReplicationExecutionWorkflow"
ARTIFACT_WORKFLOW: Final = "ReplicationArtifactWorkflow"
#: Activity names (``activities.replication``).
PLAN_EXECUTION: Final = "replication_plan"
COPY_ARTIFACT: Final = "replication_copy"
FAIL_TASK: Final = "replication_fail_task"
FINISH_EXECUTION: Final = "replication_finish"
STOP_EXECUTION: Final = "replication_stop"
NEXT_TASKS: Final = "replication_next_tasks"
#: Error type of a copy that no retry can fix (refused write, bad content, missing source).
FINAL_ERROR: Final = "ReplicationFinalError"

_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,62}$")
_CRON_FIELDS = 5
_MAX_PATTERN = 255


class Direction(StrEnum):
    PUSH = "push"  # local -> endpoint
    PULL = "pull"  # endpoint -> local


class TriggerKind(StrEnum):
    MANUAL = "manual"
    SCHEDULED = "scheduled"
    EVENT = "event"


class ArtifactKind(StrEnum):
    """What the artifact-type filter keeps."""

    ALL = "all"
    #: Container images (image manifests with an image config, and image indexes).
    IMAGE = "image"
    #: Everything else (OCI artifacts: Helm charts, SBOMs, ...).
    ARTIFACT = "artifact"


class ExecutionStatus(StrEnum):
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    #: Some tasks failed, others were copied.
    PARTIAL = "partial"
    #: A stop was asked for; the run settles (its copies stop at their next heartbeat).
    STOPPING = "stopping"
    #: Stopped by an operator: the tasks say which were done.
    STOPPED = "stopped"


#: Statuses of an execution that its workflow may still change.
ACTIVE_STATUSES: Final = frozenset({ExecutionStatus.RUNNING, ExecutionStatus.STOPPING})


class TaskStatus(StrEnum):
    PENDING = "pending"
    COPIED = "copied"
    #: The destination already held it (or it was not to be overridden).
    SKIPPED = "skipped"
    DELETED = "deleted"
    FAILED = "failed"
    #: Not run, or interrupted, because the execution was stopped.
    STOPPED = "stopped"


class TaskOperation(StrEnum):
    COPY = "copy"
    DELETE = "delete"


@dataclass(frozen=True, slots=True)
class ReplicationPolicy:
    """A stored policy.

    Attributes:
        repositories: Doublestar glob on source repository names (``**``: all).
        tags: Doublestar glob on tags (``**``: all); artifacts are chosen by tag.
        referrers: Copy each artifact's referrers (signatures, SBOMs) after it.
        flatten: Leading path components dropped from the source name (0: none).
        prefix: Path put in front of the (flattened) name at the destination.
        cron: Five-field cron expression of a ``scheduled`` policy.
        deletions: Replicate deletions (event-based push policies).
        override: Replace a destination tag that points elsewhere (else skip it).
        bandwidth_kbps: Cap of one artifact copy in KiB/s (0: none).
        concurrency: Artifacts copied at the same time in one execution.
    """

    id: int
    name: str
    description: str
    enabled: bool
    direction: Direction
    endpoint: str
    repositories: str
    tags: str
    artifact_kind: ArtifactKind
    referrers: bool
    flatten: int
    prefix: str
    trigger: TriggerKind
    cron: str | None
    deletions: bool
    override: bool
    bandwidth_kbps: int
    concurrency: int
    created_at: datetime
    updated_at: datetime

    @property
    def fires_on_events(self) -> bool:
        """Whether pushes and deletions start executions (enabled, event-triggered push)."""
        return (
            self.enabled and self.trigger is TriggerKind.EVENT and self.direction is Direction.PUSH
        )

    def selects(self, repository: str, tag: str | None) -> bool:
        """Whether the filters keep ``repository`` (and ``tag``, when there is one)."""
        if not matches(self.repositories, repository):
            return False
        return tag is None or matches(self.tags, tag)

    def destination(self, repository: str) -> str:
        """The destination repository of a source repository."""
        return map_name(repository, self.flatten, self.prefix)


@dataclass(frozen=True, slots=True)
class PolicyInput:
    """A policy as an administrator writes it."""

    name: str
    endpoint: str
    direction: Direction
    description: str = ""
    enabled: bool = True
    repositories: str = "**"
    tags: str = "**"
    artifact_kind: ArtifactKind = ArtifactKind.ALL
    referrers: bool = True
    flatten: int = 0
    prefix: str = ""
    trigger: TriggerKind = TriggerKind.MANUAL
    cron: str | None = None
    deletions: bool = False
    override: bool = True
    bandwidth_kbps: int = 0
    concurrency: int = 4


@dataclass(frozen=True, slots=True)
class Execution:
    """One run of a policy; ``id`` is also its workflow id."""

    id: str
    policy_id: int
    policy: str
    trigger: TriggerKind
    status: ExecutionStatus
    started_at: datetime
    finished_at: datetime | None
    total: int
    succeeded: int
    failed: int
    skipped: int
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class ReplicationTask:
    """One artifact of an execution and its result.

    Attributes:
        reference: The tag (or digest, for an untagged artifact or a deletion by digest).
        digest: The artifact's digest once known.
        bytes_sent: Blob bytes sent to the destination (all attempts).
        blobs_copied: Blobs sent; ``blobs_skipped``: present already or mounted.
    """

    id: int
    execution_id: str
    operation: TaskOperation
    source: str
    destination: str
    reference: str
    digest: str | None
    status: TaskStatus
    bytes_sent: int = 0
    blobs_copied: int = 0
    blobs_skipped: int = 0
    error: str | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class PlannedTask:
    """A task before it is stored (what the planner chose)."""

    operation: TaskOperation
    source: str
    destination: str
    reference: str
    digest: str | None = None
    #: Found in place while planning (same digest on both sides, no referrers to check):
    #: stored as ``skipped`` and never run.
    in_place: bool = False


@dataclass(frozen=True, slots=True)
class TaskResult:
    """What copying (or deleting) one artifact did."""

    status: TaskStatus
    digest: str | None = None
    bytes_sent: int = 0
    blobs_copied: int = 0
    blobs_skipped: int = 0
    error: str | None = None


@dataclass(frozen=True, slots=True)
class ExecutionRequest:
    """What an execution's workflow receives (by value).

    Attributes:
        tasks: For an event-triggered run: the tasks the events named (empty: the
            planner lists the source).
    """

    execution_id: str
    policy_id: int
    trigger: TriggerKind
    tasks: list[PlannedTask] = field(default_factory=list)
    #: The plan returns the first page of pending tasks (``Plan.more``: others follow)
    #: rather than all of them; runs recorded before paging leave it ``False``.
    paged: bool = False
    #: Set on a run continued as new: where the earlier runs of the execution stopped.
    continued: Continued | None = None


class ReplicationStore(Protocol):
    """Policies, executions and tasks in the metadata database (one transaction a call)."""

    def add_policy(self, policy: ReplicationPolicy) -> ReplicationPolicy | None:
        """Insert (``id`` assigned); ``None`` when the name is taken."""
        ...

    def policy(self, policy_id: int) -> ReplicationPolicy | None: ...
    def policy_named(self, name: str) -> ReplicationPolicy | None: ...
    def policies(self) -> list[ReplicationPolicy]: ...
    def save_policy(self, policy: ReplicationPolicy) -> bool: ...
    def delete_policy(self, policy_id: int) -> bool: ...
    def add_execution(self, execution: Execution) -> None:
        """Insert; an execution with that id already stored is kept as it is."""
        ...

    def execution(self, execution_id: str) -> Execution | None: ...
    def executions(self, policy_id: int | None) -> list[Execution]:
        """Newest first."""
        ...

    def finish_execution(
        self, execution_id: str, status: ExecutionStatus, reason: str | None, now: datetime
    ) -> Execution | None:
        """Set the final status and the task counts (idempotent).

        The close that finishes a running execution writes its ``replication.finished``
        outbox event (``core.replication_events``) in the same transaction; a repeated
        close writes none.
        """
        ...

    def finish_running(self, execution_id: str, status: ExecutionStatus, now: datetime) -> bool:
        """:meth:`finish_execution` if the execution is ``running``; whether it was.

        Checked and closed in one transaction, so a stop requested meanwhile is never
        overwritten (a ``stopping`` execution is left to its stop).
        """
        ...

    def add_tasks(self, execution_id: str, tasks: Sequence[PlannedTask]) -> list[ReplicationTask]:
        """Insert the tasks once: a repeated call returns the stored ones."""
        ...

    def request_stop(self, execution_id: str, reason: str) -> bool:
        """Mark a ``running`` execution ``stopping`` with ``reason``; whether it was running."""
        ...

    def stop_execution(
        self, execution_id: str, reason: str | None, now: datetime
    ) -> Execution | None:
        """Close an execution still active as ``stopped`` (its pending tasks too).

        In one transaction: pending tasks become ``stopped``, the counts are taken, the
        ``replication.finished`` event is written; ``reason`` (``None``: the reason the
        stop request left) is kept. An execution already closed is returned unchanged.
        """
        ...

    def close_abandoned(self, execution_id: str, ending: Ending, now: datetime) -> bool:
        """Close an execution still active whose workflow ended without closing it.

        In one transaction, and only while it is active (whether it was): a ``stopping``
        execution, or one whose workflow was cancelled, closes as :meth:`stop_execution`
        does (a stop's reason is kept); any other closes ``failed`` with the ending's
        reason, its pending tasks ``failed`` as not run.
        """
        ...

    def task(self, task_id: int) -> ReplicationTask | None: ...
    def tasks(self, execution_id: str) -> list[ReplicationTask]: ...
    def pending_tasks(self, execution_id: str, after: int, limit: int) -> list[ReplicationTask]:
        """``pending`` tasks of the execution with ids above ``after``, in id order."""
        ...

    def record_task(self, task_id: int, result: TaskResult, now: datetime) -> None: ...


class ExecutionStarter(Protocol):
    """Starts an execution's workflow (``api.workflow_starter`` or an activity's client)."""

    async def start(self, request: ExecutionRequest, policy: ReplicationPolicy) -> bool: ...


def map_name(repository: str, flatten: int, prefix: str) -> str:
    """Drop ``flatten`` leading components of ``repository`` and put ``prefix`` in front.

    The last component is always kept (flattening never empties a name).
    """
    parts = repository.split("/")
    kept = parts[min(flatten, len(parts) - 1) :] if flatten > 0 else parts
    name = "/".join(kept)
    cleaned = prefix.strip("/")
    return f"{cleaned}/{name}" if cleaned else name


def check_cron(cron: str | None) -> str:
    """A five-field cron expression, or refuse it (field ``cron``)."""
    text = (cron or "").strip()
    fields = text.split()
    allowed = re.compile(r"^[0-9*/,\-A-Za-z?]+$")
    if len(fields) != _CRON_FIELDS or not all(allowed.match(f) for f in fields):
        raise InvalidInputError(
            "a scheduled policy needs a five-field cron expression", field="cron"
        )
    return " ".join(fields)


def _check_shape(data: PolicyInput) -> None:
    if not _NAME.fullmatch(data.name):
        raise InvalidInputError(
            "name: 1-63 lower-case letters, digits, '.', '_' and '-'", field="name"
        )
    for value, name in ((data.repositories, "repositories"), (data.tags, "tags")):
        if not value or len(value) > _MAX_PATTERN:
            raise InvalidInputError(f"{name}: a glob of 1 to 255 characters", field=name)
    if data.flatten < 0:
        raise InvalidInputError("flatten cannot be negative", field="flatten")
    if data.prefix and not re.fullmatch(r"[a-z0-9]+(?:[._/-][a-z0-9]+)*", data.prefix.strip("/")):
        raise InvalidInputError("prefix must be a repository path", field="prefix")
    if not 1 <= data.concurrency <= 64:  # noqa: PLR2004 - documented bound
        raise InvalidInputError("concurrency: 1 to 64", field="concurrency")
    if data.bandwidth_kbps < 0:
        raise InvalidInputError("bandwidth_kbps cannot be negative", field="bandwidth_kbps")


def _check(data: PolicyInput) -> PolicyInput:
    _check_shape(data)
    cron = None
    if data.trigger is TriggerKind.SCHEDULED:
        cron = check_cron(data.cron)
    elif data.cron:
        raise InvalidInputError("cron is only for scheduled policies", field="cron")
    if data.trigger is TriggerKind.EVENT and data.direction is not Direction.PUSH:
        raise InvalidInputError(
            "event triggers need a push policy (this site's events)", field="trigger"
        )
    return replace(data, cron=cron, prefix=data.prefix.strip("/"))


class ScheduleSync(Protocol):
    """Keeps a scheduled policy's Temporal schedule in line with the policy."""

    async def sync(self, policy: ReplicationPolicy) -> None: ...
    async def remove(self, policy_id: int) -> None: ...
    async def follow(
        self, before: ReplicationPolicy | None, after: ReplicationPolicy | None
    ) -> None: ...


class ReplicationService:
    """Policies as administrators manage them, manual runs and the execution history.

    Consistency: an execution row is written before its workflow is started (a start
    that fails marks it failed), so every run the API answered with is in the history.
    """

    def __init__(
        self,
        store: ReplicationStore,
        endpoint_exists: Callable[[str], bool],
        clock: Callable[[], datetime],
    ) -> None:
        self._store = store
        self._endpoint_exists = endpoint_exists
        self._now = clock

    @property
    def store(self) -> ReplicationStore:
        return self._store

    def _endpoint(self, name: str) -> str:
        if not self._endpoint_exists(name):
            raise InvalidInputError(f"no registry endpoint {name!r}", field="endpoint")
        return name

    def _settings(self, data: PolicyInput) -> dict[str, Any]:
        """A policy's settings from checked input (its endpoint must exist)."""
        checked = _check(data)
        return {
            "name": checked.name,
            "description": checked.description,
            "enabled": checked.enabled,
            "direction": checked.direction,
            "endpoint": self._endpoint(checked.endpoint),
            "repositories": checked.repositories,
            "tags": checked.tags,
            "artifact_kind": checked.artifact_kind,
            "referrers": checked.referrers,
            "flatten": checked.flatten,
            "prefix": checked.prefix,
            "trigger": checked.trigger,
            "cron": checked.cron,
            "deletions": checked.deletions,
            "override": checked.override,
            "bandwidth_kbps": checked.bandwidth_kbps,
            "concurrency": checked.concurrency,
        }

    def create(self, data: PolicyInput) -> ReplicationPolicy:
        now = self._now()
        policy = ReplicationPolicy(id=0, **self._settings(data), created_at=now, updated_at=now)
        stored = self._store.add_policy(policy)
        if stored is None:
            raise ConflictError(f"replication policy {data.name!r} already exists")
        return stored

    def get(self, policy_id: int) -> ReplicationPolicy:
        policy = self._store.policy(policy_id)
        if policy is None:
            raise NotFoundError(f"replication policy {policy_id} not found")
        return policy

    def policies(self) -> list[ReplicationPolicy]:
        return self._store.policies()

    def update(self, policy_id: int, data: PolicyInput) -> ReplicationPolicy:
        current = self.get(policy_id)
        changed = replace(current, **self._settings(data), updated_at=self._now())
        other = self._store.policy_named(changed.name)
        if other is not None and other.id != policy_id:
            raise ConflictError(f"replication policy {changed.name!r} already exists")
        if not self._store.save_policy(changed):
            raise NotFoundError(f"replication policy {policy_id} not found")
        return changed

    def delete(self, policy_id: int) -> None:
        if not self._store.delete_policy(policy_id):
            raise NotFoundError(f"replication policy {policy_id} not found")

    def new_execution(
        self,
        policy: ReplicationPolicy,
        trigger: TriggerKind,
        tasks: Sequence[PlannedTask] = (),
        execution_id: str | None = None,
    ) -> ExecutionRequest:
        """Record a new running execution of ``policy``; the request its workflow gets.

        With ``execution_id`` (an event batch's run) a repeated call records nothing new.
        """
        execution = Execution(
            id=execution_id or f"replication-{policy.id}-{uuid.uuid4().hex[:16]}",
            policy_id=policy.id,
            policy=policy.name,
            trigger=trigger,
            status=ExecutionStatus.RUNNING,
            started_at=self._now(),
            finished_at=None,
            total=0,
            succeeded=0,
            failed=0,
            skipped=0,
        )
        self._store.add_execution(execution)
        return ExecutionRequest(execution.id, policy.id, trigger, list(tasks))

    def start_failed(self, execution_id: str, reason: str) -> None:
        self._store.finish_execution(execution_id, ExecutionStatus.FAILED, reason, self._now())

    def execution(self, execution_id: str) -> Execution:
        found = self._store.execution(execution_id)
        if found is None:
            raise NotFoundError(f"replication execution {execution_id!r} not found")
        return found

    def executions(self, policy_id: int | None) -> list[Execution]:
        return self._store.executions(policy_id)

    def tasks(self, execution_id: str) -> list[ReplicationTask]:
        self.execution(execution_id)
        return self._store.tasks(execution_id)


def event_tasks(policy: ReplicationPolicy, batch: Sequence[EventLike]) -> list[PlannedTask]:
    """The tasks an event-triggered push policy runs for ``batch`` (in event order).

    A push, tag creation or move copies the tag (an untagged push, such as an index's
    child or a referrer, travels with the tagged artifact it belongs to); a tag or
    manifest deletion deletes at the destination only when the policy
    replicates deletions. Events of repositories or tags the filters drop give nothing;
    a repeated (repository, reference, operation) is planned once.
    """
    planned: list[PlannedTask] = []
    seen: set[tuple[str, str, str]] = set()
    for event in batch:
        repository = event.repository
        if not repository:
            continue
        deleting = event.kind in (events.TAG_DELETED, events.MANIFEST_DELETED)
        if deleting and not policy.deletions:
            continue
        if not deleting and not event.tag:
            continue  # artifacts travel by tag; untagged children and referrers follow them
        reference = event.tag or event.digest
        if not reference or not policy.selects(repository, event.tag):
            continue
        operation = TaskOperation.DELETE if deleting else TaskOperation.COPY
        key = (repository, reference, operation.value)
        if key in seen:
            continue
        seen.add(key)
        planned.append(
            PlannedTask(
                operation, repository, policy.destination(repository), reference, event.digest
            )
        )
    return planned


class EventLike(Protocol):
    """The fields of an outbox event the planner reads (``core.event_batches.EventValue``)."""

    @property
    def kind(self) -> str: ...
    @property
    def repository(self) -> str | None: ...
    @property
    def tag(self) -> str | None: ...
    @property
    def digest(self) -> str | None: ...


def overall_status(tasks: Sequence[ReplicationTask]) -> ExecutionStatus:
    """An execution's final status from its tasks' results."""
    unfinished = (TaskStatus.FAILED, TaskStatus.PENDING, TaskStatus.STOPPED)
    failed = sum(1 for t in tasks if t.status in unfinished)
    if not failed:
        return ExecutionStatus.SUCCEEDED
    return ExecutionStatus.FAILED if failed == len(tasks) else ExecutionStatus.PARTIAL


@dataclass(frozen=True, slots=True)
class Plan:
    """What an execution's workflow runs: its pending tasks (ids) and how many at once.

    Attributes:
        names: ``(project, repository)`` of each task's source (the child runs' search
            attributes), in the order of ``tasks``.
    """

    execution_id: str
    policy: str
    concurrency: int
    tasks: list[int]
    names: list[tuple[str, str]]
    retry: RetryShape
    #: The final status when planning closed the execution itself (no task to run);
    #: ``None``: the workflow closes it (``FINISH_EXECUTION``) once its tasks ran.
    status: str | None = None
    #: Pending tasks after the last one of ``tasks`` (asked for with ``NEXT_TASKS``).
    more: bool = False
    #: Tasks per page of a paged execution (``ReplicationSettings.tasks_per_page``).
    page_tasks: int = 0
    #: Child runs one workflow run starts before it continues as new (at the end of a
    #: page; ``ReplicationSettings.tasks_per_run``).
    run_tasks: int = 0


@dataclass(frozen=True, slots=True)
class Continued:
    """Where a continued run of an execution picks up: after task ``after``, same plan.

    Every task up to ``after`` was settled by the earlier runs (each drains its child runs
    before it continues as new); ``plan`` carries the shape (``tasks`` and ``names`` empty).
    """

    after: int
    plan: Plan


@dataclass(frozen=True, slots=True)
class TaskPage:
    """Pending tasks in id order, their source names, and whether more follow."""

    tasks: list[int]
    names: list[tuple[str, str]]
    more: bool


@dataclass(frozen=True, slots=True)
class RetryShape:
    """How a task's copy is retried (from ``ReplicationSettings``, fixed per execution)."""

    initial_seconds: float
    max_seconds: float
    attempts: int
    timeout_seconds: float
    heartbeat_seconds: float


@dataclass(frozen=True, slots=True)
class ArtifactInput:
    """One task's child run."""

    execution_id: str
    policy_id: int
    task_id: int
    retry: RetryShape


@dataclass(frozen=True, slots=True)
class FailInput:
    task_id: int
    reason: str


@dataclass(frozen=True, slots=True)
class FinishInput:
    execution_id: str
    reason: str | None = None


def replication_interest(policies: Callable[[], Sequence[ReplicationPolicy]]) -> Interest:
    """The replication subscriber's interest: every event while a policy fires on events."""
    return all_or_nothing(lambda: any(policy.fires_on_events for policy in policies()))
