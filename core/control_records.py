"""Value records of the control plane (outbox events, GC reviews and runs)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Final

#: The ``event`` of a blob tombstone whose object could not be deleted (a GC run retries
#: it once, then goes on; its report says why).
QUARANTINED: Final = "quarantined"


@dataclass(frozen=True, slots=True)
class OutboxRecord:
    id: int
    kind: str
    project_id: int | None
    repository: str | None
    digest: str | None
    tag: str | None
    data: str | None
    created_at: datetime


@dataclass(frozen=True, slots=True)
class BlobReview:
    project_id: int
    digest: str
    storage_id: str
    state: str
    event: str
    size: int


@dataclass(frozen=True, slots=True)
class ManifestReview:
    repository_id: int
    digest: str
    event: str
    #: ``None`` once the repository (or its project) is gone.
    project_id: int | None
    storage_id: str | None
    #: The repository's full name (``<project>/<path>``); ``None`` once it is gone.
    repository: str | None = None


@dataclass(frozen=True, slots=True)
class GcRunRecord:
    """A control-plane run (GC or retention)."""

    id: str
    state: str
    dry_run: bool
    delete_untagged: bool
    review_delay_seconds: int | None
    report: str | None
    created_at: datetime
    finished_at: datetime | None
    kind: str = "gc"
    project: str | None = None


@dataclass(frozen=True, slots=True)
class Usage:
    """What a project holds: distinct linked blob bytes plus manifest bytes, and manifests."""

    bytes: int
    artifacts: int
