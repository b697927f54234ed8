"""Tables of replication policies, executions and their tasks (``core.replication``)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import UniqueConstraint
from sqlmodel import Field, SQLModel


class ReplicationPolicyRow(SQLModel, table=True):
    """A replication policy (names unique); the endpoint is named, not referenced."""

    __tablename__ = "replication_policy"
    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=63, unique=True)
    description: str = Field(default="", max_length=1024)
    enabled: bool = True
    direction: str = Field(max_length=8)
    endpoint: str = Field(max_length=63, index=True)
    repositories: str = Field(max_length=255)
    tags: str = Field(max_length=255)
    artifact_kind: str = Field(max_length=16)
    referrers: bool = True
    flatten: int = 0
    prefix: str = Field(default="", max_length=255)
    trigger: str = Field(max_length=16)
    cron: str | None = Field(default=None, max_length=128)
    deletions: bool = False
    override: bool = True
    bandwidth_kbps: int = 0
    concurrency: int = 4
    created_at: datetime
    updated_at: datetime


class ReplicationExecutionRow(SQLModel, table=True):
    """One run of a policy; its id is its workflow id."""

    __tablename__ = "replication_execution"
    id: str = Field(primary_key=True, max_length=64)
    policy_id: int = Field(index=True)
    policy: str = Field(max_length=63)
    trigger: str = Field(max_length=16)
    status: str = Field(max_length=16)
    started_at: datetime = Field(index=True)
    finished_at: datetime | None = None
    total: int = 0
    succeeded: int = 0
    failed: int = 0
    skipped: int = 0
    reason: str | None = Field(default=None, max_length=2048)


class ReplicationTaskRow(SQLModel, table=True):
    """One artifact of an execution and its result."""

    __tablename__ = "replication_task"
    __table_args__ = (UniqueConstraint("execution_id", "operation", "source", "reference"),)
    id: int | None = Field(default=None, primary_key=True)
    execution_id: str = Field(
        max_length=64, foreign_key="replication_execution.id", index=True, ondelete="CASCADE"
    )
    operation: str = Field(max_length=8)
    source: str = Field(max_length=255)
    destination: str = Field(max_length=255)
    reference: str = Field(max_length=255)
    digest: str | None = Field(default=None, max_length=255)
    status: str = Field(max_length=16)
    bytes_sent: int = 0
    blobs_copied: int = 0
    blobs_skipped: int = 0
    error: str | None = Field(default=None, max_length=2048)
    started_at: datetime | None = None
    finished_at: datetime | None = None
