"""Tables of P2P provider instances, preheat policies, executions and tasks (``core.preheat``)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Index, UniqueConstraint, text
from sqlmodel import Field, SQLModel


class P2pInstanceRow(SQLModel, table=True):
    """A provider instance (names unique, at most one the default); the secret is sealed."""

    __tablename__ = "p2p_instance"
    __table_args__ = (
        Index(
            "ix_p2p_instance_one_default",
            "is_default",
            unique=True,
            postgresql_where=text("is_default"),
            sqlite_where=text("is_default"),
        ),
    )
    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=63, unique=True)
    description: str = Field(default="", max_length=1024)
    vendor: str = Field(max_length=16)
    endpoint: str = Field(max_length=2048)
    auth_mode: str = Field(max_length=16)
    username: str = Field(default="", max_length=255)
    secret_sealed: str | None = Field(default=None, max_length=8192)
    enabled: bool = True
    created_at: datetime
    updated_at: datetime
    is_default: bool = False
    insecure: bool = False


class PreheatPolicyRow(SQLModel, table=True):
    """A project's preheat policy (names unique per project)."""

    __tablename__ = "preheat_policy"
    __table_args__ = (UniqueConstraint("project_id", "name"),)
    id: int | None = Field(default=None, primary_key=True)
    project_id: int = Field(foreign_key="project.id", index=True, ondelete="CASCADE")
    project: str = Field(max_length=63)
    name: str = Field(max_length=63)
    description: str = Field(default="", max_length=1024)
    instance_id: int = Field(foreign_key="p2p_instance.id", index=True)
    repositories: str = Field(max_length=255)
    tags: str = Field(max_length=255)
    signed_only: bool = False
    severity: str | None = Field(default=None, max_length=16)
    trigger: str = Field(max_length=16)
    cron: str | None = Field(default=None, max_length=128)
    scope: str = Field(max_length=32)
    #: Comma-separated scheduler cluster ids (empty: all).
    cluster_ids: str = Field(default="", max_length=1024)
    enabled: bool = True
    created_by: str = Field(max_length=255)
    created_at: datetime
    updated_at: datetime


class PreheatExecutionRow(SQLModel, table=True):
    """One run of a policy; its id is its workflow id."""

    __tablename__ = "preheat_execution"
    id: str = Field(primary_key=True, max_length=64)
    policy_id: int = Field(index=True)
    project_id: int = Field(index=True)
    policy: str = Field(max_length=63)
    trigger: str = Field(max_length=16)
    status: str = Field(max_length=16)
    started_at: datetime = Field(index=True)
    finished_at: datetime | None = None
    total: int = 0
    succeeded: int = 0
    failed: int = 0
    reason: str | None = Field(default=None, max_length=2048)


class PreheatTaskRow(SQLModel, table=True):
    """One candidate of an execution and its result."""

    __tablename__ = "preheat_task"
    __table_args__ = (UniqueConstraint("execution_id", "repository", "tag"),)
    id: int | None = Field(default=None, primary_key=True)
    execution_id: str = Field(
        max_length=64, foreign_key="preheat_execution.id", index=True, ondelete="CASCADE"
    )
    repository: str = Field(max_length=255)
    tag: str = Field(max_length=128)
    digest: str = Field(max_length=255)
    media_type: str = Field(default="", max_length=255)
    status: str = Field(max_length=16)
    job_id: str | None = Field(default=None, max_length=255)
    #: JSON list of the per-peer results.
    peers: str = ""
    error: str | None = Field(default=None, max_length=2048)
    finished_at: datetime | None = None
