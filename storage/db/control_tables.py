"""Control-plane tables: the transactional outbox, GC review queues, GC runs, policies.

The outbox and the review queues are written in the same transaction as the data-plane
change that causes them. Queue rows carry no foreign keys: they outlive the rows they
point at (a review of a deleted blob must still run), and the collector re-checks
everything under the row's lock before deleting.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Column, Index
from sqlmodel import Field, SQLModel


class OutboxEvent(SQLModel, table=True):
    __tablename__ = "outbox_event"
    __table_args__ = (Index("ix_outbox_event_pending", "dispatched_at", "id"),)
    id: int | None = Field(default=None, primary_key=True)
    kind: str = Field(max_length=64)
    project_id: int | None = None
    repository: str | None = Field(default=None, max_length=255)
    digest: str | None = Field(default=None, max_length=200)
    tag: str | None = Field(default=None, max_length=128)
    #: Extra JSON payload of the event.
    data: str | None = None
    created_at: datetime
    dispatched_at: datetime | None = None


class EventQueue(SQLModel, table=True):
    """An outbox event waiting for a subscriber's next batch (``core.subscribers``)."""

    __tablename__ = "event_queue"
    subscriber: str = Field(primary_key=True, max_length=32)
    event_id: int = Field(primary_key=True)
    #: When the event was written: a partial batch waits at most a bound after it.
    created_at: datetime


class EventBatchRow(SQLModel, table=True):
    """A batch of events for one subscriber and the run that delivers it."""

    __tablename__ = "event_batch"
    __table_args__ = (Index("ix_event_batch_open", "subscriber", "closed_at", "id"),)
    id: int | None = Field(default=None, primary_key=True)
    subscriber: str = Field(max_length=32)
    workflow_id: str = Field(max_length=512, unique=True)
    first_event_id: int
    last_event_id: int
    #: JSON list of the events (``core.event_batches.EventValue``), in outbox order.
    events: str
    created_at: datetime
    started_at: datetime | None = None
    closed_at: datetime | None = None
    #: How the run closed (Temporal's status name).
    outcome: str | None = Field(default=None, max_length=32)


class GcBlobReview(SQLModel, table=True):
    """A blob that may have lost its last reference; ``state`` is ``review`` or ``deleting``."""

    __tablename__ = "gc_blob_review"
    __table_args__ = (
        Index("ix_gc_blob_review_due", "review_after"),
        #: The collector's batches: oldest due reviews, and tombstones (migration 0027).
        Index("ix_gc_blob_review_queue", "state", "queued_at"),
    )
    project_id: int = Field(primary_key=True)
    digest: str = Field(primary_key=True, max_length=200)
    #: Tenant key of the project, kept so a tombstone can finish after the project row goes.
    storage_id: str = Field(max_length=64)
    state: str = Field(default="review", max_length=16)
    event: str = Field(max_length=32)
    queued_at: datetime
    review_after: datetime
    review_count: int = 0
    size: int = Field(default=0, sa_column=Column(BigInteger, nullable=False, default=0))


class GcManifestReview(SQLModel, table=True):
    """A manifest that may have lost its last tag or parent."""

    __tablename__ = "gc_manifest_review"
    __table_args__ = (Index("ix_gc_manifest_review_due", "review_after"),)
    repository_id: int = Field(primary_key=True)
    digest: str = Field(primary_key=True, max_length=200)
    event: str = Field(max_length=32)
    queued_at: datetime
    review_after: datetime
    review_count: int = 0


class GcOrphan(SQLModel, table=True):
    """An object seen in storage without a blob row; deleted once seen for the grace period."""

    __tablename__ = "gc_orphan"
    storage_id: str = Field(primary_key=True, max_length=64)
    digest: str = Field(primary_key=True, max_length=200)
    first_seen: datetime


class ControlRun(SQLModel, table=True):
    """One GC or retention run: its options, state and report."""

    __tablename__ = "control_run"
    id: str = Field(primary_key=True, max_length=128)
    #: ``gc`` or ``retention``.
    kind: str = Field(default="gc", max_length=16)
    #: The project a retention run covers (``None``: every project with a policy).
    project: str | None = Field(default=None, max_length=63)
    state: str = Field(max_length=16)
    dry_run: bool = False
    delete_untagged: bool = False
    review_delay_seconds: int | None = None
    #: JSON report (counters and, for dry runs, every candidate with its reason).
    report: str | None = None
    created_at: datetime
    finished_at: datetime | None = None


class ProjectPolicy(SQLModel, table=True):
    """One JSON policy document of a project: ``immutability``, ``retention`` or ``quota``."""

    __tablename__ = "project_policy"
    project_id: int = Field(foreign_key="project.id", primary_key=True, ondelete="CASCADE")
    kind: str = Field(primary_key=True, max_length=32)
    body: str
    updated_at: datetime
