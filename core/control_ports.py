"""Ports of the control plane: the repositories of the outbox, GC, policies, quotas, runs.

``core.ports.UnitOfWork`` exposes these next to the data plane's repositories, so every
transaction can write an outbox event or a review-queue row together with the change
that causes it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from core.control_records import BlobReview, GcRunRecord, ManifestReview, OutboxRecord, Usage


class OutboxRepository(Protocol):
    """The transactional outbox: events commit with the change that causes them."""

    def add(
        self,
        kind: str,
        *,
        project_id: int | None = None,
        repository: str | None = None,
        digest: str | None = None,
        tag: str | None = None,
        data: str | None = None,
    ) -> None:
        """Append an event to the outbox (commits with the caller's transaction)."""

    def keyed_exists(self, kind: str, project_id: int, key: str) -> bool:
        """Whether the project has an event of ``kind`` whose JSON data has this ``key``.

        The idempotency check of events written at most once per key (lock what the key
        belongs to first, so two writers cannot both find none).
        """

    def pending(self, limit: int) -> list[OutboxRecord]:
        """The oldest events not yet dispatched, in id order."""

    def mark_dispatched(self, event_ids: list[int], now: datetime) -> None: ...
    def claim_pending(self, event_ids: list[int], now: datetime) -> list[int]:
        """Mark those of the events not yet dispatched as dispatched; return their ids.

        A concurrent claim of the same events waits for this transaction and then finds
        them dispatched, so of two dispatchers that read the same pending events exactly
        one gets each event.
        """

    def prune_dispatched(self, dispatched_before: datetime, limit: int) -> int:
        """Delete up to ``limit`` events dispatched before the time, oldest first.

        Events not yet dispatched, or still queued for a subscriber (not yet in a
        batch), are never deleted. Returns how many rows went.
        """


class ReviewQueueRepository(Protocol):
    """The data plane's side of the GC review queues (see ``core.services.gc``)."""

    def enqueue_blob_review(
        self, project_id: int, storage_id: str, digest: str, event: str, review_after: datetime
    ) -> None:
        """Insert or re-arm a blob review (never lowers a tombstone back to review)."""

    def hold_reviews(
        self,
        project_id: int,
        blob_digests: list[str],
        repository_id: int,
        manifest_digests: list[str],
    ) -> None:
        """Keep GC off the pending reviews of these blobs and manifests until the commit.

        Takes shared row locks, the blob rows before the manifest rows, each in digest
        order (none on a database whose writers take turns): concurrent holders never
        wait for one another; the collector passes held rows by, and its next look at
        them reads the references this transaction wrote.
        """

    def blob_tombstoned(self, project_id: int, digest: str) -> bool:
        """Whether GC is deleting this blob's object (locks the review row)."""

    def blob_review_state(self, project_id: int, digest: str) -> str | None:
        """``review``, ``deleting`` or ``None`` (locks the review row)."""

    def enqueue_manifest_review(
        self, repository_id: int, digest: str, event: str, review_after: datetime
    ) -> None: ...

    def touch_manifest_reviews(
        self, repository_id: int, digests: list[str], review_after: datetime
    ) -> None:
        """Postpone pending reviews of these manifests, taking their row locks in digest order."""


class CollectorRepository(Protocol):
    """The collector's side of the GC review queues."""

    def due_blob_reviews(self, due: datetime, limit: int, lock: bool) -> list[BlobReview]: ...
    def blob_tombstones(
        self, limit: int, lock: bool, *, quarantined: bool = False
    ) -> list[BlobReview]:
        """Tombstones whose object is to be deleted: the quarantined ones, or the others."""

    def quarantine_blob_tombstones(self, project_id: int, digests: list[str]) -> None:
        """Mark tombstones whose objects could not be deleted (they stay tombstones)."""

    def referenced_blobs(self, project_id: int, digests: list[str]) -> set[str]:
        """Those of ``digests`` that some manifest of the project references."""

    def blob_sizes(self, project_id: int, digests: list[str]) -> dict[str, int]:
        """The sizes the blob rows of ``digests`` record (absent rows are left out).

        Its keys are the digests of ``digests`` that have a blob row in the project.
        """

    def delete_blob_rows(self, project_id: int, digests: list[str]) -> None:
        """Delete the blob rows of ``digests`` and their links into repositories."""

    def set_blob_tombstones(self, project_id: int, sizes: dict[str, int]) -> None:
        """Turn the reviews of these digests into tombstones, recording each size."""

    def drop_blob_review(self, project_id: int, digest: str) -> None: ...
    def drop_blob_reviews(self, project_id: int, digests: list[str]) -> None: ...
    def due_manifest_reviews(
        self, due: datetime, limit: int, lock: bool
    ) -> list[ManifestReview]: ...
    def manifest_kept_by(self, repository_id: int, digest: str) -> str | None:
        """Why a manifest must stay (``tagged``, ``child of an index``, ...) or ``None``."""

    def drop_manifest_review(self, repository_id: int, digest: str) -> None: ...
    def tenants(self) -> list[tuple[int, str]]: ...
    def tombstoned_blobs(self, storage_id: str, digests: list[str]) -> set[str]:
        """Those of ``digests`` whose review in the tenant is a tombstone (``deleting``)."""

    def see_orphan(self, storage_id: str, digest: str, now: datetime) -> datetime:
        """Record the first sighting of an object without a row; return that time."""

    def forget_orphans(self, storage_id: str, digests: list[str]) -> None: ...


class PolicyRepository(Protocol):
    """Project policy documents and the reads that apply them (quotas, retention)."""

    def get(self, project_id: int, kind: str) -> str | None: ...
    def set(self, project_id: int, kind: str, body: str, now: datetime) -> None: ...
    def usage(self, project_id: int) -> Usage: ...
    def linked_blob_ids_in_project(self, project_id: int, digests: list[str]) -> list[int]:
        """Ids of those blobs that some repository of the project links."""

    def quota_projects(self) -> list[tuple[int, str, str]]:
        """(project id, name, quota body) of every project with a quota."""

    def linked_blob_sizes(self, project_id: int) -> list[tuple[str, int]]:
        """(digest, size) of the distinct blobs the project's repositories link."""

    def policy_projects(self, kind: str) -> list[str]:
        """Names of the projects holding a policy document of ``kind``."""

    def artifacts(
        self, repository_id: int
    ) -> list[tuple[str, datetime, list[str], bool, datetime | None]]:
        """(digest, pushed at, tags, dependent, pulled at) of every manifest of a repository.

        ``pushed at`` is the latest of the manifest's and its tags' push times;
        ``dependent`` is true for manifests listed by an index or with a subject;
        ``pulled at`` is the manifest's recorded last pull (``None``: never pulled).
        """


class RunRepository(Protocol):
    """Control-plane runs (GC and retention) and their reports."""

    def add(self, run: GcRunRecord) -> bool: ...
    def finish(self, run_id: str, state: str, report: str, now: datetime) -> None: ...
    def get(self, run_id: str) -> GcRunRecord | None: ...
    def get_for_update(self, run_id: str) -> GcRunRecord | None:
        """The run's row, locked until the transaction ends (its progress is added to)."""

    def latest(self, kind: str, project: str | None, limit: int) -> list[GcRunRecord]:
        """The newest runs of ``kind`` (of ``project`` when given), newest first."""
