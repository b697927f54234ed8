"""What the OSV import needs from storage and from where the exports live."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Protocol

from core.vulndb.osv import OsvRecord


@dataclass(frozen=True)
class SourceState:
    """What the last import of one ecosystem saw."""

    ecosystem: str
    location: str
    newest_modified: datetime | None
    imported_at: datetime | None
    checked_at: datetime | None
    records: int


class VulnStore(Protocol):
    """Stored OSV records.

    Consistency: :meth:`save` replaces a record and all its ``affected`` rows in one
    transaction, so a lookup sees a record either before or after an update, never
    half of it. Every method is idempotent.
    """

    def source_state(self, ecosystem: str) -> SourceState | None: ...

    def set_source_state(self, state: SourceState) -> None: ...

    def stored_modified(self, ids: Collection[str]) -> dict[str, datetime]:
        """The stored ``modified`` time of each of ``ids`` that is stored."""

    def save(self, records: Sequence[OsvRecord], source: str) -> None:
        """Insert or replace ``records`` (imported from ecosystem export ``source``)."""

    def delete(self, ids: Collection[str]) -> int:
        """Remove records (withdrawn ones); returns how many were stored."""

    def prune(self, source: str, keep: Collection[str]) -> int:
        """Remove records of ``source`` whose ids are not in ``keep``; returns how many."""

    def counts(self) -> dict[str, int]:
        """Stored records per source ecosystem."""


class OsvFiles(Protocol):
    """The export files of an ecosystem: ``all.zip`` and ``modified_id.csv``.

    ``location`` is a directory or URL prefix holding both, or the path or URL of a zip
    (then only full imports are possible). ``fetch`` gives a local file, or ``None``
    when the file does not exist there; the caller removes nothing it did not create.
    """

    def fetch(self, location: str, filename: str) -> Path | None: ...

    def release(self, path: Path) -> None:
        """Drop a fetched file if the fetch created it (a download), keep local ones."""
