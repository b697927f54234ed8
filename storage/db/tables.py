"""SQLModel tables: the metadata database, the registry's only source of truth.

Blobs are per project (dedup inside a tenant, never across). A blob is visible in a
repository only through a ``repository_blob`` link row. Manifests are stored whole in
the database; ``manifest_blob`` and ``manifest_child`` record what each references.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Column, Index, LargeBinary, UniqueConstraint
from sqlmodel import Field, SQLModel

# Imported for their table definitions: control-plane runs, registry endpoints, webhooks.
import storage.db.backup_tables
import storage.db.control_tables
import storage.db.endpoint_tables
import storage.db.preheat_tables
import storage.db.promotion_rule_tables
import storage.db.replication_tables
import storage.db.scan_tables
import storage.db.scanner_tables
import storage.db.trust_tables
import storage.db.webhooks_tables  # noqa: F401
from storage.db.login_tables import LoginAttempt  # noqa: F401  (registers the login counts)
from storage.db.vulndb_tables import VulnRecord  # noqa: F401  (registers the vulnerability data)


class Project(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=63, unique=True, index=True)
    public: bool = False
    #: Tenant key of the project's storage (prefix or bucket); never reused.
    storage_id: str = Field(max_length=64, unique=True)
    created_at: datetime


class Repository(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    project_id: int = Field(foreign_key="project.id", index=True, ondelete="CASCADE")
    name: str = Field(max_length=255, unique=True)
    created_at: datetime


class Blob(SQLModel, table=True):
    __table_args__ = (UniqueConstraint("project_id", "digest"),)
    id: int | None = Field(default=None, primary_key=True)
    project_id: int = Field(foreign_key="project.id", ondelete="CASCADE")
    digest: str = Field(max_length=200)
    size: int = Field(sa_column=Column(BigInteger, nullable=False))
    created_at: datetime


class RepositoryBlob(SQLModel, table=True):
    __tablename__ = "repository_blob"
    repository_id: int = Field(foreign_key="repository.id", primary_key=True, ondelete="CASCADE")
    blob_id: int = Field(foreign_key="blob.id", primary_key=True, index=True, ondelete="CASCADE")
    created_at: datetime


class Manifest(SQLModel, table=True):
    __table_args__ = (
        UniqueConstraint("repository_id", "digest"),
        Index("ix_manifest_subject", "repository_id", "subject_digest"),
    )
    id: int | None = Field(default=None, primary_key=True)
    repository_id: int = Field(foreign_key="repository.id", ondelete="CASCADE")
    digest: str = Field(max_length=200)
    media_type: str = Field(max_length=255)
    artifact_type: str | None = Field(default=None, max_length=255)
    subject_digest: str | None = Field(default=None, max_length=200)
    annotations: str | None = None
    size: int
    payload: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    created_at: datetime
    #: Last ``GET`` of the manifest on ``/v2``, written at most once per configured
    #: granularity (``None``: never pulled since pull times are recorded).
    pulled_at: datetime | None = None


class Tag(SQLModel, table=True):
    __table_args__ = (UniqueConstraint("repository_id", "name"),)
    id: int | None = Field(default=None, primary_key=True)
    repository_id: int = Field(foreign_key="repository.id", ondelete="CASCADE")
    name: str = Field(max_length=128)
    manifest_id: int = Field(foreign_key="manifest.id", index=True, ondelete="CASCADE")
    updated_at: datetime


class ManifestBlob(SQLModel, table=True):
    __tablename__ = "manifest_blob"
    manifest_id: int = Field(foreign_key="manifest.id", primary_key=True, ondelete="CASCADE")
    blob_id: int = Field(foreign_key="blob.id", primary_key=True, index=True, ondelete="CASCADE")


class ManifestChild(SQLModel, table=True):
    __tablename__ = "manifest_child"
    parent_id: int = Field(foreign_key="manifest.id", primary_key=True, ondelete="CASCADE")
    child_id: int = Field(
        foreign_key="manifest.id", primary_key=True, index=True, ondelete="CASCADE"
    )


class Upload(SQLModel, table=True):
    id: str = Field(primary_key=True, max_length=64)
    project_id: int = Field(foreign_key="project.id", index=True, ondelete="CASCADE")
    #: The target repository's full name: an upload does not create the repository.
    repository: str = Field(max_length=255)
    #: Durable size of the upload's data; every append is checked against it.
    offset: int = Field(default=0, sa_column=Column(BigInteger, nullable=False, default=0))
    created_at: datetime
    expires_at: datetime = Field(index=True)
    #: How many bytes ``hash_state`` covers; written with ``offset`` in one statement.
    hash_offset: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True))
    #: The running SHA-256 after ``hash_offset`` bytes (``core.resumable_hash``), opaque.
    hash_state: bytes | None = Field(default=None, sa_column=Column(LargeBinary, nullable=True))


class User(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    username: str = Field(max_length=255, unique=True)
    password_hash: str = Field(max_length=512)
    is_admin: bool = False
    disabled: bool = False
    created_at: datetime
    email: str | None = Field(default=None, max_length=254)
    full_name: str | None = Field(default=None, max_length=255)


class SigningKey(SQLModel, table=True):
    __tablename__ = "signing_key"
    kid: str = Field(primary_key=True, max_length=64)
    private_pem: str
    created_at: datetime
