"""Table of promotion rules (``core.promotion_rules``)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import UniqueConstraint
from sqlmodel import Field, SQLModel


class PromotionRuleRow(SQLModel, table=True):
    """A source project's promotion rule (names unique per project)."""

    __tablename__ = "promotion_rule"
    __table_args__ = (UniqueConstraint("project_id", "name"),)
    id: int | None = Field(default=None, primary_key=True)
    project_id: int = Field(foreign_key="project.id", index=True, ondelete="CASCADE")
    project: str = Field(max_length=63)
    name: str = Field(max_length=63)
    description: str = Field(default="", max_length=1024)
    repositories: str = Field(max_length=255)
    tags: str = Field(max_length=255)
    pusher: str | None = Field(default=None, max_length=255)
    pusher_kind: str | None = Field(default=None, max_length=16)
    target_project: str = Field(max_length=63)
    target_repository: str | None = Field(default=None, max_length=255)
    max_severity: str | None = Field(default=None, max_length=16)
    signed: bool = False
    builder: str | None = Field(default=None, max_length=1024)
    approval: bool = False
    approval_timeout_seconds: int
    wait_seconds: int = 0
    sign: bool = False
    enabled: bool = True
    created_by: str = Field(max_length=255)
    created_at: datetime
    updated_at: datetime
