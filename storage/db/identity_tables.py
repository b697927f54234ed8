"""SQLModel tables of identity, access control and audit (revision ``0002_identity``).

Secrets (robot secrets, personal access tokens) are stored only as slow hashes; the
audit log is append-only, each row carrying the hash of the one before it.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Column, Index, Text, UniqueConstraint
from sqlmodel import Field, SQLModel


class ProjectMember(SQLModel, table=True):
    __tablename__ = "project_member"
    __table_args__ = (UniqueConstraint("project_id", "kind", "name"),)
    id: int | None = Field(default=None, primary_key=True)
    project_id: int = Field(foreign_key="project.id", index=True, ondelete="CASCADE")
    #: ``user``, ``group`` or ``robot``.
    kind: str = Field(max_length=16)
    name: str = Field(max_length=255)
    role: str = Field(max_length=32)
    created_at: datetime


class Robot(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    #: Full login name: ``robot$<project>+<name>`` or ``robot$<name>`` (system level).
    name: str = Field(max_length=255, unique=True)
    project_id: int | None = Field(
        default=None, foreign_key="project.id", index=True, ondelete="CASCADE"
    )
    secret_hash: str = Field(max_length=512)
    #: JSON list of ``{"repository": pattern, "actions": [...]}``.
    permissions: str = Field(sa_column=Column(Text, nullable=False))
    expires_at: datetime | None = None
    disabled: bool = False
    creator: str = Field(max_length=512)
    created_at: datetime


class PersonalToken(SQLModel, table=True):
    __tablename__ = "personal_token"
    __table_args__ = (UniqueConstraint("owner", "name"),)
    id: int | None = Field(default=None, primary_key=True)
    #: Public lookup part of the token (``mrp_<key>_<secret>``).
    key: str = Field(max_length=32, unique=True)
    owner: str = Field(max_length=255, index=True)
    #: ``local`` or ``oidc``.
    owner_kind: str = Field(max_length=16)
    name: str = Field(max_length=128)
    secret_hash: str = Field(max_length=512)
    #: JSON list of actions (``pull``, ``push``, ``delete``, ``api``).
    scopes: str = Field(sa_column=Column(Text, nullable=False))
    expires_at: datetime | None = None
    revoked: bool = False
    created_at: datetime


class TrustedIssuer(SQLModel, table=True):
    __tablename__ = "trusted_issuer"
    id: int | None = Field(default=None, primary_key=True)
    issuer: str = Field(max_length=512, unique=True)
    jwks_url: str | None = Field(default=None, max_length=1024)
    discovery_url: str | None = Field(default=None, max_length=1024)
    audience: str = Field(max_length=255)
    subject_claim: str = Field(max_length=64)
    subject_pattern: str = Field(max_length=255)
    #: JSON list of ``{"repository": pattern, "actions": [...]}``.
    permissions: str = Field(sa_column=Column(Text, nullable=False))
    created_at: datetime


class OidcLogin(SQLModel, table=True):
    __tablename__ = "oidc_login"
    state: str = Field(primary_key=True, max_length=64)
    verifier: str = Field(max_length=128)
    nonce: str = Field(max_length=64)
    created_at: datetime = Field(index=True)


class AuditEvent(SQLModel, table=True):
    __tablename__ = "audit_event"
    __table_args__ = (Index("ix_audit_event_project_time", "project", "time"),)
    id: int | None = Field(default=None, primary_key=True)
    time: datetime = Field(index=True)
    request_id: str = Field(max_length=64)
    actor: str = Field(max_length=512)
    actor_kind: str = Field(max_length=16)
    auth_method: str = Field(max_length=32)
    action: str = Field(max_length=64)
    resource: str = Field(max_length=1024)
    project: str | None = Field(default=None, max_length=63)
    result: str = Field(max_length=16)
    status: int
    client: str = Field(max_length=64)
    user_agent: str = Field(max_length=512)
    prev_hash: str = Field(max_length=64)
    hash: str = Field(max_length=64)


class AuditHead(SQLModel, table=True):
    """One row: the newest event's id and hash (the lock appends serialise on)."""

    __tablename__ = "audit_head"
    id: int = Field(primary_key=True)
    last_id: int
    last_hash: str = Field(max_length=64)


class AuditAnchor(SQLModel, table=True):
    """Left by a retention purge: the chain continues from ``hash`` after ``through_id``."""

    __tablename__ = "audit_anchor"
    id: int | None = Field(default=None, primary_key=True)
    through_id: int
    hash: str = Field(max_length=64)
    created_at: datetime
