"""Names and payloads of the backup, verify, restore and prune activities (no I/O here)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

BACKUP_BEGIN: Final = "backup_begin"
BACKUP_COPY_BLOBS: Final = "backup_copy_blobs"
BACKUP_FINISH: Final = "backup_finish"
BACKUP_RELEASE: Final = "backup_release"
BACKUP_VERIFY: Final = "backup_verify"
BACKUP_PRUNE: Final = "backup_prune"
RESTORE_PLAN: Final = "restore_plan"
RESTORE_BLOBS: Final = "restore_blobs"
RESTORE_ROWS: Final = "restore_rows"

#: Error types of permanent failures (``ApplicationError.type``, not retried).
REFUSED: Final = "BackupRefused"
NOT_FOUND: Final = "BackupNotFound"
CORRUPT: Final = "BackupCorrupt"


@dataclass(frozen=True, slots=True)
class BackupInput:
    """One backup.

    Attributes:
        backup_id: The backup's id (empty: a scheduled run, named by its start time).
        project: The one project to back up (``None``: the whole installation).
        keep_last: After the backup, prune to this many backups (0: no pruning).
    """

    backup_id: str
    project: str | None = None
    keep_last: int = 0


@dataclass(frozen=True, slots=True)
class BackupStepResult:
    blobs: int = 0
    copied: int = 0
    skipped: int = 0
    bytes: int = 0


@dataclass(frozen=True, slots=True)
class BackupResult:
    backup_id: str
    blobs: int
    copied: int
    bytes: int
    location: str


@dataclass(frozen=True, slots=True)
class VerifyInput:
    backup_id: str


@dataclass(frozen=True, slots=True)
class VerifyResult:
    ok: bool
    blobs_checked: int
    bytes_checked: int
    problems: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class RestoreInput:
    """A restore of a backup: one project (``project``) or the whole installation."""

    backup_id: str
    project: str | None = None


@dataclass(frozen=True, slots=True)
class RestoreStepInput:
    """A restore step with the storage ids the plan chose (snapshot project id -> id)."""

    backup_id: str
    project: str | None
    tenants: dict[str, str]


@dataclass(frozen=True, slots=True)
class RestorePlan:
    tenants: dict[str, str]


@dataclass(frozen=True, slots=True)
class RestoreResult:
    backup_id: str
    project: str | None
    blobs_copied: int
    rows: dict[str, int]


@dataclass(frozen=True, slots=True)
class PruneInput:
    keep_last: int


@dataclass(frozen=True, slots=True)
class PruneResult:
    removed: list[str]
    blobs_deleted: int
