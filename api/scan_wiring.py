"""The API's scan pieces: the reports service, the workflow starter, and the pull gate.

The vulnerability pull gate (:class:`ScanPullGate`) runs before a manifest is served.
It keeps the policies of the projects that gate pulls in memory (one query for all of
them), so a manifest ``GET`` of any other project costs a dictionary lookup and no
database access. The copy is read at start, re-read by a background task every
``scan.policy_cache_seconds`` (no request waits for it), and re-read at once in the
process that changed a policy or allowlist: a change made through another API process
applies there within ``policy_cache_seconds`` plus one re-read. For a gated project the
gate reads the artifact's report and the allowlists (in a worker thread); a pull it lets through is
remembered ``scan.verdict_cache_seconds`` (``core.verdict_cache``), so a new finding
(a re-match) or an allowlist entry removed in another process refuses that image's pulls
at most that long later. A refusal is never kept: the pull after a finished scan or an
added allowlist entry is decided anew. A change of a policy or an allowlist made through
this process, or a changed policy seen by a re-read, drops every kept allowance. The external
scanner of a delegated scan (a token of kind ``scanner``) is exempt: it pulls the image
it is to judge.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from dataclasses import replace
from datetime import UTC, datetime

import anyio.to_thread

from api.context import Registry
from api.workflow_starter import TemporalStarter
from core.access import Identity, IdentityKind
from core.errors import OCIErrorCode, RegistryError
from core.pipeline import Hooks, OCIRequest
from core.records import ManifestRecord
from core.scan_records import ScanPolicy, ScanStore
from core.scan_reports import ScanReports
from core.scan_settings import ScanSettings
from core.verdict_cache import VerdictCache
from core.vuln_policy import Refusal, allowed_ids, decide, scannable

logger = logging.getLogger(__name__)

_REPORTS, _STARTER, _GATE = "scan_reports", "scan_starter", "scan_gate"
_TASK = "scan_gate_refresh"


class ScanPullGate:
    """The before-manifest-served hook of the vulnerability pull policy."""

    def __init__(self, store: ScanStore, settings: ScanSettings) -> None:
        self._store, self._ttl = store, settings.policy_cache_seconds
        self._policies: dict[str, ScanPolicy] = {}
        self._checked_at = float("-inf")
        self._refreshing = threading.Lock()
        self._verdicts: VerdictCache[tuple[int, str], bool] = VerdictCache(
            settings.verdict_cache_seconds, settings.verdict_cache_entries
        )

    def refresh(self) -> None:
        """Re-read the gating policies now (after any re-read already running)."""
        with self._refreshing:
            try:
                started = time.monotonic()
                policies = self._store.gating_policies()
                if policies != self._policies:
                    self._verdicts.clear()
                self._policies = policies
                self._checked_at = started
            except Exception:
                logger.warning("could not read the scan pull policies", exc_info=True)

    def changed(self) -> None:
        """A policy or an allowlist changed through this process: re-read, decide anew."""
        self._verdicts.clear()
        self.refresh()

    async def run(self) -> None:
        """Re-read the policies every ``ttl`` seconds until cancelled."""
        while True:
            await asyncio.sleep(max(self._ttl, 0.05))
            await anyio.to_thread.run_sync(self.refresh)

    def _decide(self, policy: ScanPolicy, digest: str) -> Refusal | None:
        report = self._store.report(policy.project_id, digest)
        now = datetime.now(UTC)
        entries = [*self._store.allowlist(None), *self._store.allowlist(policy.project_id)]
        return decide(policy, report, allowed_ids(entries, now))

    async def manifest_serving(self, request: OCIRequest, manifest: ManifestRecord, /) -> None:
        """Refuse the manifest when its project's policy says so (see the module)."""
        if time.monotonic() - self._checked_at > 2 * self._ttl + 1:
            # NOTE: only when the background re-read is not running (it keeps this fresh)
            await anyio.to_thread.run_sync(self.refresh)
        if not self._policies or not request.repository:
            return
        identity = request.notes.get("identity")
        if isinstance(identity, Identity) and identity.kind is IdentityKind.SCANNER:
            return  # NOTE: the scanner of a delegated scan pulls what it is to judge
        project = request.repository.partition("/")[0]
        policy = self._policies.get(project)
        if policy is None:
            return
        key = (policy.project_id, manifest.digest)
        if self._verdicts.get(key) is not None:
            return
        refusal = None
        if scannable(manifest.media_type, manifest.payload):
            refusal = await anyio.to_thread.run_sync(self._decide, policy, manifest.digest)
        if refusal is not None:
            raise RegistryError(
                OCIErrorCode.DENIED,
                refusal.message(project),
                detail={
                    "digest": manifest.digest,
                    "vulnerabilities": list(refusal.vulnerabilities),
                },
            )
        self._verdicts.put(key, True)


def _project_id(registry: Registry, name: str) -> int | None:
    with registry.metadata.read() as session:
        project = session.projects.get(name)
    return None if project is None else project.id


def with_scan_hooks(registry: Registry, hooks: Hooks) -> Hooks:
    """``hooks`` plus the pull gate; puts the reports service and starter in extras."""
    store = registry.extras["scan_store"]
    gate = ScanPullGate(store, registry.settings.scan)
    gate.refresh()
    registry.extras[_GATE] = gate
    registry.extras[_REPORTS] = ScanReports(
        store, lambda name: _project_id(registry, name), gate.changed
    )
    registry.extras[_STARTER] = TemporalStarter(registry.settings.temporal)
    return replace(hooks, manifest_serve=(*hooks.manifest_serve, gate.manifest_serving))


async def start_scan_gate(registry: Registry) -> None:
    """Keep re-reading the gating policies while the app runs."""
    gate = registry.extras.get(_GATE)
    if isinstance(gate, ScanPullGate):
        registry.extras[_TASK] = asyncio.get_running_loop().create_task(gate.run())


async def stop_scan_gate(registry: Registry) -> None:
    task = registry.extras.pop(_TASK, None)
    if isinstance(task, asyncio.Task):
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def scan_reports_of(registry: Registry) -> ScanReports:
    reports = registry.extras[_REPORTS]
    assert isinstance(reports, ScanReports)  # noqa: S101 - set by with_scan_hooks
    return reports


def scan_starter_of(registry: Registry) -> TemporalStarter:
    starter = registry.extras[_STARTER]
    assert isinstance(starter, TemporalStarter)  # noqa: S101 - set by with_scan_hooks
    return starter
