"""Plain value records the metadata store hands to the domain (never ORM rows)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import NamedTuple


@dataclass(frozen=True, slots=True)
class ProjectRecord:
    id: int
    name: str
    public: bool
    storage_id: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class RepositoryRecord:
    id: int
    project_id: int
    name: str
    #: The owning project's tenant key in the blob store.
    storage_id: str


@dataclass(frozen=True, slots=True)
class PushTarget:
    """Where a push goes before the repository necessarily exists (uploads, mounts).

    A repository's row is created only once it holds a linked blob or a manifest.
    """

    project_id: int
    name: str
    #: The project's tenant key in the blob store.
    storage_id: str


@dataclass(frozen=True, slots=True)
class BlobRecord:
    id: int
    project_id: int
    digest: str
    size: int


@dataclass(frozen=True, slots=True)
class ManifestRecord:
    id: int
    repository_id: int
    digest: str
    media_type: str
    artifact_type: str | None
    subject_digest: str | None
    annotations: str | None
    size: int
    payload: bytes
    #: When the manifest was last pulled, as stored (``None``: never).
    pulled_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class UploadRecord:
    id: str
    project_id: int
    #: The target repository's full name (its row may not exist yet).
    repository: str
    offset: int
    created_at: datetime
    expires_at: datetime
    #: How many bytes ``hash_state`` covers (``None``: no saved running hash).
    hash_offset: int | None = None
    #: The running SHA-256 after ``hash_offset`` bytes (``core.resumable_hash``), opaque.
    hash_state: bytes | None = None


@dataclass(frozen=True, slots=True)
class UserRecord:
    id: int
    username: str
    password_hash: str
    is_admin: bool
    disabled: bool


class StoredRef(NamedTuple):
    """A stored blob or manifest a descriptor names: its row id and its size in bytes."""

    id: int
    size: int


@dataclass(frozen=True, slots=True)
class PushLookup:
    """What a manifest push finds stored in its repository (``ManifestRepository.push_lookup``).

    ``blobs``: the listed blobs linked in the repository; ``manifests``: the listed
    manifests stored in it; ``tag_target``: the digest the pushed tag names now.
    """

    blobs: dict[str, StoredRef]
    manifests: dict[str, StoredRef]
    tag_target: str | None


@dataclass(frozen=True, slots=True)
class NewManifest:
    """A validated manifest ready to be stored."""

    digest: str
    media_type: str
    artifact_type: str | None
    subject_digest: str | None
    annotations: str | None
    payload: bytes
    blob_ids: tuple[int, ...]
    child_ids: tuple[int, ...]
