"""Preheat as callers manage it (``PreheatService``) and as the worker runs it.

:class:`PreheatRunner` is what the activities call; the rules are in ``core.preheat``.

Rights: provider instances are the system administrators' (the API guards them);
a project's policies and executions need ``preheat-policy`` rights in the project
(project administrators), and a project the caller cannot read answers 404 like a
missing one.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from typing import Final

from core import mediatypes
from core.access import Identity, Scope
from core.errors import ConflictError, InvalidInputError, NotFoundError
from core.outbound import OutboundPolicy, OutboundRefusedError, parse_destination
from core.patterns import matches
from core.ports import Metadata
from core.preheat import (
    OPEN_TASK_STATUSES,
    AuthMode,
    Candidate,
    ChildManifest,
    Criteria,
    Execution,
    ExecutionRequest,
    ExecutionStatus,
    Instance,
    InstanceInput,
    JobRef,
    JobSpec,
    Plan,
    Policy,
    PolicyInput,
    PollShape,
    PreheatStore,
    ProjectCriteria,
    ProviderClient,
    RecordInput,
    SignatureVerdicts,
    Task,
    TriggerKind,
    VulnerabilityVerdicts,
    check_name,
    check_policy,
    filter_candidates,
    token_lifetime,
)
from core.preheat_settings import PreheatSettings
from core.promotion import SEVERITIES, ScanReports, scan_gate
from core.scan_records import ScanStore
from core.sealing import SecretBox, named_context
from core.services.access_control import AccessControl
from core.signature_formats import Kind
from core.task_pages import PageRequest, TaskIds, first_page, split_page
from core.tokens import TokenService
from core.trust_policy import TrustPolicy, compile_policy, evaluate
from core.trust_ports import StoredPolicy, TrustStore

logger = logging.getLogger(__name__)

_RESOURCE: Final = "preheat-policy"
#: Tags read per page while listing a repository.
_TAG_PAGE: Final = 500
#: How long a project's trust policy is reused by the signature criterion (seconds).
_POLICY_CACHE_SECONDS: Final = 5.0


def secret_context(name: str) -> str:
    return named_context("p2p-instance", name)


class PreheatService:
    """Instances, policies and the execution history."""

    def __init__(
        self,
        store: PreheatStore,
        access: AccessControl,
        box: Callable[[], SecretBox],
        outbound: OutboundPolicy,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        project_criteria: ProjectCriteria | None = None,
    ) -> None:
        self._store, self._access, self._box = store, access, box
        self._outbound, self._now = outbound, clock
        self._criteria = project_criteria

    @property
    def store(self) -> PreheatStore:
        return self._store

    # -- instances (system administrators) --------------------------------------------------

    def _endpoint(self, url: str) -> str:
        try:
            parse_destination(url, self._outbound)
        except OutboundRefusedError as exc:
            raise InvalidInputError(str(exc), field="endpoint") from exc
        return url.rstrip("/")

    def _sealed(self, name: str, data: InstanceInput, current: str | None) -> str | None:
        if data.auth_mode is AuthMode.NONE:
            return None
        if data.secret is None:
            if current is None:
                raise InvalidInputError(
                    f"auth_mode {data.auth_mode} needs a secret", field="secret"
                )
            return current
        if not data.secret:
            raise InvalidInputError(f"auth_mode {data.auth_mode} needs a secret", field="secret")
        return self._box().seal(data.secret.encode(), secret_context(name))

    def create_instance(self, data: InstanceInput) -> Instance:
        check_name(data.name)
        if data.auth_mode is AuthMode.BASIC and not data.username:
            raise InvalidInputError("basic auth needs a username", field="username")
        now = self._now()
        instance = Instance(
            id=0,
            name=data.name,
            description=data.description,
            vendor=data.vendor,
            endpoint=self._endpoint(data.endpoint),
            auth_mode=data.auth_mode,
            username=data.username,
            secret_sealed=self._sealed(data.name, data, None),
            enabled=data.enabled,
            created_at=now,
            updated_at=now,
            insecure=data.insecure,
        )
        stored = self._store.add_instance(instance)
        if stored is None:
            raise ConflictError(f"p2p instance {data.name!r} already exists")
        if data.is_default:
            self._store.make_default(stored.id)
            stored = replace(stored, is_default=True)
        return stored

    def instance(self, instance_id: int) -> Instance:
        found = self._store.instance(instance_id)
        if found is None:
            raise NotFoundError(f"p2p instance {instance_id} not found")
        return found

    def instances(self) -> list[Instance]:
        return self._store.instances()

    def update_instance(self, instance_id: int, data: InstanceInput) -> Instance:
        current = self.instance(instance_id)
        check_name(data.name)
        if data.name != current.name and data.secret is None and current.secret_sealed:
            raise InvalidInputError("renaming an instance needs its secret again", field="secret")
        if data.auth_mode is AuthMode.BASIC and not data.username:
            raise InvalidInputError("basic auth needs a username", field="username")
        changed = replace(
            current,
            name=data.name,
            description=data.description,
            vendor=data.vendor,
            endpoint=self._endpoint(data.endpoint),
            auth_mode=data.auth_mode,
            username=data.username,
            secret_sealed=self._sealed(data.name, data, current.secret_sealed),
            enabled=data.enabled,
            insecure=data.insecure,
            # NOTE: made the default below, in one transaction with the others' unset
            is_default=current.is_default and data.is_default,
            updated_at=self._now(),
        )
        if not self._store.save_instance(changed):
            raise ConflictError(f"p2p instance {data.name!r} already exists")
        if data.is_default and not current.is_default:
            self._store.make_default(instance_id)
            changed = replace(changed, is_default=True)
        return changed

    def default_instance(self) -> Instance | None:
        return self._store.default_instance()

    def delete_instance(self, instance_id: int) -> None:
        self.instance(instance_id)
        if self._store.instance_in_use(instance_id):
            raise ConflictError(f"p2p instance {instance_id} is used by preheat policies")
        self._store.delete_instance(instance_id)

    def open_secret(self, instance: Instance) -> str | None:
        if instance.secret_sealed is None:
            return None
        return self._box().open(instance.secret_sealed, secret_context(instance.name)).decode()

    # -- policies (project administrators) ---------------------------------------------------

    def _project(self, caller: Identity, project: str, action: str) -> tuple[int, str]:
        record = self._access.require(caller, project, _RESOURCE, action)
        return record.id, record.name

    def _instance_id(self, name: str) -> int:
        """The named instance's id; without a name, the default instance's."""
        if not name:
            default = self._store.default_instance()
            if default is None:
                raise InvalidInputError(
                    "name the p2p instance: none is the default", field="instance"
                )
            return default.id
        found = self._store.instance_named(name)
        if found is None:
            raise InvalidInputError(f"no p2p instance {name!r}", field="instance")
        return found.id

    def _owned(self, caller: Identity, project: str, policy_id: int, action: str) -> Policy:
        project_id, _ = self._project(caller, project, action)
        policy = self._store.policy(policy_id)
        if policy is None or policy.project_id != project_id:
            raise NotFoundError(f"preheat policy {policy_id} not found")
        return policy

    def create_policy(self, caller: Identity, project: str, data: PolicyInput) -> Policy:
        project_id, project_name = self._project(caller, project, "create")
        checked = check_policy(data)
        now = self._now()
        policy = Policy(
            id=0,
            project_id=project_id,
            project=project_name,
            name=checked.name,
            description=checked.description,
            instance_id=self._instance_id(checked.instance),
            repositories=checked.repositories,
            tags=checked.tags,
            signed_only=checked.signed_only,
            severity=checked.severity,
            trigger=checked.trigger,
            cron=checked.cron,
            scope=checked.scope,
            cluster_ids=checked.cluster_ids,
            enabled=checked.enabled,
            created_by=caller.subject,
            created_at=now,
            updated_at=now,
        )
        stored = self._store.add_policy(policy)
        if stored is None:
            raise ConflictError(f"preheat policy {data.name!r} already exists in {project}")
        return stored

    def policies(self, caller: Identity, project: str) -> list[Policy]:
        project_id, _ = self._project(caller, project, "list")
        return self._store.policies(project_id)

    def policy(self, caller: Identity, project: str, policy_id: int) -> Policy:
        return self._owned(caller, project, policy_id, "read")

    def update_policy(
        self, caller: Identity, project: str, policy_id: int, data: PolicyInput
    ) -> Policy:
        current = self._owned(caller, project, policy_id, "update")
        checked = check_policy(data)
        changed = replace(
            current,
            name=checked.name,
            description=checked.description,
            instance_id=self._instance_id(checked.instance),
            repositories=checked.repositories,
            tags=checked.tags,
            signed_only=checked.signed_only,
            severity=checked.severity,
            trigger=checked.trigger,
            cron=checked.cron,
            scope=checked.scope,
            cluster_ids=checked.cluster_ids,
            enabled=checked.enabled,
            updated_at=self._now(),
        )
        if not self._store.save_policy(changed):
            raise ConflictError(f"preheat policy {data.name!r} already exists in {project}")
        return changed

    def delete_policy(self, caller: Identity, project: str, policy_id: int) -> Policy:
        policy = self._owned(caller, project, policy_id, "delete")
        self._store.delete_policy(policy_id)
        return policy

    def instance_name(self, policy: Policy) -> str:
        found = self._store.instance(policy.instance_id)
        return found.name if found is not None else ""

    def project_criteria(self, policy: Policy) -> Criteria:
        """The criteria ``policy``'s project imposes on it (shown with the policy)."""
        if self._criteria is None:
            return Criteria()
        return self._criteria.criteria(policy.project_id)

    # -- executions -------------------------------------------------------------------------

    def runnable(self, caller: Identity, project: str, policy_id: int) -> Policy:
        """The policy a manual run starts, if the caller may run it."""
        policy = self._owned(caller, project, policy_id, "update")
        instance = self.instance(policy.instance_id)
        if not instance.enabled:
            raise ConflictError(f"p2p instance {instance.name!r} is disabled")
        return policy

    def new_execution(
        self,
        policy: Policy,
        trigger: TriggerKind,
        candidates: list[Candidate] | None = None,
        execution_id: str | None = None,
    ) -> ExecutionRequest:
        """Record a running execution of ``policy``; the request its workflow gets.

        With ``execution_id`` (an event batch's run) a repeated call records nothing new.
        """
        execution = Execution(
            id=execution_id or f"preheat-{policy.id}-{uuid.uuid4().hex[:16]}",
            policy_id=policy.id,
            project_id=policy.project_id,
            policy=policy.name,
            trigger=trigger,
            status=ExecutionStatus.RUNNING,
            started_at=self._now(),
            finished_at=None,
            total=0,
            succeeded=0,
            failed=0,
        )
        self._store.add_execution(execution)
        return ExecutionRequest(execution.id, policy.id, trigger, list(candidates or []))

    def start_failed(self, execution_id: str, reason: str) -> None:
        self._store.finish_execution(execution_id, ExecutionStatus.FAILED, reason, self._now())

    def executions(
        self, caller: Identity, project: str, policy_id: int | None = None
    ) -> list[Execution]:
        project_id, _ = self._project(caller, project, "list")
        return self._store.executions(project_id, policy_id)

    def execution(self, caller: Identity, project: str, execution_id: str) -> Execution:
        project_id, _ = self._project(caller, project, "read")
        return self._of_project(project_id, execution_id)

    def stoppable(self, caller: Identity, project: str, execution_id: str) -> Execution:
        """The project's execution, if the caller may stop it (as it may run a policy)."""
        project_id, _ = self._project(caller, project, "update")
        return self._of_project(project_id, execution_id)

    def _of_project(self, project_id: int, execution_id: str) -> Execution:
        found = self._store.execution(execution_id)
        if found is None or found.project_id != project_id:
            raise NotFoundError(f"preheat execution {execution_id!r} not found")
        return found

    def tasks(self, caller: Identity, project: str, execution_id: str) -> list[Task]:
        self.execution(caller, project, execution_id)
        return self._store.tasks(execution_id)


class StoredSignatures:
    """Signature verdicts from the trust store.

    An image of a project with an enforced trust policy is signed when it meets that
    policy (what the pull gate serves); of another project, when it has a verified
    signature (not only an attestation). Policies are reused for a few seconds.
    """

    def __init__(self, trust: TrustStore, monotonic: Callable[[], float] = time.monotonic) -> None:
        self._trust, self._monotonic = trust, monotonic
        self._policies: dict[str, TrustPolicy] = {}
        self._loaded_at = float("-inf")
        self._lock = threading.Lock()

    def _enforced(self, project: str) -> TrustPolicy | None:
        with self._lock:
            if self._monotonic() - self._loaded_at >= _POLICY_CACHE_SECONDS:
                self._policies = {}
                for stored in self._trust.policies():
                    if not _enforces(stored):
                        continue
                    try:
                        self._policies[stored.project] = compile_policy(
                            stored.project_id, stored.project, stored.revision, stored.document
                        )
                    except Exception:
                        # NOTE: as the pull gate does (core.trust_gate): a policy that
                        # cannot be used is skipped, and logged
                        logger.exception("trust policy of %s cannot be used", stored.project)
                self._loaded_at = self._monotonic()
            return self._policies.get(project)

    def signed(self, repository: str, digest: str) -> bool:
        verified = self._trust.verified(repository, digest)
        policy = self._enforced(repository.partition("/")[0])
        if policy is not None:
            return evaluate(policy, verified).allowed
        return any(Kind(r.kind) is Kind.SIGNATURE for r in verified)


class StoredCriteria:
    """The criteria a project's configuration imposes (``core.preheat.ProjectCriteria``).

    Harbor's *Enable content trust* is a project's enforced trust policy; its *Prevent
    vulnerable images from pulling* is the scan policy's ``prevent_severity`` (``Unknown``
    and ``Negligible`` read as ``low``, the lowest preheat threshold).
    """

    def __init__(self, trust: TrustStore, scans: ScanStore) -> None:
        self._trust, self._scans = trust, scans

    def criteria(self, project_id: int) -> Criteria:
        stored = self._trust.policy(project_id)
        prevent = self._scans.policy(project_id).prevent_severity
        severity = None
        if prevent is not None:
            lowered = str(prevent).lower()
            severity = lowered if lowered in SEVERITIES else SEVERITIES[0]
        return Criteria(signed_only=stored is not None and _enforces(stored), severity=severity)


def _enforces(stored: StoredPolicy) -> bool:
    """Whether a stored trust policy is enforced (``enforce`` defaults to true)."""
    return bool(stored.document.get("enforce", True))


class StoredVulnerabilities:
    """Vulnerability verdicts from stored scans (allowlists applied), as the scan gate reads."""

    def __init__(self, reports: ScanReports) -> None:
        self._reports = reports

    def passes(self, repository: str, digest: str, severity: str) -> bool:
        return scan_gate(self._reports.report(repository, digest), severity).passed


class PreheatRunner:
    """What the preheat activities do (one short transaction per step).

    Args:
        tokens: The registry token service (built on first use: a worker may start
            before the installation has a signing key).
        provider: Builds the vendor client of an instance (its secret opened).
        registry_url: Base URL providers fetch from.
    """

    def __init__(
        self,
        service: PreheatService,
        metadata: Metadata,
        signatures: SignatureVerdicts,
        vulnerabilities: VulnerabilityVerdicts,
        project_criteria: ProjectCriteria,
        tokens: Callable[[], TokenService],
        provider: Callable[[Instance, str | None], ProviderClient],
        settings: PreheatSettings,
        registry_url: str | None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._service, self._store = service, service.store
        self._metadata = metadata
        self._signatures, self._vulnerabilities = signatures, vulnerabilities
        self._project_criteria = project_criteria
        self._tokens, self._provider = tokens, provider
        self._settings, self._registry_url, self._now = settings, registry_url, clock

    @property
    def settings(self) -> PreheatSettings:
        return self._settings

    @property
    def service(self) -> PreheatService:
        return self._service

    def poll_shape(self) -> PollShape:
        s = self._settings
        return PollShape(
            s.poll_initial_seconds, s.poll_max_seconds, s.job_timeout_seconds, s.heartbeat_seconds
        )

    def _policy(self, policy_id: int) -> Policy:
        policy = self._store.policy(policy_id)
        if policy is None:
            raise LookupError(f"preheat policy {policy_id} no longer exists")
        return policy

    def list_project(self, policy: Policy) -> list[Candidate]:
        """Every tagged artifact of the policy's project the repository filter keeps."""
        found: list[Candidate] = []
        with self._metadata.read() as session:
            for repository in session.repositories.of_project(policy.project_id):
                inner = repository.name.partition("/")[2]
                if not inner or not matches(policy.repositories, inner):
                    continue  # the repository filter first: no tag of it is read
                last: str | None = None
                for _ in range(100_000):
                    tags = session.tags.page(repository.id, last, _TAG_PAGE)
                    for tag in tags:
                        digest = session.tags.target(repository.id, tag)
                        if digest is None:
                            continue
                        manifest = session.manifests.get(repository.id, digest)
                        media_type = manifest.media_type if manifest is not None else ""
                        found.append(Candidate(repository.name, tag, digest, media_type))
                    if len(tags) < _TAG_PAGE:
                        break
                    last = tags[-1]
        return found

    def project_criteria(self, project_id: int) -> Criteria:
        """The criteria the project's configuration imposes on its policies."""
        return self._project_criteria.criteria(project_id)

    def _resolved(self, candidates: list[Candidate]) -> list[Candidate]:
        """The candidates with their media types.

        One named by digest only (a scan or a signature event) becomes one candidate per
        tag that points at the digest now.
        """
        out: list[Candidate] = []
        with self._metadata.read() as session:
            for c in candidates:
                if c.media_type and c.tag:
                    out.append(c)
                    continue
                repository = session.repositories.get(c.repository)
                if repository is None:
                    continue
                manifest = session.manifests.get(repository.id, c.digest)
                media_type = c.media_type or (manifest.media_type if manifest else "")
                tags = [c.tag] if c.tag else session.tags.of_manifest(repository.id, c.digest)
                out.extend(replace(c, tag=tag, media_type=media_type) for tag in sorted(tags))
        return out

    def plan(self, request: ExecutionRequest, execution_id: str) -> Plan:
        """Store the execution's tasks (the candidates the filters keep); the open ones.

        A ``paged`` request gets the first ``tasks_per_page`` of them and ``more`` set
        when others follow (:meth:`next_tasks` pages on).
        """
        policy = self._policy(request.policy_id)
        if self._store.execution(execution_id) is None:
            self._service.new_execution(policy, request.trigger, execution_id=execution_id)
        if self._store.tasks(execution_id):
            tasks = self._store.tasks(execution_id)
        else:
            listed = (
                self._resolved(request.candidates)
                if request.candidates
                else self.list_project(policy)
            )
            kept = filter_candidates(
                policy,
                listed,
                self._signatures,
                self._vulnerabilities,
                self.project_criteria(policy.project_id),
            )
            tasks = self._store.add_tasks(execution_id, kept)
        settings = self._settings
        pending, more = first_page(
            [t.id for t in tasks if t.status in OPEN_TASK_STATUSES],
            request.paged,
            settings.tasks_per_page,
        )
        return Plan(
            execution_id,
            pending,
            settings.concurrency,
            self.poll_shape(),
            more,
            settings.tasks_per_page,
            settings.tasks_per_run,
        )

    def next_tasks(self, page: PageRequest) -> TaskIds:
        """The execution's open tasks after ``page.after``: at most ``page.limit``."""
        found = self._store.pending_tasks(page.execution_id, page.after, page.limit + 1)
        shown, more = split_page(found, page.limit)
        return TaskIds([t.id for t in shown], more)

    def _registry(self) -> str:
        url = self._registry_url
        if not url:
            raise LookupError("set preheat.registry_url (or public_url) to preheat")
        return url.rstrip("/")

    def _context(self, task_id: int) -> tuple[Task, Policy, Instance]:
        task = self._store.task(task_id)
        if task is None:
            raise LookupError(f"preheat task {task_id} not found")
        execution = self._store.execution(task.execution_id)
        if execution is None:
            raise LookupError(f"preheat execution {task.execution_id} not found")
        policy = self._policy(execution.policy_id)
        instance = self._service.instance(policy.instance_id)
        if not instance.enabled:
            raise LookupError(f"p2p instance {instance.name!r} is disabled")
        return task, policy, instance

    def client_of(self, task_id: int) -> ProviderClient:
        _, _, instance = self._context(task_id)
        return self._provider(instance, self._service.open_secret(instance))

    def _children(self, repository: str, digest: str, media_type: str) -> tuple[ChildManifest, ...]:
        """The manifests an index names (none for an image manifest)."""
        if media_type not in mediatypes.INDEXES:
            return ()
        with self._metadata.read() as session:
            found = session.repositories.get(repository)
            if found is None:
                return ()
            _, digests = session.manifests.references(found.id, digest)
            children = []
            for child in digests:
                manifest = session.manifests.get(found.id, child)
                if manifest is not None:
                    children.append(ChildManifest(child, manifest.media_type))
        return tuple(children)

    def job_spec(self, task_id: int, poll: PollShape) -> tuple[Task, JobSpec, ProviderClient]:
        """The job of a task, with a new pull-only token for exactly its repository.

        The token lives as long as the job may run (:func:`core.preheat.token_lifetime`
        of the execution's poll shape), not the registry's usual token lifetime: a
        provider still fetching layers at the end of a long job must not be refused.
        """
        task, policy, instance = self._context(task_id)
        registry = self._registry()
        now = self._now()
        token = self._tokens().issue(
            f"preheat:{policy.project}/{policy.name}",
            [Scope("repository", task.repository, frozenset({"pull"}))],
            False,
            now,
            {"kind": "robot"},
            ttl=token_lifetime(poll),
        )
        spec = JobSpec(
            registry=registry.split("://", 1)[-1],
            repository=task.repository,
            tag=task.tag,
            digest=task.digest,
            media_type=task.media_type,
            manifest_url=f"{registry}/v2/{task.repository}/manifests/{task.digest}",
            token=token.token,
            scope=policy.scope,
            cluster_ids=policy.cluster_ids,
            event_id=f"{task.execution_id}-{task.id}",
            source=f"/projects/{policy.project}/preheat/policies/{policy.id}",
            children=self._children(task.repository, task.digest, task.media_type),
        )
        client = self._provider(instance, self._service.open_secret(instance))
        return task, spec, client

    def set_job(self, task_id: int, job: JobRef) -> None:
        self._store.set_job(task_id, job.job_id)

    def record(self, params: RecordInput) -> None:
        self._store.record_task(params.task_id, params, self._now())

    def finish(self, execution_id: str, reason: str | None) -> Execution | None:
        status = ExecutionStatus.FAILED if reason is not None else None
        return self._store.finish_execution(execution_id, status, reason, self._now())

    def stop(self, execution_id: str, reason: str | None) -> Execution | None:
        """Close a stopped execution: its unfinished tasks are marked ``stopped``.

        ``reason``: the one the stop's cancellation carried (``None``: keep the one the
        stop request recorded).
        """
        return self._store.stop_execution(execution_id, reason, self._now())

    def policy(self, policy_id: int) -> Policy:
        return self._policy(policy_id)
