"""Quota reconciliation: usage recomputed from rows and checked against storage.

Usage is never stored, so it cannot drift from the rows; what can drift is the rows
against the blob store (an object lost or replaced behind the registry's back). The
reconciliation stats every linked blob of each project with a quota, reports blobs whose
object is missing or has another size, and writes a ``quota.warning`` event for each
project at or over the warning threshold.
"""

from __future__ import annotations

import json
from typing import Any

from core.digests import Digest
from core.ports import BlobStore, Metadata
from core.services.quota import QUOTA_WARNING, QuotaLimits


class QuotaReconciler:
    """Recompute usage per project and compare rows with storage."""

    def __init__(self, metadata: Metadata, store: BlobStore, warning_ratio: float) -> None:
        self._metadata = metadata
        self._store = store
        self._ratio = warning_ratio

    def run(self) -> list[dict[str, Any]]:
        with self._metadata.read() as session:
            projects = session.quota_projects()
        return [self._project(project_id, name, body) for project_id, name, body in projects]

    def _project(self, project_id: int, name: str, body: str) -> dict[str, Any]:
        limits = QuotaLimits.load(body)
        with self._metadata.read() as session:
            usage = session.usage(project_id)
            blobs = session.linked_blob_sizes(project_id)
            storage_id = session.project_storage_id(project_id) or ""
        drift = []
        for digest, size in blobs:
            actual = self._store.stat_blob(storage_id, Digest.parse(digest))
            if actual != size:
                drift.append({"digest": digest, "row_size": size, "stored_size": actual})
        warn = any(
            limit and used >= self._ratio * limit
            for limit, used in ((limits.bytes, usage.bytes), (limits.artifacts, usage.artifacts))
        )
        if warn:
            with self._metadata.write() as session:
                session.add_event(
                    QUOTA_WARNING,
                    project_id=project_id,
                    data=json.dumps({"bytes": usage.bytes, "artifacts": usage.artifacts}),
                )
                session.commit()
        return {
            "project": name,
            "used_bytes": usage.bytes,
            "used_artifacts": usage.artifacts,
            "limit_bytes": limits.bytes,
            "limit_artifacts": limits.artifacts,
            "warning": warn,
            "drift": drift,
        }
