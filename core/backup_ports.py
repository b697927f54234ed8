"""The ports backups are written against; ``storage`` provides the adapters."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import BinaryIO, Protocol

from core.backup import SnapshotFacts


class BackupObjectMissingError(LookupError):
    """The backup location holds no object under that key."""


@dataclass(frozen=True, slots=True)
class BlobAddress:
    """Where a blob object lives in S3 (for a server-side copy into a backup bucket)."""

    endpoint: str | None
    bucket: str
    key: str


class BackupLocation(Protocol):
    """A directory or bucket holding backups (``core.backup`` documents the layout).

    Consistency contract: :meth:`write` is atomic (readers see the whole object or
    none, a retried write replaces it whole); every method is safe to retry.
    """

    def describe(self) -> str:
        """Where the location is, for people (a path or ``s3://bucket/prefix``)."""

    def exists(self, key: str) -> bool: ...

    def write(self, key: str, chunks: Iterable[bytes]) -> None:
        """Store the object ``key`` atomically."""

    def read(self, key: str) -> Iterator[bytes]:
        """Stream an object; raises :class:`BackupObjectMissingError`."""

    def delete(self, key: str) -> None:
        """Remove an object; a missing one is not an error."""

    def keys(self, prefix: str) -> Iterator[str]:
        """Every key under ``prefix``."""

    def server_copy(self, key: str, source: BlobAddress) -> bool:
        """Copy ``source`` to ``key`` inside the object store; ``False``: not possible here."""


class Snapshots(Protocol):
    """Logical snapshots of the metadata database (``storage.backup_snapshot``).

    A snapshot is every table's rows read in one repeatable-read transaction, written in
    a backend-neutral form, so it restores into SQLite or PostgreSQL alike, whole or for
    one project.
    """

    def revision(self) -> str | None:
        """The schema revision of the database (Alembic's)."""

    def dump(self, out: BinaryIO, project: str | None) -> SnapshotFacts:
        """Write the snapshot (of one project, or everything) to ``out``; return its facts."""

    def project_exists(self, name: str) -> bool: ...

    def has_projects(self) -> bool: ...

    def holds_storage(self, storage_ids: list[str]) -> bool:
        """Whether a project uses one of ``storage_ids`` (a restore already loaded)."""

    def load(
        self, snapshot: Iterable[bytes], project: str | None, storage_ids: dict[int, str]
    ) -> dict[str, int]:
        """Restore a snapshot's rows in one transaction; returns rows per table.

        ``project=None`` replaces every table's rows (ids kept, sequences moved past
        them); a project is added beside the others with fresh ids. ``storage_ids`` maps
        the snapshot's project ids to the storage ids the restored projects get.

        Raises:
            core.backup.RestoreRefusedError: The target has projects (whole restore)
                or already has the project.
        """


class BackupHolds(Protocol):
    """Holds on GC's object deletions, taken by running backups.

    While any hold is current, GC deletes no blob object (rows it may still tombstone):
    a backup's snapshot may reference blobs it has not copied yet. A hold expires on its
    own (a crashed backup never blocks GC forever); the backup renews it while it copies.
    """

    def take(self, hold_id: str, seconds: int) -> None:
        """Create or renew the hold ``hold_id`` until ``seconds`` from now."""

    def release(self, hold_id: str) -> None: ...

    def held(self) -> bool:
        """Whether any hold is current."""
