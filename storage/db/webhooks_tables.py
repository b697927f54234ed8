"""Tables of webhook policies, their deliveries and delivery attempts (``core.webhooks``)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Index, UniqueConstraint
from sqlmodel import Field, SQLModel


class WebhookPolicyRow(SQLModel, table=True):
    """A webhook policy; ``project_id`` ``None``: system-wide. Secrets are sealed."""

    __tablename__ = "webhook_policy"
    __table_args__ = (UniqueConstraint("project_id", "name"),)
    id: int | None = Field(default=None, primary_key=True)
    key: str = Field(max_length=32, unique=True)
    project_id: int | None = Field(
        default=None, foreign_key="project.id", index=True, ondelete="CASCADE"
    )
    name: str = Field(max_length=128)
    url: str = Field(max_length=2048)
    #: JSON list of event types.
    events: str
    payload_format: str = Field(max_length=32)
    enabled: bool = True
    paused: bool = False
    paused_reason: str | None = Field(default=None, max_length=1024)
    failing_since: datetime | None = None
    secret_sealed: str = Field(max_length=512)
    previous_secret_sealed: str | None = Field(default=None, max_length=512)
    previous_secret_until: datetime | None = None
    auth_header_sealed: str | None = Field(default=None, max_length=8192)
    created_by: str = Field(max_length=255)
    created_at: datetime
    updated_at: datetime


class WebhookDeliveryRow(SQLModel, table=True):
    """One event to one policy; generation 0 first, one more per redelivery."""

    __tablename__ = "webhook_delivery"
    __table_args__ = (
        UniqueConstraint("policy_id", "event_id", "generation"),
        Index("ix_webhook_delivery_pending", "policy_id", "status", "id"),
    )
    id: int | None = Field(default=None, primary_key=True)
    policy_id: int = Field(foreign_key="webhook_policy.id", ondelete="CASCADE")
    event_id: int
    generation: int = 0
    type: str = Field(max_length=64)
    repository: str | None = Field(default=None, max_length=255)
    #: The event by value (JSON), kept after the outbox row is pruned.
    event: str
    event_time: datetime = Field(index=True)
    status: str = Field(max_length=16)
    attempts: int = 0
    next_attempt_at: datetime | None = None
    last_status_code: int | None = None
    last_error: str | None = Field(default=None, max_length=1024)
    created_at: datetime
    finished_at: datetime | None = Field(default=None, index=True)


class WebhookAttemptRow(SQLModel, table=True):
    """One HTTP attempt of a delivery."""

    __tablename__ = "webhook_attempt"
    id: int | None = Field(default=None, primary_key=True)
    delivery_id: int = Field(foreign_key="webhook_delivery.id", index=True, ondelete="CASCADE")
    attempted_at: datetime
    status_code: int | None = None
    latency_ms: int
    error: str | None = Field(default=None, max_length=1024)
    response_excerpt: str | None = None
