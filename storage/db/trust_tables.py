"""Tables of content trust: project trust policies and verification results."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Index
from sqlmodel import Field, SQLModel


class TrustPolicyRow(SQLModel, table=True):
    """A project's trust policy document (JSON); ``revision`` grows on each change."""

    __tablename__ = "trust_policy"
    project_id: int = Field(foreign_key="project.id", primary_key=True, ondelete="CASCADE")
    document: str
    revision: int
    updated_by: str = Field(max_length=255)
    updated_at: datetime


class TrustResultRow(SQLModel, table=True):
    """One verified (or refused) signature or attestation of an image, per signer."""

    __tablename__ = "trust_result"
    __table_args__ = (Index("ix_trust_result_subject", "repository", "subject_digest"),)
    id: int | None = Field(default=None, primary_key=True)
    project_id: int = Field(foreign_key="project.id", index=True, ondelete="CASCADE")
    repository: str = Field(max_length=255)
    subject_digest: str = Field(max_length=200)
    artifact_digest: str = Field(max_length=200)
    entry: int
    location: str = Field(max_length=16)
    kind: str = Field(max_length=16)
    format: str = Field(max_length=32)
    predicate_type: str | None = Field(default=None, max_length=512)
    signer: str | None = Field(default=None, max_length=64)
    fingerprint: str | None = Field(default=None, max_length=80)
    verified: bool
    reason: str = Field(max_length=1024)
    #: What the verified content says (identity, builder id, sources), JSON.
    facts: str
    policy_revision: int
    verified_at: datetime
