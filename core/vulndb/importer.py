"""Import an ecosystem's OSV export: full from ``all.zip``, then incremental.

Incremental updates read ``modified_id.csv`` (``<modified>,<id>`` lines, newest first)
up to the first time the last import already saw, and import only those records from
the zip; when nothing changed, the zip is not read at all. Withdrawn records are
removed; a full import also removes records the export no longer has. Records are
written in batches, each record with its ``affected`` rows in one transaction, so an
import interrupted at any point is simply run again.
"""

from __future__ import annotations

import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from core.vulndb.osv import InvalidRecordError, OsvRecord, parse_record, parse_timestamp
from core.vulndb.ports import OsvFiles, SourceState, VulnStore

ZIP_NAME = "all.zip"
CSV_NAME = "modified_id.csv"
_MAX_CSV_BYTES = 256 * 1024 * 1024


class ImportFailedError(Exception):
    """The export could not be read (missing, corrupt or beyond a limit)."""


@dataclass(frozen=True)
class ImportLimits:
    max_record_bytes: int = 16 * 1024 * 1024
    max_records: int = 2_000_000
    batch_size: int = 500


#: The limits of an importer built without its own.
DEFAULT_LIMITS = ImportLimits()


@dataclass
class ImportResult:
    ecosystem: str
    incremental: bool = False
    read: int = 0
    saved: int = 0
    unchanged: int = 0
    withdrawn: int = 0
    removed: int = 0
    invalid: int = 0


def changed_since(csv_text: str, since: datetime) -> tuple[set[str], datetime | None]:
    """Ids modified after ``since`` and the newest time in the file."""
    changed: set[str] = set()
    newest: datetime | None = None
    for line in csv_text.splitlines():
        stamp, sep, record_id = line.strip().partition(",")
        if not sep:
            continue
        try:
            modified = parse_timestamp(stamp)
        except ValueError:
            continue
        newest = modified if newest is None else max(newest, modified)
        if modified <= since:
            break
        changed.add(record_id.rsplit("/", 1)[-1])
    return changed, newest


class OsvImporter:
    """Imports exports into a :class:`VulnStore`."""

    def __init__(
        self,
        store: VulnStore,
        files: OsvFiles,
        clock: Callable[[], datetime],
        limits: ImportLimits = DEFAULT_LIMITS,
    ) -> None:
        self._store = store
        self._files = files
        self._clock = clock
        self._limits = limits

    def run(self, ecosystem: str, location: str, full: bool = False) -> ImportResult:
        """Import ``ecosystem`` from ``location``; incremental unless ``full`` or first.

        Raises:
            ImportFailedError: The export is missing or unreadable; nothing was removed.
        """
        state = self._store.source_state(ecosystem)
        result = ImportResult(ecosystem)
        only: set[str] | None = None
        if not full and state is not None and state.newest_modified is not None:
            only = self._changed(location, state.newest_modified)
            if only is not None:
                result.incremental = True
                if not only:
                    self._store.set_source_state(
                        SourceState(
                            ecosystem,
                            location,
                            state.newest_modified,
                            state.imported_at,
                            self._clock(),
                            state.records,
                        )
                    )
                    return result
        path = self._files.fetch(location, ZIP_NAME)
        if path is None:
            raise ImportFailedError(f"{ecosystem}: no {ZIP_NAME} at {location}")
        try:
            newest, seen = self._import_zip(path, ecosystem, only, result)
        finally:
            self._files.release(path)
        if only is None:
            result.removed = self._store.prune(ecosystem, seen)
        previous = state.newest_modified if state is not None else None
        if previous is not None and (newest is None or newest < previous):
            newest = previous
        now = self._clock()
        count = self._store.counts().get(ecosystem, 0)
        self._store.set_source_state(SourceState(ecosystem, location, newest, now, now, count))
        return result

    def _changed(self, location: str, since: datetime) -> set[str] | None:
        path = self._files.fetch(location, CSV_NAME)
        if path is None:
            return None
        try:
            if path.stat().st_size > _MAX_CSV_BYTES:
                raise ImportFailedError(f"{CSV_NAME} at {location} is too large")
            changed, _ = changed_since(path.read_text("utf-8", "replace"), since)
        finally:
            self._files.release(path)
        return changed

    def _import_zip(
        self, path: Path, ecosystem: str, only: set[str] | None, result: ImportResult
    ) -> tuple[datetime | None, set[str]]:
        limits = self._limits
        newest: datetime | None = None
        seen: set[str] = set()
        batch: list[OsvRecord] = []
        try:
            with zipfile.ZipFile(path) as archive:
                infos = [i for i in archive.infolist() if i.filename.endswith(".json")]
                if len(infos) > limits.max_records:
                    raise ImportFailedError(f"{ecosystem}: more records than the import allows")
                for info in infos:
                    stem = info.filename.rsplit("/", 1)[-1].removesuffix(".json")
                    if only is not None and stem not in only:
                        continue
                    record = self._read(archive, info, result)
                    if record is None:
                        continue
                    seen.add(record.id)
                    newest = record.modified if newest is None else max(newest, record.modified)
                    if record.withdrawn:
                        result.withdrawn += self._store.delete([record.id])
                        continue
                    batch.append(record)
                    if len(batch) >= limits.batch_size:
                        self._flush(batch, ecosystem, result)
                        batch = []
        except (zipfile.BadZipFile, OSError, EOFError) as exc:
            raise ImportFailedError(f"{ecosystem}: {ZIP_NAME} is unreadable: {exc}") from exc
        self._flush(batch, ecosystem, result)
        return newest, seen

    def _read(
        self, archive: zipfile.ZipFile, info: zipfile.ZipInfo, result: ImportResult
    ) -> OsvRecord | None:
        result.read += 1
        if info.file_size > self._limits.max_record_bytes:
            result.invalid += 1
            return None
        with archive.open(info) as handle:
            data = handle.read(self._limits.max_record_bytes + 1)
        if len(data) > self._limits.max_record_bytes:
            result.invalid += 1
            return None
        try:
            return parse_record(data)
        except InvalidRecordError:
            result.invalid += 1
            return None

    def _flush(self, batch: list[OsvRecord], ecosystem: str, result: ImportResult) -> None:
        if not batch:
            return
        stored = self._store.stored_modified([r.id for r in batch])
        changed = [r for r in batch if stored.get(r.id) != r.modified]
        result.unchanged += len(batch) - len(changed)
        if changed:
            self._store.save(changed, ecosystem)
            result.saved += len(changed)
