"""What an execution's activities do: plan its tasks, copy one artifact, finish it.

Used by ``activities.replication`` (and only through the services the composition root
builds). Every step is idempotent: planning stores the task list once per execution,
a copy checks the destination before it writes anything, finishing recounts the rows.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any, Protocol

from core.replication import (
    Direction,
    Execution,
    ExecutionRequest,
    ExecutionStatus,
    Plan,
    PlannedTask,
    ReplicationPolicy,
    ReplicationStore,
    ReplicationTask,
    RetryShape,
    TaskOperation,
    TaskPage,
    TaskResult,
    TaskStatus,
    TriggerKind,
    overall_status,
)
from core.replication_bandwidth import SharedBandwidth
from core.replication_copy import ArtifactCopier, CopyOptions, ReplicaRegistry, has_referrers
from core.replication_delete import ArtifactDeleter, is_digest
from core.replication_settings import ReplicationSettings
from core.task_pages import PageRequest, first_page, split_page
from core.upstream_ports import UpstreamError

#: Destination locations of blobs remembered for mounts (per process).
_MOUNTS_MAX = 10_000
#: Requests to the source (tag lists, comparisons) in flight at once while planning.
_SETTLE_PARALLELISM = 16
#: Source tag lists a plan read, kept for the copies that follow it (per process).
_LISTED_MAX = 4096
#: How long a copy may use the tag list its plan read (seconds); older, it asks.
LISTED_TAGS_SECONDS = 60.0


class ReplicaClients(Protocol):
    """Registry clients of a policy's two sides (``adapters.replication_clients``)."""

    def local(self) -> ReplicaRegistry:
        """This installation's own ``/v2`` (as an administrator)."""
        ...

    def remote(self, endpoint: str) -> ReplicaRegistry:
        """The named endpoint's registry (its sealed credentials opened)."""
        ...


class _BoundedMounts(OrderedDict[str, str]):
    def __setitem__(self, key: str, value: str) -> None:
        super().__setitem__(key, value)
        if len(self) > _MOUNTS_MAX:
            self.popitem(last=False)


class _ListedTags:
    """Source tag lists read by plans, each usable for :data:`LISTED_TAGS_SECONDS`.

    The newest :data:`_LISTED_MAX` are kept; a list read again replaces the one before.
    """

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._lists: OrderedDict[tuple[str, str], tuple[float, frozenset[str]]] = OrderedDict()

    def keep(self, side: str, repository: str, tags: frozenset[str]) -> None:
        key = (side, repository)
        self._lists.pop(key, None)
        self._lists[key] = (self._clock(), tags)
        if len(self._lists) > _LISTED_MAX:
            self._lists.popitem(last=False)

    def fresh(self, side: str, repository: str) -> frozenset[str] | None:
        kept = self._lists.get((side, repository))
        if kept is None or self._clock() - kept[0] > LISTED_TAGS_SECONDS:
            return None
        return kept[1]


class ReplicationRunner:
    """Plans and copies for executions.

    Args:
        store: Policies, executions, tasks.
        clients: The two sides' registry clients.
        settings: Chunk size, referrer depth, the worker's bandwidth cap.
        manifest_max_bytes: Largest manifest accepted from a source.
        local_digests: The digests tags of a repository of this installation name (tags
            naming none left out), read from its own store in one read; planning a pull
            asks it once per repository instead of a ``HEAD`` per tag.
        local_destination: This installation as a pull's destination, written in-process
            (``core.services.replication_local``); ``None``: through ``clients.local()``.
        monotonic: The clock of the tag lists kept for copies.

    A copy that runs within :data:`LISTED_TAGS_SECONDS` of its plan, in the plan's
    process, looks up the artifact's referrers kept under tags in the tag list the plan
    read instead of asking for each (three requests fewer per artifact, four from a
    registry without the referrers API). A referrer tagged after that list was read is not
    copied with its subject then; the next run copies it (its plan never counts a subject
    with referrers at the source as in place), as it would one tagged just after the
    copy. One deleted since is left out.
    """

    def __init__(
        self,
        store: ReplicationStore,
        clients: ReplicaClients,
        settings: ReplicationSettings,
        manifest_max_bytes: int,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        local_digests: Callable[[str, list[str]], Mapping[str, str]] | None = None,
        local_destination: ReplicaRegistry | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._store, self._clients, self._settings = store, clients, settings
        self._local_destination = local_destination
        self._local_digests = local_digests
        self._manifest_max = manifest_max_bytes
        self._now = clock
        self._mounts: dict[str, _BoundedMounts] = {}
        self._listed = _ListedTags(monotonic)
        self._bandwidth = SharedBandwidth(settings.max_bytes_per_second)

    @property
    def store(self) -> ReplicationStore:
        return self._store

    @property
    def bandwidth(self) -> SharedBandwidth:
        """The cap shared by every copy this runner makes."""
        return self._bandwidth

    def _policy(self, policy_id: int) -> ReplicationPolicy:
        policy = self._store.policy(policy_id)
        if policy is None:
            raise LookupError(f"replication policy {policy_id} is gone")
        return policy

    def _sides(self, policy: ReplicationPolicy) -> tuple[ReplicaRegistry, ReplicaRegistry]:
        remote = self._clients.remote(policy.endpoint)
        if policy.direction is Direction.PUSH:
            return self._clients.local(), remote
        return remote, self._local_destination or self._clients.local()

    def record_start(self, request: ExecutionRequest, execution_id: str) -> None:
        """Write the execution row of a run started without one (a schedule's)."""
        if self._store.execution(execution_id) is not None:
            return
        policy = self._policy(request.policy_id)
        self._store.add_execution(
            Execution(
                id=execution_id,
                policy_id=policy.id,
                policy=policy.name,
                trigger=request.trigger,
                status=ExecutionStatus.RUNNING,
                started_at=self._now(),
                finished_at=None,
                total=0,
                succeeded=0,
                failed=0,
                skipped=0,
            )
        )

    async def plan(self, request: ExecutionRequest, execution_id: str) -> Plan:
        """Store the execution's tasks (once) and return the pending ones.

        Without tasks in the request, the source is listed: its repositories that the
        filters keep, and their tags that the filters keep. With no task left to run, the
        execution is closed here (if still ``running``) and the plan carries its status.
        A ``paged`` request gets the first ``tasks_per_page`` pending tasks and
        ``more`` set when others follow (:meth:`next_tasks` pages on).
        """
        policy = await asyncio.to_thread(self._policy, request.policy_id)
        stored = await asyncio.to_thread(self._store.tasks, execution_id)
        if not stored:
            planned = list(request.tasks)
            if not planned and request.trigger is not TriggerKind.EVENT:
                planned = await self._list(policy)
            stored = await asyncio.to_thread(self._store.add_tasks, execution_id, planned)
        pending = [t for t in stored if t.status is TaskStatus.PENDING]
        closed: str | None = None
        if not pending:
            # NOTE: nothing to run (all in place): close here, one activity fewer
            status = overall_status(stored)
            now = self._now()
            if await asyncio.to_thread(self._store.finish_running, execution_id, status, now):
                closed = str(status)
        settings = self._settings
        pending, more = first_page(pending, request.paged, settings.tasks_per_page)
        return Plan(
            execution_id,
            policy.name,
            policy.concurrency,
            [t.id for t in pending],
            [_names(t.source) for t in pending],
            RetryShape(
                settings.retry_initial_seconds,
                settings.retry_max_seconds,
                settings.retry_attempts,
                settings.artifact_timeout_seconds,
                settings.heartbeat_seconds,
            ),
            closed,
            more,
            settings.tasks_per_page,
            settings.tasks_per_run,
        )

    def next_tasks(self, page: PageRequest) -> TaskPage:
        """The execution's pending tasks after ``page.after``: at most ``page.limit``."""
        found = self._store.pending_tasks(page.execution_id, page.after, page.limit + 1)
        shown, more = split_page(found, page.limit)
        return TaskPage([t.id for t in shown], [_names(t.source) for t in shown], more)

    async def _list(self, policy: ReplicationPolicy) -> list[PlannedTask]:
        """The tasks of the selected repositories' selected tags, settled.

        Each repository's tags are compared as soon as they are listed (no wait for the
        whole catalog's lists); every request shares one bound of parallel requests.
        """
        source, destination = self._sides(policy)
        selected = [r for r in sorted(await source.catalog()) if policy.selects(r, None)]
        gate = asyncio.Semaphore(_SETTLE_PARALLELISM)

        async def one(repository: str) -> list[PlannedTask]:
            async with gate:
                tags = frozenset(await source.tags(repository))
            self._listed.keep(_side(policy), repository, tags)
            target = policy.destination(repository)
            planned = [
                PlannedTask(TaskOperation.COPY, repository, target, tag)
                for tag in sorted(tags)
                if policy.selects(repository, tag)
            ]
            local = self._local_tags(policy, target, planned)
            settled = (
                self._settle(policy, source, destination, task, tags, gate, local)
                for task in planned
            )
            return list(await asyncio.gather(*settled))

        return [task for found in await asyncio.gather(*map(one, selected)) for task in found]

    async def _settle(
        self,
        policy: ReplicationPolicy,
        source: ReplicaRegistry,
        destination: ReplicaRegistry,
        task: PlannedTask,
        tags: frozenset[str],
        gate: asyncio.Semaphore,
        local: asyncio.Future[Mapping[str, str]] | None,
    ) -> PlannedTask:
        """The task, marked when its artifact is in place already.

        A run with nothing new then starts no copy at all. Both sides are asked at once
        (``HEAD``); a pull's destination is this installation, whose own store answers
        without a request when the runner has it (``local``: one read for the repository's
        planned tags, shared by its tasks). A subject with
        referrers at the source is never marked: its copy checks them. The source's tags
        were just listed (``tags``), so referrers kept under tags (the referrers tag
        schema, cosign's ``.sig``/``.att``/``.sbom``) are found in that list, not asked for.
        """
        async with gate:
            try:
                there, here = await asyncio.gather(
                    source.head_manifest(task.source, task.reference),
                    self._destination_digest(destination, task, local),
                )
                if here is None or there.digest != here:
                    return task
                if policy.referrers and await has_referrers(
                    source, task.source, there.digest, tags
                ):
                    return task
            except UpstreamError:
                return task
            return replace(task, digest=there.digest, in_place=True)

    def _local_tags(
        self, policy: ReplicationPolicy, repository: str, planned: list[PlannedTask]
    ) -> asyncio.Future[Mapping[str, str]] | None:
        """The read of the planned tags' digests in this installation's ``repository``.

        Started at once (one read on a worker thread for all of them) when the
        destination is this installation's store; ``None`` when it is asked by ``HEAD``.
        """
        if policy.direction is not Direction.PULL or self._local_digests is None or not planned:
            return None
        tags = [task.reference for task in planned]
        return asyncio.ensure_future(asyncio.to_thread(self._local_digests, repository, tags))

    @staticmethod
    async def _destination_digest(
        destination: ReplicaRegistry,
        task: PlannedTask,
        local: asyncio.Future[Mapping[str, str]] | None,
    ) -> str | None:
        """The digest the destination's tag names (``None``: none here, as far as known)."""
        if local is not None:
            return (await local).get(task.reference)
        return (await destination.head_manifest(task.destination, task.reference)).digest

    async def copy(
        self,
        policy_id: int,
        task_id: int,
        resume: dict[str, Any] | None,
        progress: Callable[[dict[str, Any]], None],
    ) -> TaskResult:
        """Copy (or delete) one task's artifact; the result is recorded on its row.

        Raises the client's errors: :class:`core.upstream_ports.UpstreamUnavailableError`
        is worth a retry (the destination or source is away), the others are final.
        """
        policy = await asyncio.to_thread(self._policy, policy_id)
        task = await asyncio.to_thread(self._task, task_id)
        if task.status is not TaskStatus.PENDING:
            return TaskResult(
                task.status,
                task.digest,
                task.bytes_sent,
                task.blobs_copied,
                task.blobs_skipped,
                task.error,
            )
        source, destination = self._sides(policy)
        if task.operation is TaskOperation.DELETE:
            result = await self._delete(policy, task, source, destination)
            await asyncio.to_thread(self._store.record_task, task.id, result, self._now())
            return result
        mounts = self._mounts.setdefault(_side(policy), _BoundedMounts())
        copier = ArtifactCopier(
            source,
            destination,
            CopyOptions(
                override=policy.override,
                referrers=policy.referrers,
                artifact_kind=policy.artifact_kind,
                bandwidth_kbps=policy.bandwidth_kbps,
                chunk_size=self._settings.chunk_size,
                manifest_max_bytes=self._manifest_max,
                referrer_depth=self._settings.referrer_depth,
            ),
            progress=progress,
            resume=resume,
            mounts=mounts,
            shared=self._bandwidth,
            source_tags=self._listed.fresh(_side(policy), task.source),
        )
        result = await copier.copy(task.source, task.destination, task.reference)
        await asyncio.to_thread(self._store.record_task, task.id, result, self._now())
        return result

    async def _delete(
        self,
        policy: ReplicationPolicy,
        task: ReplicationTask,
        source: ReplicaRegistry,
        destination: ReplicaRegistry,
    ) -> TaskResult:
        """Replicate a deletion (``core.replication_delete``).

        Another destination tag does not keep a shared manifest from being deleted by
        digest when this execution deletes it too, or when the policy selects it and the
        source no longer has it.
        """
        siblings = await asyncio.to_thread(self._store.tasks, task.execution_id)
        companions = {
            t.reference
            for t in siblings
            if t.operation is TaskOperation.DELETE
            and t.destination == task.destination
            and t.id != task.id
            and not is_digest(t.reference)
        }
        kept = set(await source.tags(task.source))

        def released(tag: str) -> bool:
            if tag in companions:
                return True
            return policy.selects(task.source, tag) and tag not in kept

        deleter = ArtifactDeleter(destination)
        return await deleter.delete(task.destination, task.reference, task.digest, released)

    def fail(self, task_id: int, reason: str, bytes_sent: int = 0) -> None:
        """Record a task that failed for good (after its last attempt)."""
        task = self._task(task_id)
        if task.status is TaskStatus.PENDING:
            self._store.record_task(
                task_id,
                TaskResult(TaskStatus.FAILED, task.digest, bytes_sent, error=reason),
                self._now(),
            )

    def interrupted(self, task_id: int, bytes_sent: int) -> None:
        """Record a task whose copy a stop interrupted (what it had sent so far)."""
        task = self._task(task_id)
        if task.status is TaskStatus.PENDING:
            self._store.record_task(
                task_id,
                TaskResult(
                    TaskStatus.STOPPED, task.digest, bytes_sent, error="stopped during the copy"
                ),
                self._now(),
            )

    def stop(self, execution_id: str, reason: str | None) -> Execution | None:
        """Close a stopped execution: the tasks that did not run are marked ``stopped``.

        ``reason``: the one the stop's cancellation carried (``None``: keep the one the
        stop request recorded).
        """
        return self._store.stop_execution(execution_id, reason, self._now())

    def finish(self, execution_id: str, reason: str | None) -> Execution | None:
        """Close the execution with the status its tasks give (``failed`` with a reason).

        An execution already closed as ``stopped`` stays so.
        """
        current = self._store.execution(execution_id)
        if current is not None and current.status is ExecutionStatus.STOPPED:
            return current
        tasks: list[ReplicationTask] = self._store.tasks(execution_id)
        status = ExecutionStatus.FAILED if reason else overall_status(tasks)
        return self._store.finish_execution(execution_id, status, reason, self._now())

    def _task(self, task_id: int) -> ReplicationTask:
        task = self._store.task(task_id)
        if task is None:
            raise LookupError(f"replication task {task_id} is gone")
        return task


def _side(policy: ReplicationPolicy) -> str:
    """The key of what a policy's copies share in this process (mounts, tag lists)."""
    return f"{policy.direction}:{policy.endpoint}"


def _names(repository: str) -> tuple[str, str]:
    return repository.partition("/")[0], repository
