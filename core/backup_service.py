"""Backup, verify, restore and prune: the rules, used by the activities and the API.

Consistency guarantees:
- Order: a GC hold first, then the database snapshot (one repeatable-read transaction),
  then the blobs. Every blob row in the snapshot was committed after its object was
  written, and GC deletes no object while the hold is current, so every blob the
  snapshot references is still there to copy. Blobs pushed after the snapshot are not
  in the backup (their rows are not either).
- Each step is idempotent: a retried :meth:`begin` reuses the snapshot already written
  (so the blobs already copied still match it), :meth:`copy_blobs` skips blobs already
  in the location, and ``manifest.json`` is written last, so a backup without it is
  incomplete and never listed or restored.
- A restore checks the schema revision and the target first, copies and verifies every
  blob (digest and size) into the target's storage, then loads the snapshot (its sha256
  checked first) in one transaction: a corrupted backup is refused with nothing loaded.
"""

from __future__ import annotations

import hashlib
import json
import logging
import tempfile
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import IO, Final

from core.audit import AuditEvent
from core.backup import (
    BackupManifest,
    BackupNotFoundError,
    BlobEntry,
    RestoreRefusedError,
    SnapshotFacts,
    audit_event_of,
    blob_key,
    check_revision,
    facts_from,
    facts_to_json,
    manifest_key,
    pending_key,
    project_blobs,
    snapshot_key,
    to_prune,
    verify_audit_chain,
)
from core.backup_crypto import BackupCorruptError, Codec
from core.backup_format import read_rows
from core.backup_ports import BackupHolds, BackupLocation, BackupObjectMissingError, BlobAddress
from core.backup_ports import Snapshots as SnapshotPort
from core.digests import Digest, new_hasher
from core.errors import ConflictError
from core.ports import BlobNotFoundError, BlobStore, Clock

logger = logging.getLogger(__name__)

#: Blobs copied between two renewals of the GC hold.
RENEW_EVERY: Final = 50
#: Largest blob restored with one ``put_blob`` (larger ones stream through an upload).
PUT_MAX: Final = 8 * 1024 * 1024
#: A backup without manifest and older than this is abandoned (prune removes it).
ABANDONED_AFTER: Final = timedelta(days=7)
_CHUNK: Final = 1024 * 1024

Heartbeat = Callable[[int], None]


class BackupNotConfiguredError(ConflictError):
    """No backup location is configured (``backup.path`` or ``backup.s3``)."""


@dataclass(frozen=True, slots=True)
class VerifyOutcome:
    ok: bool
    blobs_checked: int
    bytes_checked: int
    problems: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class CopyOutcome:
    copied: int
    skipped: int
    bytes_copied: int


def _hashed(chunks: Iterable[bytes], digest: str, size: int, what: str) -> Iterator[bytes]:
    """Pass ``chunks`` through; raise :class:`BackupCorruptError` unless they match."""
    hasher, seen = new_hasher(), 0
    for chunk in chunks:
        hasher.update(chunk)
        seen += len(chunk)
        if seen > size:
            raise BackupCorruptError(f"{what}: more than the recorded {size} bytes")
        yield chunk
    if seen != size or not Digest.parse(digest).matches(hasher):
        raise BackupCorruptError(f"{what}: digest or size differs from {digest} ({size} bytes)")


def _measure(chunks: Iterable[bytes], into: dict[str, object]) -> Iterator[bytes]:
    hasher, size = hashlib.sha256(), 0
    for chunk in chunks:
        hasher.update(chunk)
        size += len(chunk)
        yield chunk
    into["sha256"], into["size"] = hasher.hexdigest(), size


def _file_chunks(handle: IO[bytes]) -> Iterator[bytes]:
    while chunk := handle.read(_CHUNK):
        yield chunk


class BackupService:
    """Backups of this installation into one location (see ``core.backup``).

    Args:
        location: Where backups live (``None``: not configured; every call refuses).
        snapshots: The database's logical snapshots.
        holds: The GC holds (taken by :meth:`begin`, released by :meth:`release`).
        store: The installation's blob store.
        codec: Seals new backups (and must open the ones read).
        clock: The process's clock.
        hold_seconds: How long a hold lasts unless renewed.
        source_address: Where a blob lives in S3, for server-side copies (``None``: none).
    """

    def __init__(
        self,
        location: BackupLocation | None,
        snapshots: SnapshotPort,
        holds: BackupHolds,
        store: BlobStore,
        codec: Codec,
        clock: Clock,
        *,
        hold_seconds: int,
        source_address: Callable[[str, Digest], BlobAddress | None],
    ) -> None:
        self._location = location
        self._snapshots = snapshots
        self._holds = holds
        self._store = store
        self._codec = codec
        self._clock = clock
        self._hold_seconds = hold_seconds
        self._address = source_address

    @property
    def location(self) -> BackupLocation:
        if self._location is None:
            raise BackupNotConfiguredError(
                "no backup location is configured (set backup.path or backup.s3)"
            )
        return self._location

    def new_id(self) -> str:
        """A fresh backup id: its time, then a random part (ids sort by time)."""
        return f"{self._clock.now():%Y%m%d-%H%M%S}-{uuid.uuid4().hex[:8]}"

    # -- backup ----------------------------------------------------------------------

    def begin(self, backup_id: str, project: str | None) -> SnapshotFacts:
        """Hold GC, then write the snapshot once (a retry reuses it); return its facts."""
        location = self.location
        self._holds.take(backup_id, self._hold_seconds)
        if location.exists(manifest_key(backup_id)):
            return self.get(backup_id).snapshot
        if location.exists(pending_key(backup_id)):
            return self._pending(backup_id)[1]
        if project is not None and not self._snapshots.project_exists(project):
            raise BackupNotFoundError(f"there is no project {project!r}")
        with tempfile.TemporaryFile() as spool:
            facts = self._snapshots.dump(spool, project)
            spool.seek(0)
            measured: dict[str, object] = {}
            name = snapshot_key(backup_id)
            location.write(name, self._codec.seal(name, _measure(_file_chunks(spool), measured)))
        facts = replace(facts, sha256=str(measured["sha256"]), size=int(str(measured["size"])))
        created = self._clock.now().isoformat()
        location.write(pending_key(backup_id), [facts_to_json(facts, created)])
        return facts

    def _pending(self, backup_id: str) -> tuple[str, SnapshotFacts]:
        try:
            raw = json.loads(b"".join(self.location.read(pending_key(backup_id))))
        except BackupObjectMissingError:
            raise BackupNotFoundError(f"backup {backup_id} has not begun") from None
        return str(raw["created_at"]), facts_from(raw["snapshot"])

    def copy_blobs(self, backup_id: str, heartbeat: Heartbeat) -> CopyOutcome:
        """Copy every blob of the snapshot not yet in the location (renewing the hold)."""
        location, (_, facts) = self.location, self._pending(backup_id)
        tenants = {p.id: p.storage_id for p in facts.projects}
        copied = skipped = moved = 0
        for index, blob in enumerate(facts.blobs):
            if index % RENEW_EVERY == 0:
                self._holds.take(backup_id, self._hold_seconds)
            key = blob_key(self._codec.key_id, blob.digest)
            if location.exists(key):
                skipped += 1
            else:
                self._copy_one(key, blob, [tenants[p] for p in blob.projects if p in tenants])
                copied, moved = copied + 1, moved + blob.size
            heartbeat(index + 1)
        return CopyOutcome(copied, skipped, moved)

    def _copy_one(self, key: str, blob: BlobEntry, tenants: list[str]) -> None:
        digest = Digest.parse(blob.digest)
        for tenant in tenants:
            address = self._address(tenant, digest) if self._codec.key_id == "plain" else None
            if address is not None and self.location.server_copy(key, address):
                return
            try:
                chunks = self._store.read_blob(tenant, digest)
                checked = _hashed(chunks, blob.digest, blob.size, f"source blob {blob.digest}")
                self.location.write(key, self._codec.seal(key, checked))
            except BlobNotFoundError:
                continue
            return
        raise BlobNotFoundError(f"blob {blob.digest} is missing from the blob store")

    def finish(self, backup_id: str, project: str | None) -> BackupManifest:
        """Write ``manifest.json`` (the backup now exists) and release the hold."""
        location = self.location
        if location.exists(manifest_key(backup_id)):
            manifest = self.get(backup_id)
        else:
            created, facts = self._pending(backup_id)
            manifest = BackupManifest(
                id=backup_id,
                created_at=created,
                completed_at=self._clock.now().isoformat(),
                project=project,
                key_id=self._codec.key_id,
                snapshot=facts,
            )
            location.write(manifest_key(backup_id), [manifest.to_json()])
        self._holds.release(backup_id)
        return manifest

    def release(self, backup_id: str) -> None:
        """Release the backup's GC hold (after it finished or failed)."""
        self._holds.release(backup_id)

    # -- reading ---------------------------------------------------------------------

    def get(self, backup_id: str) -> BackupManifest:
        try:
            data = b"".join(self.location.read(manifest_key(backup_id)))
        except (BackupObjectMissingError, ValueError):
            raise BackupNotFoundError(f"there is no backup {backup_id!r}") from None
        return BackupManifest.from_json(data)

    def all(self) -> list[BackupManifest]:
        """Every complete backup, newest first."""
        found = [
            self.get(key.split("/")[1])
            for key in self.location.keys("backups/")
            if key.endswith("/manifest.json")
        ]
        return sorted(found, key=lambda b: (b.created_at, b.id), reverse=True)

    def page(self, before: tuple[datetime, str] | None, limit: int) -> list[BackupManifest]:
        """Backups after the cursor ``before`` (created at, id), newest first."""
        backups = self.all()
        if before is not None:
            moment, backup_id = before
            backups = [
                b
                for b in backups
                if (datetime.fromisoformat(b.created_at), b.id) < (moment, backup_id)
            ]
        return backups[:limit]

    def _opened(self, backup: BackupManifest, key: str) -> Iterator[bytes]:
        if backup.key_id != self._codec.key_id:
            raise RestoreRefusedError(
                f"backup {backup.id} is sealed with key {backup.key_id}; the configured key "
                f"is {self._codec.key_id} (set backup.encryption_key to the backup's key)"
            )
        return self._codec.open(key, self.location.read(key))

    # -- verify ----------------------------------------------------------------------

    def verify(self, backup_id: str, heartbeat: Heartbeat) -> VerifyOutcome:
        """Check the snapshot's and every blob's digest and size, and the audit chain."""
        backup = self.get(backup_id)
        problems: list[str] = []
        try:
            with tempfile.TemporaryFile() as spool:
                self._spool_snapshot(backup, spool)
                spool.seek(0)
                if backup.project is None:
                    problem = _audit_problem(read_rows(_file_chunks(spool)))
                    if problem is not None:
                        problems.append(problem)
        except (BackupCorruptError, BackupObjectMissingError) as exc:
            problems.append(f"snapshot: {exc}")
        checked = total = 0
        for index, blob in enumerate(backup.snapshot.blobs):
            key = blob_key(backup.key_id, blob.digest)
            try:
                for chunk in _hashed(self._opened(backup, key), blob.digest, blob.size, key):
                    total += len(chunk)
            except (BackupCorruptError, BackupObjectMissingError) as exc:
                problems.append(f"blob {blob.digest}: {exc or 'missing'}")
            checked += 1
            heartbeat(index + 1)
        return VerifyOutcome(not problems, checked, total, problems)

    def _spool_snapshot(self, backup: BackupManifest, spool: IO[bytes]) -> None:
        """Write the snapshot's plaintext to ``spool``, checked against the manifest."""
        key = snapshot_key(backup.id)
        facts = backup.snapshot
        for chunk in _hashed(self._opened(backup, key), "sha256:" + facts.sha256, facts.size, key):
            spool.write(chunk)

    # -- restore ---------------------------------------------------------------------

    def plan_restore(self, backup_id: str, project: str | None) -> dict[int, str]:
        """Check the target, then give each restored project fresh storage.

        Returns:
            The snapshot's project ids mapped to their new storage ids.

        Raises:
            RestoreRefusedError: Another schema revision, a whole restore into an
                installation with projects, or a project that exists already.
        """
        backup = self.get(backup_id)
        check_revision(backup, self._snapshots.revision())
        if project is None and self._snapshots.has_projects():
            raise RestoreRefusedError(
                "a whole-installation restore needs an installation without projects; "
                "restore single projects with --project instead"
            )
        if project is not None and self._snapshots.project_exists(project):
            raise RestoreRefusedError(f"project {project!r} exists here; delete it first")
        chosen = [p for p in backup.snapshot.projects if project in (None, p.name)]
        if project is not None and not chosen:
            raise BackupNotFoundError(f"backup {backup_id} holds no project {project!r}")
        tenants: dict[int, str] = {}
        for entry in chosen:
            tenants[entry.id] = self._store.new_tenant_id(entry.name)
            self._store.create_tenant(tenants[entry.id])
        return tenants

    def restore_blobs(
        self, backup_id: str, project: str | None, tenants: dict[int, str], heartbeat: Heartbeat
    ) -> CopyOutcome:
        """Copy and verify the blobs of the restored projects into their new storage."""
        backup = self.get(backup_id)
        copied = skipped = moved = 0
        for index, blob in enumerate(project_blobs(backup, project)):
            for project_id in blob.projects:
                tenant = tenants.get(project_id)
                if tenant is None:
                    continue
                digest = Digest.parse(blob.digest)
                if self._store.stat_blob(tenant, digest) == blob.size:
                    skipped += 1
                    continue
                self._restore_one(backup, blob, tenant)
                copied, moved = copied + 1, moved + blob.size
            heartbeat(index + 1)
        return CopyOutcome(copied, skipped, moved)

    def _restore_one(self, backup: BackupManifest, blob: BlobEntry, tenant: str) -> None:
        key = blob_key(backup.key_id, blob.digest)
        digest = Digest.parse(blob.digest)
        chunks = _hashed(self._opened(backup, key), blob.digest, blob.size, key)
        if blob.size <= PUT_MAX:
            self._store.put_blob(tenant, digest, b"".join(chunks))
            return
        upload_id = f"restore-{uuid.uuid4().hex}"
        self._store.start_upload(tenant, upload_id)
        try:
            writer = self._store.upload_writer(tenant, upload_id, 0)
            try:
                for chunk in chunks:
                    writer.write(chunk)
            except BaseException:
                writer.abort()
                raise
            writer.commit()
            self._store.finish_upload(tenant, upload_id, digest, blob.size)
        finally:
            self._store.delete_upload(tenant, upload_id)

    def restore_rows(
        self, backup_id: str, project: str | None, tenants: dict[int, str]
    ) -> dict[str, int]:
        """Load the snapshot's rows (sha256 checked first) in one transaction."""
        backup = self.get(backup_id)
        check_revision(backup, self._snapshots.revision())
        if self._snapshots.holds_storage(list(tenants.values())):
            return {}  # NOTE: loaded by an earlier attempt (its commit was not reported)
        with tempfile.TemporaryFile() as spool:
            self._spool_snapshot(backup, spool)
            spool.seek(0)
            return self._snapshots.load(_file_chunks(spool), project, tenants)

    # -- prune -----------------------------------------------------------------------

    def _in_progress(self, backup_id: str) -> bool:
        """A backup begun less than :data:`ABANDONED_AFTER` ago and not finished yet."""
        if self.location.exists(manifest_key(backup_id)):
            return False
        if not self.location.exists(pending_key(backup_id)):
            return True  # NOTE: its snapshot is being written: pending.json comes next
        created, _ = self._pending(backup_id)
        return datetime.fromisoformat(created) > self._clock.now() - ABANDONED_AFTER

    def prune(self, keep_last: int) -> tuple[list[str], int]:
        """Delete backups beyond the ``keep_last`` newest, then blobs no backup needs.

        Blobs listed by an unfinished backup (begun, no manifest yet) are kept; one
        abandoned for :data:`ABANDONED_AFTER` is removed.

        Returns:
            The removed backups' ids and how many blob objects were deleted.
        """
        location = self.location
        backups = self.all()
        removed = [b.id for b in to_prune(backups, keep_last)]
        for backup_id in removed:
            location.delete(manifest_key(backup_id))
        live = {b.id for b in backups} - set(removed)
        needed = {
            blob_key(b.key_id, blob.digest)
            for b in backups
            if b.id in live
            for blob in b.snapshot.blobs
        }
        others = {key.split("/")[1] for key in location.keys("backups/")} - live
        for backup_id in sorted(others):
            if backup_id not in removed and self._in_progress(backup_id):
                _, facts = self._pending(backup_id)
                needed |= {blob_key(self._codec.key_id, b.digest) for b in facts.blobs}
                continue
            for key in list(location.keys(f"backups/{backup_id}/")):
                location.delete(key)
        deleted = 0
        for key in list(location.keys("blobs/")):
            if key not in needed:
                location.delete(key)
                deleted += 1
        return removed, deleted


def _audit_problem(rows: Iterable[tuple[str, dict[str, object]]]) -> str | None:
    events: list[tuple[int, AuditEvent, str, str]] = []
    anchors: list[tuple[int, str]] = []
    head: tuple[int, str] | None = None
    for table, row in rows:
        if table == "audit_event":
            events.append(
                (int(str(row["id"])), audit_event_of(row), str(row["prev_hash"]), str(row["hash"]))
            )
        elif table == "audit_anchor":
            anchors.append((int(str(row["through_id"])), str(row["hash"])))
        elif table == "audit_head":
            head = (int(str(row["last_id"])), str(row["last_hash"]))
    events.sort(key=lambda e: e[0])
    anchor = max(anchors) if anchors else None
    return verify_audit_chain(events, anchor, head)
