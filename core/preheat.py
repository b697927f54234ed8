"""P2P preheat (Harbor's model): provider instances, per-project policies, executions.

A **provider instance** (system administrators) is a P2P system Moorage hands images to:
``dragonfly`` (the manager's Open API: ``POST /oapi/v1/jobs``, polled at
``GET /oapi/v1/jobs/<id>``, health at ``/healthy``) or ``kraken`` (a distribution
notification envelope ``POST``-ed to ``/registry/notifications``, health at
``/health``). Its endpoint is checked against the outbound policy when it is written and
again at every call (``adapters.outbound_http``); its secret is stored sealed and never
answered.

A **policy** belongs to a project and names an instance, filters, a trigger and (for
Dragonfly) a scope and scheduler cluster ids. Candidates are the project's tagged
artifacts the filters keep, applied in Harbor's order: repository (doublestar glob,
``core.patterns``), tag (glob), signature (only images with a verified signature in the
trust store) and vulnerability (only images whose newest successful scan, allowlists
applied, has no finding at or above ``severity``; an unscanned image is left out).
The signature and vulnerability criteria are also **inherited from the project**, as
Harbor does: a project whose trust policy is enforced preheats only images that meet it,
and a project whose scan policy has a ``prevent_severity`` preheats only images scanned
without a finding at or above it. A policy's own ``signed_only`` and ``severity`` can
only add to them (the stricter severity wins), never relax them (:func:`criteria_of`).

Triggers: ``manual`` (an API call), ``scheduled`` (a Temporal schedule of the policy's
cron expression) and ``event_based``: the preheat subscriber evaluates the project's
event-based policies when an artifact is pushed or tagged, when its scan completed
(Harbor's *OnScanComplete*; a failed scan starts nothing) and, for policies that require
signed images, when its signature verification succeeded (``signature.verified``). An
image held back at push time by a criterion (not scanned yet, not signed yet) is so
preheated once its scan or verification lets it through. Scan and signature events name
a digest, not a tag: the run preheats every tag of that digest the tag filter keeps.

A provider instance can be the **default** one (at most one is; a policy written without
an instance uses it) and **insecure** (its TLS certificate is not verified, for
self-signed providers); Harbor's auth mode names ``NONE``, ``BASIC`` and ``OAUTH`` are
accepted for ``none``, ``basic`` and ``bearer`` (:func:`parse_auth_mode`).

An **execution** is one run (one workflow, its id the execution's id) with one task per
candidate: the provider job is created with a pull-only registry token for exactly that
repository, living as long as the job may run (:func:`token_lifetime`: the job timeout
and the poll's grace), polled until it ends, and its result (status, job id, per-peer
successes and failures) is recorded on the task.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Final, Protocol

from core import events
from core.errors import InvalidInputError
from core.patterns import matches
from core.promotion import SEVERITIES
from core.replication import check_cron
from core.subscribers import Interest, Subscriber, project_interest

if TYPE_CHECKING:
    from core.execution_reconcile import Ending

#: Activity name of the preheat subscriber (``core.subscribers``).
DELIVER_EVENTS_PREHEAT: Final = "deliver_events_preheat"
#: Events that name an artifact reaching a tag (Harbor's *OnPush*).
TAG_EVENTS: Final = frozenset({events.MANIFEST_PUSHED, events.TAG_CREATED, events.TAG_MOVED})
#: The events that trigger event-based policies: a tag, a completed scan (Harbor's
#: *OnScanComplete*), a verified signature (for policies requiring signed images).
TRIGGER_EVENTS: Final = TAG_EVENTS | {events.SCAN_COMPLETED, events.SIGNATURE_VERIFIED}
PREHEAT_SUBSCRIBER: Final = Subscriber("preheat", TRIGGER_EVENTS, DELIVER_EVENTS_PREHEAT)
#: Workflow type of one execution (``workflows.preheat``).
EXECUTION_WORKFLOW: Final = "PreheatExecutionWorkflow"
#: Activity names (``activities.preheat``).
PLAN: Final = "preheat_plan"
CREATE_JOB: Final = "preheat_create_job"
POLL_JOB: Final = "preheat_poll_job"
RECORD_TASK: Final = "preheat_record_task"
FINISH: Final = "preheat_finish"
#: Closes a stopped execution (its workflow was cancelled: ``core.execution_stop``).
STOP: Final = "preheat_stop"
NEXT_TASKS: Final = "preheat_next_tasks"
#: Error type of a failure no retry can fix (refused endpoint, provider said no).
FINAL_ERROR: Final = "PreheatFinalError"
#: How much longer than the job timeout the poll of a job may take (its activity's bound),
#: and so how much longer than the job timeout the provider's registry token lives.
JOB_GRACE_SECONDS: Final = 60

#: Names of instances and policies (``check_name``).
NAME_PATTERN: Final = r"^[a-z0-9][a-z0-9._-]{0,62}$"
_NAME = re.compile(NAME_PATTERN)
_MAX_PATTERN = 255
_MAX_CLUSTERS = 64


class Vendor(StrEnum):
    DRAGONFLY = "dragonfly"
    KRAKEN = "kraken"


class AuthMode(StrEnum):
    NONE = "none"
    #: HTTP Basic: ``username`` and the secret as password.
    BASIC = "basic"
    #: ``Authorization: Bearer <secret>`` (a Dragonfly personal access token).
    BEARER = "bearer"
    #: A custom header: the secret is ``Name: value``.
    HEADER = "header"


#: Harbor's names of the auth modes (``OAUTH``: a bearer token).
_HARBOR_AUTH: Final = {"oauth": AuthMode.BEARER}


def parse_auth_mode(value: object) -> object:
    """An auth mode from Moorage's or Harbor's spelling (``NONE``, ``BASIC``, ``OAUTH``).

    Anything else is returned as given, for the caller's validation to refuse.
    """
    if isinstance(value, AuthMode) or not isinstance(value, str):
        return value
    lowered = value.strip().lower()
    if lowered in _HARBOR_AUTH:
        return _HARBOR_AUTH[lowered]
    return lowered if lowered in {m.value for m in AuthMode} else value


class TriggerKind(StrEnum):
    MANUAL = "manual"
    SCHEDULED = "scheduled"
    EVENT_BASED = "event_based"


class Scope(StrEnum):
    """Which Dragonfly peers receive the content."""

    SINGLE_SEED_PEER = "single_seed_peer"
    ALL_SEED_PEERS = "all_seed_peers"
    ALL_PEERS = "all_peers"


class ExecutionStatus(StrEnum):
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    #: Some candidates were preheated, others failed.
    PARTIAL = "partial"
    #: A stop was asked for; the workflow closes the execution (``core.execution_stop``).
    STOPPING = "stopping"
    #: Stopped by an operator: its unfinished tasks are ``stopped``.
    STOPPED = "stopped"


#: Statuses of an execution its workflow may still change.
ACTIVE_STATUSES: Final = frozenset({ExecutionStatus.RUNNING, ExecutionStatus.STOPPING})


class TaskStatus(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    #: Not finished when its execution stopped (a provider job it created runs on).
    STOPPED = "stopped"


#: The error of a task its execution's stop closed.
STOPPED_TASK: Final = "not finished: the execution was stopped"
#: Statuses of a task its execution's workflow may still change: not started, or its job
#: created and its result not recorded yet.
OPEN_TASK_STATUSES: Final = frozenset({TaskStatus.PENDING, TaskStatus.RUNNING})


class JobState(StrEnum):
    """A provider job's state as Moorage reads it."""

    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class Instance:
    """A stored provider instance (its secret sealed: never hand it to a caller)."""

    id: int
    name: str
    description: str
    vendor: Vendor
    endpoint: str
    auth_mode: AuthMode
    username: str
    secret_sealed: str | None
    enabled: bool
    created_at: datetime
    updated_at: datetime
    #: The instance a policy written without one uses (at most one instance is).
    is_default: bool = False
    #: Its TLS certificate is not verified (a self-signed or untrusted provider).
    insecure: bool = False


@dataclass(frozen=True, slots=True)
class InstanceInput:
    """An instance as an administrator writes it (``secret`` ``None`` keeps the stored one)."""

    name: str
    vendor: Vendor
    endpoint: str
    auth_mode: AuthMode = AuthMode.NONE
    username: str = ""
    secret: str | None = None
    description: str = ""
    enabled: bool = True
    is_default: bool = False
    insecure: bool = False


@dataclass(frozen=True, slots=True)
class Policy:
    """A stored preheat policy of one project.

    Attributes:
        repositories: Doublestar glob on repository names without the project (``**``).
        tags: Doublestar glob on tags (``**``: all).
        signed_only: Only images with a verified signature (trust store).
        severity: Leave out images with a finding at or above this severity (``None``:
            no vulnerability filter).
        cluster_ids: Dragonfly scheduler clusters (empty: all).
    """

    id: int
    project_id: int
    project: str
    name: str
    description: str
    instance_id: int
    repositories: str
    tags: str
    signed_only: bool
    severity: str | None
    trigger: TriggerKind
    cron: str | None
    scope: Scope
    cluster_ids: tuple[int, ...]
    enabled: bool
    created_by: str
    created_at: datetime
    updated_at: datetime

    @property
    def fires_on_events(self) -> bool:
        """Whether the project's events start executions (enabled and event-based)."""
        return self.enabled and self.trigger is TriggerKind.EVENT_BASED

    def selects(self, repository: str, tag: str) -> bool:
        """Whether the repository and tag filters keep ``repository:tag``.

        ``repository`` is the full name (``project/name``); the glob is matched against
        the name inside the project, as Harbor does.
        """
        return self.selects_repository(repository) and matches(self.tags, tag)

    def selects_repository(self, repository: str) -> bool:
        """Whether the repository filter keeps ``repository`` (full name)."""
        project, _, inner = repository.partition("/")
        return project == self.project and bool(inner) and matches(self.repositories, inner)


@dataclass(frozen=True, slots=True)
class PolicyInput:
    """A policy as a project administrator writes it (``instance`` empty: the default one)."""

    name: str
    instance: str
    description: str = ""
    repositories: str = "**"
    tags: str = "**"
    signed_only: bool = False
    severity: str | None = None
    trigger: TriggerKind = TriggerKind.MANUAL
    cron: str | None = None
    scope: Scope = Scope.SINGLE_SEED_PEER
    cluster_ids: tuple[int, ...] = ()
    enabled: bool = True


@dataclass(frozen=True, slots=True)
class Criteria:
    """Signature and vulnerability criteria: a project's, or what one policy applies.

    Attributes:
        signed_only: Only images with a valid signature (meeting the project's trust
            policy when it enforces one).
        severity: Leave out images not scanned or with a finding at or above it
            (``core.promotion.SEVERITIES``); ``None``: no vulnerability criterion.
    """

    signed_only: bool = False
    severity: str | None = None


def stricter(first: str | None, second: str | None) -> str | None:
    """The lower (stricter) of two severity thresholds; ``None`` is no threshold."""
    if first is None or second is None:
        return first or second
    return first if SEVERITIES.index(first) <= SEVERITIES.index(second) else second


def criteria_of(policy: Policy, project: Criteria) -> Criteria:
    """What ``policy`` applies: its project's criteria, made stricter by its own."""
    return Criteria(
        signed_only=policy.signed_only or project.signed_only,
        severity=stricter(policy.severity, project.severity),
    )


def token_lifetime(poll: PollShape) -> int:
    """Seconds the provider's registry token lives: as long as the job may run."""
    return math.ceil(poll.job_timeout_seconds) + JOB_GRACE_SECONDS


@dataclass(frozen=True, slots=True)
class Candidate:
    """One tagged artifact to preheat (``tag`` empty: every tag of ``digest``)."""

    repository: str
    tag: str
    digest: str
    media_type: str = ""


@dataclass(frozen=True, slots=True)
class Execution:
    """One run of a policy; ``id`` is also its workflow id."""

    id: str
    policy_id: int
    project_id: int
    policy: str
    trigger: TriggerKind
    status: ExecutionStatus
    started_at: datetime
    finished_at: datetime | None
    total: int
    succeeded: int
    failed: int
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class Peer:
    """One peer's result of a provider job (Dragonfly's success/failure tasks)."""

    ok: bool
    hostname: str = ""
    ip: str = ""
    url: str = ""
    description: str = ""
    cluster_id: int | None = None


@dataclass(frozen=True, slots=True)
class Task:
    """One candidate of an execution and its result."""

    id: int
    execution_id: str
    repository: str
    tag: str
    digest: str
    media_type: str
    status: TaskStatus
    job_id: str | None = None
    peers: tuple[Peer, ...] = ()
    error: str | None = None
    finished_at: datetime | None = None

    @property
    def peers_succeeded(self) -> int:
        return sum(1 for p in self.peers if p.ok)

    @property
    def peers_failed(self) -> int:
        return sum(1 for p in self.peers if not p.ok)


@dataclass(frozen=True, slots=True)
class JobStatus:
    """What the provider said about a job."""

    state: JobState
    peers: list[Peer] = field(default_factory=list)
    message: str | None = None


# -- values crossing the Temporal boundary ---------------------------------------------------


@dataclass(frozen=True, slots=True)
class ExecutionRequest:
    """What an execution's workflow receives.

    Attributes:
        candidates: For an event-triggered run: the artifacts the events named (the
            planner finds the tags of those named by digest only, and applies the
            signature and vulnerability filters to them); empty: the planner lists the
            project.
    """

    execution_id: str
    policy_id: int
    trigger: TriggerKind
    candidates: list[Candidate] = field(default_factory=list)
    #: The plan returns the first page of pending tasks (``Plan.more``: others follow)
    #: rather than all of them; runs recorded before paging leave it ``False``.
    paged: bool = False
    #: Set on a run continued as new: where the earlier runs of the execution stopped.
    continued: Continued | None = None


@dataclass(frozen=True, slots=True)
class PollShape:
    """How a job is polled (from ``PreheatSettings``, fixed per execution)."""

    initial_seconds: float
    max_seconds: float
    job_timeout_seconds: float
    heartbeat_seconds: float


@dataclass(frozen=True, slots=True)
class Plan:
    """What an execution's workflow runs: its pending tasks (ids) and how many at once."""

    execution_id: str
    tasks: list[int]
    concurrency: int
    poll: PollShape
    #: Pending tasks after the last one of ``tasks`` (asked for with ``NEXT_TASKS``).
    more: bool = False
    #: Tasks per page of a paged execution (``PreheatSettings.tasks_per_page``).
    page_tasks: int = 0
    #: Tasks one workflow run handles before it continues as new (at the end of a page;
    #: ``PreheatSettings.tasks_per_run``).
    run_tasks: int = 0


@dataclass(frozen=True, slots=True)
class Continued:
    """Where a continued run of an execution picks up: after task ``after``, same plan.

    Every task up to ``after`` was settled by the earlier runs (each waits for its tasks
    before it continues as new); ``plan`` carries the shape (``tasks`` empty).
    """

    after: int
    plan: Plan


@dataclass(frozen=True, slots=True)
class TaskInput:
    execution_id: str
    task_id: int
    poll: PollShape


@dataclass(frozen=True, slots=True)
class JobRef:
    """A created provider job; ``done`` when creating it was the whole job (Kraken)."""

    job_id: str
    done: bool = False


@dataclass(frozen=True, slots=True)
class PollInput:
    task_id: int
    job_id: str
    poll: PollShape


@dataclass(frozen=True, slots=True)
class RecordInput:
    task_id: int
    succeeded: bool
    job_id: str | None
    peers: list[Peer] = field(default_factory=list)
    error: str | None = None


@dataclass(frozen=True, slots=True)
class FinishInput:
    execution_id: str
    reason: str | None = None


# -- ports --------------------------------------------------------------------------------


class PreheatStore(Protocol):
    """Instances, policies, executions and tasks (one transaction a call)."""

    def add_instance(self, instance: Instance) -> Instance | None:
        """Insert (``id`` assigned); ``None`` when the name is taken."""
        ...

    def instance(self, instance_id: int) -> Instance | None: ...
    def instance_named(self, name: str) -> Instance | None: ...
    def instances(self) -> list[Instance]: ...
    def save_instance(self, instance: Instance) -> bool: ...
    def delete_instance(self, instance_id: int) -> bool: ...
    def instance_in_use(self, instance_id: int) -> bool: ...
    def make_default(self, instance_id: int) -> None:
        """Make the instance the default one and every other not (one transaction)."""
        ...

    def default_instance(self) -> Instance | None: ...

    def add_policy(self, policy: Policy) -> Policy | None:
        """Insert; ``None`` when the project has a policy of that name."""
        ...

    def policy(self, policy_id: int) -> Policy | None: ...
    def policies(self, project_id: int | None) -> list[Policy]:
        """A project's policies (every project's for ``None``), by id."""
        ...

    def save_policy(self, policy: Policy) -> bool: ...
    def delete_policy(self, policy_id: int) -> bool: ...

    def add_execution(self, execution: Execution) -> None:
        """Insert; an execution with that id already stored is kept as it is."""
        ...

    def execution(self, execution_id: str) -> Execution | None: ...
    def executions(self, project_id: int, policy_id: int | None) -> list[Execution]:
        """Newest first."""
        ...

    def finish_execution(
        self, execution_id: str, status: ExecutionStatus | None, reason: str | None, now: datetime
    ) -> Execution | None:
        """Set the final status (``None``: from the tasks) and the counts (idempotent).

        Only a ``running`` execution changes: a ``stopping`` one is left to its stop.
        """
        ...

    def request_stop(self, execution_id: str, reason: str) -> bool:
        """Mark a ``running`` execution ``stopping`` with ``reason``; whether it was running."""
        ...

    def stop_execution(
        self, execution_id: str, reason: str | None, now: datetime
    ) -> Execution | None:
        """Close an execution still active as ``stopped`` (its open tasks too).

        In one transaction: open tasks become ``stopped``, the counts are taken;
        ``reason`` (``None``: the reason the stop request left) is kept. An execution
        already closed is returned unchanged.
        """
        ...

    def close_abandoned(self, execution_id: str, ending: Ending, now: datetime) -> bool:
        """Close an active execution whose workflow ended without closing it.

        In one transaction, and only while it is active (whether it was): a ``stopping``
        one closes as :meth:`stop_execution` does (the stop's reason kept); a ``running``
        one has its open tasks ``failed`` and closes ``failed``, with the ending's reason.
        """
        ...

    def add_tasks(self, execution_id: str, candidates: list[Candidate]) -> list[Task]:
        """Insert the tasks once: a repeated call returns the stored ones."""
        ...

    def task(self, task_id: int) -> Task | None: ...
    def tasks(self, execution_id: str) -> list[Task]: ...
    def pending_tasks(self, execution_id: str, after: int, limit: int) -> list[Task]:
        """``pending`` or ``running`` tasks with ids above ``after``, in id order."""
        ...

    def set_job(self, task_id: int, job_id: str) -> None: ...
    def record_task(self, task_id: int, result: RecordInput, now: datetime) -> None:
        """Record an open task's result (a task already closed, say stopped, stays so)."""
        ...


class ProviderError(Exception):
    """A provider call failed in a way a retry may fix (unreachable, 5xx)."""


class ProviderRefusedError(Exception):
    """A provider call that no retry fixes (endpoint refused, 4xx, malformed answer)."""


@dataclass(frozen=True, slots=True)
class ChildManifest:
    """A manifest an index names (one platform's image): its digest and media type."""

    digest: str
    media_type: str


@dataclass(frozen=True, slots=True)
class JobSpec:
    """What a provider job needs to fetch one image.

    Attributes:
        manifest_url: ``<registry>/v2/<repository>/manifests/<digest>``.
        token: A short-lived registry token that may pull only ``repository``.
        event_id: A stable id of this request (the notification's id for Kraken).
        source: Who asks (``/projects/<p>/preheat/policies/<id>``).
        children: The manifests an index names, for a provider that seeds image
            manifests only (Kraken ignores an index); empty for an image manifest.
    """

    registry: str
    repository: str
    tag: str
    digest: str
    media_type: str
    manifest_url: str
    token: str
    scope: Scope
    cluster_ids: tuple[int, ...]
    event_id: str
    source: str
    children: tuple[ChildManifest, ...] = ()


class ProviderClient(Protocol):
    """One vendor's calls (``adapters.preheat_providers``); secrets already opened."""

    async def health(self) -> tuple[bool, str]:
        """Whether the provider answers its health check, and what it said."""
        ...

    async def create(self, spec: JobSpec) -> JobRef: ...
    async def status(self, job_id: str) -> JobStatus: ...


# -- rules ------------------------------------------------------------------------------------


def check_name(name: str) -> str:
    if not _NAME.fullmatch(name):
        raise InvalidInputError(
            "name: 1-63 lower-case letters, digits, '.', '_' and '-'", field="name"
        )
    return name


def check_policy(data: PolicyInput) -> PolicyInput:
    """The input with its cron normalized, or an ``InvalidInputError`` naming the field."""
    check_name(data.name)
    for value, name in ((data.repositories, "repositories"), (data.tags, "tags")):
        if not value or len(value) > _MAX_PATTERN:
            raise InvalidInputError(f"{name}: a glob of 1 to 255 characters", field=name)
    if data.severity is not None and data.severity not in SEVERITIES:
        raise InvalidInputError(
            f"severity is one of {', '.join(SEVERITIES)} (or null)", field="severity"
        )
    if len(data.cluster_ids) > _MAX_CLUSTERS or any(c < 1 for c in data.cluster_ids):
        raise InvalidInputError(
            "cluster_ids: up to 64 positive scheduler cluster ids", field="cluster_ids"
        )
    cron: str | None = None
    if data.trigger is TriggerKind.SCHEDULED:
        cron = check_cron(data.cron)
    elif data.cron:
        raise InvalidInputError("cron is only for scheduled policies", field="cron")
    return PolicyInput(
        name=data.name,
        instance=data.instance,
        description=data.description,
        repositories=data.repositories,
        tags=data.tags,
        signed_only=data.signed_only,
        severity=data.severity,
        trigger=data.trigger,
        cron=cron,
        scope=data.scope,
        cluster_ids=tuple(sorted(set(data.cluster_ids))),
        enabled=data.enabled,
    )


class SignatureVerdicts(Protocol):
    def signed(self, repository: str, digest: str) -> bool:
        """Whether the image is signed (the trust store's verdicts).

        Signed: it meets its project's enforced trust policy, or (a project without one)
        has a verified signature.
        """
        ...


class ProjectCriteria(Protocol):
    def criteria(self, project_id: int) -> Criteria:
        """The criteria a project's configuration imposes on every preheat policy of it.

        ``signed_only`` when its trust policy is enforced, ``severity`` from its scan
        policy's ``prevent_severity``.
        """
        ...


class VulnerabilityVerdicts(Protocol):
    def passes(self, repository: str, digest: str, severity: str) -> bool:
        """Whether the image was scanned and has no finding at or above ``severity``."""
        ...


def filter_candidates(
    policy: Policy,
    candidates: list[Candidate],
    signatures: SignatureVerdicts,
    vulnerabilities: VulnerabilityVerdicts,
    project: Criteria | None = None,
) -> list[Candidate]:
    """The candidates the policy keeps, filters applied in Harbor's order.

    Repository, then tag, then signature, then vulnerability: each later (costlier)
    filter sees only what the earlier ones kept. The signature and vulnerability criteria
    are the policy's and its ``project``'s together (:func:`criteria_of`). A repeated
    (repository, tag) is kept once; verdicts are read once per digest.
    """
    applied = criteria_of(policy, project or Criteria())
    kept: list[Candidate] = []
    seen: set[tuple[str, str]] = set()
    verdicts: dict[tuple[str, str], bool] = {}
    for candidate in candidates:
        if not policy.selects(candidate.repository, candidate.tag):
            continue
        key = (candidate.repository, candidate.tag)
        if key in seen:
            continue
        image = (candidate.repository, candidate.digest)
        if image not in verdicts:
            verdicts[image] = _meets(applied, image, signatures, vulnerabilities)
        if not verdicts[image]:
            continue
        seen.add(key)
        kept.append(candidate)
    return kept


def _meets(
    criteria: Criteria,
    image: tuple[str, str],
    signatures: SignatureVerdicts,
    vulnerabilities: VulnerabilityVerdicts,
) -> bool:
    repository, digest = image
    if criteria.signed_only and not signatures.signed(repository, digest):
        return False
    return criteria.severity is None or vulnerabilities.passes(
        repository, digest, criteria.severity
    )


def event_candidates(
    policy: Policy, batch: list[Any], signatures_matter: bool = False
) -> list[Candidate]:
    """The artifacts of ``batch`` (outbox events) an event-based policy evaluates.

    A push or tag event names a tag: kept when the repository and tag filters keep it. A
    completed scan names a digest: kept (tag empty, every tag of it) when the repository
    filter keeps it. A verified signature likewise, only when ``signatures_matter`` (the
    policy applies a signature criterion: for others the push already preheated it).
    """
    found: list[Candidate] = []
    seen: set[tuple[str, str]] = set()
    for event in batch:
        if event.kind not in TRIGGER_EVENTS or event.project_id != policy.project_id:
            continue
        if not event.repository or not event.digest:
            continue
        if event.kind in TAG_EVENTS:
            if not event.tag or not policy.selects(event.repository, event.tag):
                continue
            key = (event.repository, event.tag)
        else:
            if event.kind == events.SIGNATURE_VERIFIED and not signatures_matter:
                continue
            if not policy.selects_repository(event.repository):
                continue
            key = (event.repository, "@" + event.digest)
        if key in seen:
            continue
        seen.add(key)
        found.append(Candidate(event.repository, event.tag or "", event.digest))
    return found


def overall_status(tasks: list[Task]) -> ExecutionStatus:
    """An execution's final status from its tasks (none: succeeded, nothing to do)."""
    succeeded = sum(1 for t in tasks if t.status is TaskStatus.SUCCEEDED)
    return overall_counts(len(tasks), succeeded)


def overall_counts(total: int, succeeded: int) -> ExecutionStatus:
    """:func:`overall_status` of ``total`` tasks of which ``succeeded`` succeeded."""
    if succeeded == total:
        return ExecutionStatus.SUCCEEDED
    return ExecutionStatus.FAILED if succeeded == 0 else ExecutionStatus.PARTIAL


def preheat_interest(policies: Callable[[int], Sequence[Policy]]) -> Interest:
    """The preheat subscriber's interest: events of projects with a policy firing on them."""
    return project_interest(lambda project: any(p.fires_on_events for p in policies(project)))
