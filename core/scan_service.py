"""Scanning one artifact: analyze its images into inventories, then match them.

The two steps are separate so each is idempotent on its own and a worker killed in
either repeats only that step:

- :meth:`ScanService.analyze` reads the layers of every image of the artifact (one per
  platform of an index) that has no stored inventory yet and stores one per image.
  An inventory that records a failure is analyzed again by the next scan.
- :meth:`ScanService.match` matches the stored inventories against the vulnerability
  data and replaces the artifact's report (one per project and digest). It reads no
  layer, which is what a re-match after a data update runs.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from core.ports import BlobStore, Clock
from core.scan.analyzer import Analyzer, platform_members
from core.scan.errors import ScanFailedError
from core.scan.source import BlobStoreSource, ImageSource
from core.scan_records import (
    Inventory,
    PlatformFinding,
    ScanReport,
    ScanStatus,
    ScanStore,
    ScanTarget,
    StoredArtifact,
)
from core.vuln_policy import INDEX_TYPES, scannable
from core.vulndb.matching import VulnLookup, match


class Artifacts(Protocol):
    """Stored manifests, read by repository and digest."""

    def manifest(self, repository: str, digest: str) -> tuple[StoredArtifact, str] | None:
        """The artifact and its project's tenant key, or ``None`` when not stored."""

    def page(
        self, project_id: int | None, after: int, limit: int
    ) -> list[tuple[int, StoredArtifact]]:
        """Stored manifests with a position above ``after`` (of one project, or all)."""


@dataclass(frozen=True, slots=True)
class Member:
    """One image of an artifact: the image itself, or a platform of an index."""

    digest: str
    platform: str | None


class _BeatingSource:
    """An image source that calls ``beat`` on every chunk it reads (liveness)."""

    def __init__(self, source: ImageSource, beat: Callable[[], None]) -> None:
        self._source, self._beat = source, beat

    def manifest(self, digest: str) -> bytes | None:
        self._beat()
        return self._source.manifest(digest)

    def blob(self, digest: str) -> Iterator[bytes]:
        for chunk in self._source.blob(digest):
            self._beat()
            yield chunk


def members_of(artifact: StoredArtifact) -> list[Member]:
    """The images of ``artifact``: itself, or each platform an index lists."""
    try:
        document: Any = json.loads(artifact.payload)
    except ValueError:
        return [Member(artifact.target.digest, None)]
    kind = str(document.get("mediaType") or artifact.media_type)
    if kind in INDEX_TYPES or ("manifests" in document and "layers" not in document):
        return [
            Member(digest, str(platform) if platform else None)
            for digest, platform in platform_members(document)
        ]
    return [Member(artifact.target.digest, None)]


class ScanService:
    """Analyzes and matches artifacts; used by the scan activities."""

    def __init__(
        self,
        artifacts: Artifacts,
        blobs: BlobStore,
        store: ScanStore,
        lookup: VulnLookup,
        data_time: Callable[[], datetime | None],
        analyzer: Analyzer,
        clock: Clock,
    ) -> None:
        self._artifacts, self._blobs, self._store = artifacts, blobs, store
        self._lookup, self._data_time = lookup, data_time
        self._analyzer, self._clock = analyzer, clock

    @property
    def store(self) -> ScanStore:
        return self._store

    def _stored(self, target: ScanTarget) -> tuple[StoredArtifact, str] | None:
        return self._artifacts.manifest(target.repository, target.digest)

    def analyze(self, target: ScanTarget, beat: Callable[[], None]) -> bool:
        """Store an inventory for every image of ``target`` that lacks one.

        Returns whether the artifact is stored and scannable (else nothing is written).
        """
        stored = self._stored(target)
        if stored is None:
            return False
        artifact, tenant = stored
        if not scannable(artifact.media_type, artifact.payload):
            return False
        self._store.mark_running(
            target.project_id, target.repository, target.digest, self._clock.now()
        )
        source = BlobStoreSource(
            self._blobs, tenant, lambda d: self._manifest_bytes(target.repository, d)
        )
        beating = _BeatingSource(source, beat)
        for member in members_of(artifact):
            known = self._store.inventory(target.project_id, member.digest)
            if known is not None and known.failure is None:
                continue
            self._store.save_inventory(target.project_id, self._analyze(beating, member))
            beat()
        return True

    def _manifest_bytes(self, repository: str, digest: str) -> bytes | None:
        stored = self._artifacts.manifest(repository, digest)
        return None if stored is None else stored[0].payload

    def _analyze(self, source: ImageSource, member: Member) -> Inventory:
        try:
            results = self._analyzer.analyze(source, member.digest)
        except ScanFailedError as exc:
            return Inventory(member.digest, member.platform, None, (), exc.reason)
        if len(results) != 1:
            return Inventory(member.digest, member.platform, None, (), "not an image manifest")
        (result,) = results
        return Inventory(member.digest, member.platform, result.os, result.packages, result.failure)

    def artifact(self, target: ScanTarget) -> StoredArtifact | None:
        """``target``'s stored manifest if it is scannable (else ``None``)."""
        stored = self._stored(target)
        if stored is None or not scannable(stored[0].media_type, stored[0].payload):
            return None
        return stored[0]

    def is_scannable(self, target: ScanTarget) -> bool:
        """Whether ``target`` is stored and a container image (or an index of them)."""
        stored = self._stored(target)
        return stored is not None and scannable(stored[0].media_type, stored[0].payload)

    def match(
        self, target: ScanTarget, beat: Callable[[], None] = lambda: None
    ) -> ScanReport | None:
        """Replace ``target``'s report with a match of its stored inventories.

        Returns ``None`` (and writes nothing) when the artifact is no longer stored or
        not scannable.
        """
        stored = self._stored(target)
        if stored is None:
            return None
        artifact, _ = stored
        if not scannable(artifact.media_type, artifact.payload):
            return None
        previous = self._store.report(target.project_id, target.digest)
        started = previous.started_at if previous is not None else self._clock.now()
        findings: list[PlatformFinding] = []
        failures: list[str] = []
        platforms: list[str] = []
        for member in members_of(artifact):
            inventory = self._store.inventory(target.project_id, member.digest)
            label = member.platform or member.digest
            if member.platform:
                platforms.append(member.platform)
            if inventory is None:
                failures.append(f"{label}: not analyzed")
                continue
            if inventory.failure is not None:
                failures.append(f"{label}: {inventory.failure}")
                continue
            found = match(inventory.packages, inventory.os, self._lookup)
            beat()
            findings += [PlatformFinding(member.platform, f) for f in found]
        report = ScanReport(
            project_id=target.project_id,
            repository=target.repository,
            digest=target.digest,
            status=ScanStatus.FAILED if failures else ScanStatus.SUCCEEDED,
            started_at=started,
            finished_at=self._clock.now(),
            reason="; ".join(failures) or None,
            data_updated_at=self._data_time(),
            findings=tuple(findings),
            platforms=tuple(platforms),
        )
        self._store.save_report(report)
        return report

    def candidates(
        self, project_id: int | None, after: int, limit: int
    ) -> tuple[list[ScanTarget], int, bool]:
        """Scannable artifacts after position ``after``: (targets, next position, more)."""
        page = self._artifacts.page(project_id, after, limit)
        targets = [a.target for _, a in page if scannable(a.media_type, a.payload)]
        return targets, (page[-1][0] if page else after), len(page) == limit

    def failed(self, target: ScanTarget, reason: str) -> None:
        """Record that ``target``'s scan ended without a result (``reason``)."""
        previous = self._store.report(target.project_id, target.digest)
        now = self._clock.now()
        self._store.save_report(
            ScanReport(
                target.project_id,
                target.repository,
                target.digest,
                ScanStatus.FAILED,
                previous.started_at if previous is not None else now,
                now,
                reason,
            )
        )
