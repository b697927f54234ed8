"""Backups: what one holds, where its parts live in a backup location, and the rules.

A backup is a consistent snapshot of the metadata database plus every blob the snapshot
references, in a *location* (a directory or an S3 bucket) laid out as::

    blobs/<key id>/sha256/<hex>         one object per blob digest, shared by all backups
                                        sealed with the same key (later backups copy only
                                        the blobs not there yet)
    backups/<backup id>/pending.json    written first: the snapshot's facts and blob list
    backups/<backup id>/snapshot        the snapshot (gzip JSON lines, sealed)
    backups/<backup id>/manifest.json   written last: the backup exists once it does

``<key id>`` is ``plain`` or the id of the encryption key (``core.backup_crypto``).
``manifest.json`` lists every blob's digest and size and the snapshot's sha256 and size
(of its plaintext), the schema revision, the projects and the audit log's head.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any, Final

from core.audit import GENESIS, AuditEvent, chain_hash
from core.errors import ConflictError, NotFoundError

FORMAT: Final = 1
_BACKUP_ID = re.compile(r"[a-z0-9][a-z0-9-]{0,62}")
_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")


class BackupNotFoundError(NotFoundError):
    """No complete backup has that id."""


class RestoreRefusedError(ConflictError):
    """A restore that must not run (schema revision, target not empty, corrupt backup)."""


def check_backup_id(backup_id: str) -> str:
    """``backup_id`` if it is a valid backup id (lower case letters, digits, dashes)."""
    if _BACKUP_ID.fullmatch(backup_id) is None:
        raise ValueError(f"invalid backup id {backup_id!r}")
    return backup_id


def blob_key(key_id: str, digest: str) -> str:
    if _DIGEST.fullmatch(digest) is None:
        raise ValueError(f"not a sha256 digest: {digest!r}")
    return f"blobs/{key_id}/sha256/{digest.removeprefix('sha256:')}"


def backup_prefix(backup_id: str) -> str:
    return f"backups/{check_backup_id(backup_id)}/"


def manifest_key(backup_id: str) -> str:
    return backup_prefix(backup_id) + "manifest.json"


def pending_key(backup_id: str) -> str:
    return backup_prefix(backup_id) + "pending.json"


def snapshot_key(backup_id: str) -> str:
    return backup_prefix(backup_id) + "snapshot"


@dataclass(frozen=True, slots=True)
class BlobEntry:
    """One blob of a backup: its digest and size, and the projects (by id) holding it."""

    digest: str
    size: int
    projects: list[int] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class ProjectEntry:
    id: int
    name: str
    storage_id: str


@dataclass(frozen=True, slots=True)
class SnapshotFacts:
    """What a snapshot holds, learned while it was written."""

    revision: str
    dialect: str
    projects: list[ProjectEntry]
    blobs: list[BlobEntry]
    rows: dict[str, int]
    audit_head: tuple[int, str] | None
    sha256: str = ""
    size: int = 0


@dataclass(frozen=True, slots=True)
class BackupManifest:
    """The record of a complete backup (``manifest.json``)."""

    id: str
    created_at: str
    completed_at: str
    #: ``None``: the whole installation; else the one project backed up.
    project: str | None
    key_id: str
    snapshot: SnapshotFacts
    format: int = FORMAT

    @property
    def total_bytes(self) -> int:
        return self.snapshot.size + sum(blob.size for blob in self.snapshot.blobs)

    def to_json(self) -> bytes:
        return json.dumps(asdict(self), sort_keys=True, indent=1).encode()

    @classmethod
    def from_json(cls, data: bytes) -> BackupManifest:
        raw = json.loads(data)
        if raw.get("format") != FORMAT:
            raise ValueError(f"unknown backup format {raw.get('format')!r}")
        return cls(
            id=raw["id"],
            created_at=raw["created_at"],
            completed_at=raw["completed_at"],
            project=raw["project"],
            key_id=raw["key_id"],
            snapshot=facts_from(raw["snapshot"]),
        )


def facts_to_json(facts: SnapshotFacts, created_at: str) -> bytes:
    return json.dumps({"created_at": created_at, "snapshot": asdict(facts)}).encode()


def facts_from(raw: Mapping[str, Any]) -> SnapshotFacts:
    head = raw.get("audit_head")
    return SnapshotFacts(
        revision=raw["revision"],
        dialect=raw["dialect"],
        projects=[ProjectEntry(**p) for p in raw["projects"]],
        blobs=[BlobEntry(**b) for b in raw["blobs"]],
        rows=dict(raw["rows"]),
        audit_head=(int(head[0]), str(head[1])) if head else None,
        sha256=raw.get("sha256", ""),
        size=int(raw.get("size", 0)),
    )


def check_revision(backup: BackupManifest, current: str | None) -> None:
    """Refuse a restore into a schema other than the backup's."""
    if current != backup.snapshot.revision:
        raise RestoreRefusedError(
            f"backup {backup.id} was taken at schema revision {backup.snapshot.revision}; "
            f"this installation is at {current}: restore into an installation at the same "
            "revision (run the matching Moorage version's `moorage migrate`), then upgrade"
        )


def project_blobs(backup: BackupManifest, project: str | None) -> list[BlobEntry]:
    """The blobs a restore of ``project`` (``None``: everything) needs."""
    if project is None:
        return list(backup.snapshot.blobs)
    ids = {p.id for p in backup.snapshot.projects if p.name == project}
    if not ids:
        raise BackupNotFoundError(f"backup {backup.id} holds no project {project!r}")
    return [blob for blob in backup.snapshot.blobs if ids & set(blob.projects)]


def to_prune(backups: list[BackupManifest], keep_last: int) -> list[BackupManifest]:
    """The backups beyond the ``keep_last`` newest (per scope: installation or project)."""
    by_scope: dict[str | None, list[BackupManifest]] = {}
    for backup in sorted(backups, key=lambda b: (b.created_at, b.id), reverse=True):
        by_scope.setdefault(backup.project, []).append(backup)
    return [old for group in by_scope.values() for old in group[keep_last:]]


def verify_audit_chain(
    events: Iterable[tuple[int, AuditEvent, str, str]],
    anchor: tuple[int, str] | None,
    head: tuple[int, str] | None,
) -> str | None:
    """Recompute the audit chain of a snapshot; ``None`` if sound, else the problem.

    ``events`` are ``(id, event, prev_hash, hash)`` in id order; ``anchor`` the newest
    purge anchor ``(through_id, hash)``; ``head`` the head row ``(last_id, last_hash)``.
    """
    expected, floor = (anchor[1], anchor[0]) if anchor else (GENESIS, 0)
    for event_id, event, prev_hash, digest in events:
        if event_id <= floor:
            return f"audit event {event_id} precedes the anchor"
        if prev_hash != expected:
            return f"audit chain broken before event {event_id}"
        if chain_hash(prev_hash, event) != digest:
            return f"audit event {event_id} was modified"
        expected = digest
    if (head[1] if head else GENESIS) != expected:
        return "the newest audit events are missing"
    return None


def audit_event_of(row: Mapping[str, Any]) -> AuditEvent:
    """The :class:`AuditEvent` of a snapshot's ``audit_event`` row."""
    names = AuditEvent.__dataclass_fields__
    return AuditEvent(**{name: row[name] for name in names})


def iso(moment: datetime) -> str:
    return moment.isoformat()
