"""Quota reconciliation: usage recomputed from rows and checked against storage.

Usage is never stored, so it cannot drift from the rows; what can drift is the rows
against the blob store (an object lost or replaced behind the registry's back). The
reconciliation stats every linked blob of each project with a quota, reports blobs whose
object is missing or has another size, and writes a ``quota.warning`` event for each
project at or over the warning threshold.

A run with a key (its workflow id) writes each project's warning at most once: the event
carries the key, and it is written only if the project has none with that key yet, in a
transaction holding the project's lock, so a retried or concurrent attempt of the same
run writes no second warning.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, Final

from core.digests import Digest
from core.ports import BlobStore, Metadata
from core.services.quota import QUOTA_WARNING, QuotaLimits

#: Blobs stat'ed between two heartbeats.
HEARTBEAT_EVERY: Final = 200


def _idle(*_: str) -> None:
    """The default heartbeat: nothing to tell."""


class QuotaReconciler:
    """Recompute usage per project and compare rows with storage."""

    def __init__(self, metadata: Metadata, store: BlobStore, warning_ratio: float) -> None:
        self._metadata = metadata
        self._store = store
        self._ratio = warning_ratio

    def run(self, key: str = "", heartbeat: Callable[[str], None] = _idle) -> list[dict[str, Any]]:
        """Reconcile every project with a quota; one entry per project.

        Args:
            key: The run's idempotency key (empty: every call warns anew).
            heartbeat: Called with the project's name while it is checked.
        """
        with self._metadata.read() as session:
            projects = session.policies.quota_projects()
        return [
            self._project(project_id, name, body, key, heartbeat)
            for project_id, name, body in projects
        ]

    def _project(
        self, project_id: int, name: str, body: str, key: str, heartbeat: Callable[[str], None]
    ) -> dict[str, Any]:
        limits = QuotaLimits.load(body)
        heartbeat(name)
        with self._metadata.read() as session:
            usage = session.policies.usage(project_id)
            blobs = session.policies.linked_blob_sizes(project_id)
            storage_id = session.projects.storage_id(project_id) or ""
        drift = []
        for index, (digest, size) in enumerate(blobs, start=1):
            actual = self._store.stat_blob(storage_id, Digest.parse(digest))
            if actual != size:
                drift.append({"digest": digest, "row_size": size, "stored_size": actual})
            if index % HEARTBEAT_EVERY == 0:
                heartbeat(name)
        warn = any(
            limit and used >= self._ratio * limit
            for limit, used in ((limits.bytes, usage.bytes), (limits.artifacts, usage.artifacts))
        )
        if warn:
            self._warn(project_id, {"bytes": usage.bytes, "artifacts": usage.artifacts}, key)
        return {
            "project": name,
            "used_bytes": usage.bytes,
            "used_artifacts": usage.artifacts,
            "limit_bytes": limits.bytes,
            "limit_artifacts": limits.artifacts,
            "warning": warn,
            "drift": drift,
        }

    def _warn(self, project_id: int, data: dict[str, Any], key: str) -> None:
        """Write the project's warning, once per ``key`` (always when there is none)."""
        with self._metadata.write() as session:
            if key:
                session.projects.lock(project_id)
                if session.outbox.keyed_exists(QUOTA_WARNING, project_id, key):
                    return
                data = {**data, "key": key}
            session.outbox.add(QUOTA_WARNING, project_id=project_id, data=json.dumps(data))
            session.commit()
