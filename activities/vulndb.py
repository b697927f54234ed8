"""The OSV import activity: import every configured source (scheduled or on demand).

Idempotent: the importer writes records in batches, each with its rows in one
transaction, and an import run again after an interruption simply reads the export
again (incremental through ``modified_id.csv`` once a first import finished).
"""

from __future__ import annotations

from collections.abc import Mapping

from temporalio import activity

from core.scan_jobs import VULNDB_IMPORT, ImportInput, ImportOutcome
from core.vulndb.importer import ImportFailedError, OsvImporter


class VulnDbActivities:
    """Imports the configured OSV sources (``scan.vulndb.sources``)."""

    def __init__(self, importer: OsvImporter, sources: Mapping[str, str]) -> None:
        self._importer, self._sources = importer, dict(sources)

    @activity.defn(name=VULNDB_IMPORT)
    def vulndb_import_sources(self, params: ImportInput) -> ImportOutcome:
        """Import each source; a failing source is reported and the others go on."""
        changed, failed = 0, []
        for ecosystem, location in sorted(self._sources.items()):
            activity.heartbeat(ecosystem)
            try:
                result = self._importer.run(ecosystem, location, full=params.full)
            except ImportFailedError as exc:
                activity.logger.warning("OSV import of %s failed: %s", ecosystem, exc)
                failed.append(f"{ecosystem}: {exc}")
                continue
            changed += result.saved + result.withdrawn + result.removed
        return ImportOutcome(changed, failed)
