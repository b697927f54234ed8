"""The served scanner API's use cases: accept a scan request, run it, read its report.

The API accepts a request (:meth:`AdapterScans.accept`: checked, stored, its id
returned), a workflow runs it (:meth:`AdapterScans.run`, over an image source that pulls
from the requester's registry) and the API reads the outcome (:meth:`AdapterScans.report`).
Running is idempotent: a scan already finished is not run again, and a repeat of an
interrupted run replaces nothing but its own row.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from core.ports import Clock
from core.sbom_formats import SbomSubject
from core.scan.analyzer import Analyzer
from core.scan.errors import ScanFailedError
from core.scan.source import ImageSource
from core.scan_records import (
    SCANNER_NAME,
    SCANNER_VENDOR,
    SCANNER_VERSION,
    Inventory,
    PlatformFinding,
    ScanReport,
    ScanStatus,
)
from core.scan_reports import harbor_report
from core.scanner_api import (
    SBOM,
    AdapterScan,
    AdapterScanStore,
    AdapterStatus,
    ScanApiError,
    ScanRequestIn,
    check_request,
    enabled_capabilities,
)
from core.vulndb.matching import VulnLookup, match


class AdapterScans:
    """Scans requested through the served API (see the module)."""

    def __init__(
        self,
        store: AdapterScanStore,
        clock: Clock,
        keep_seconds: int,
        lookup: VulnLookup | None = None,
        analyzer: Analyzer | None = None,
        data_time: Callable[[], datetime | None] = lambda: None,
    ) -> None:
        self._store, self._clock, self._keep = store, clock, keep_seconds
        self._lookup, self._analyzer, self._data_time = lookup, analyzer, data_time

    @property
    def store(self) -> AdapterScanStore:
        return self._store

    def accept(self, request: ScanRequestIn) -> AdapterScan:
        """Check and store a request (``ScanApiError`` when refused); the new scan."""
        check_request(request)
        capabilities, sbom_media_types = enabled_capabilities(request)
        now = self._clock.now()
        self._store.purge(now - timedelta(seconds=self._keep))
        scan = AdapterScan(
            id=uuid.uuid4().hex,
            registry_url=request.registry.url.rstrip("/"),
            repository=request.artifact.repository,
            digest=request.artifact.digest,
            mime_type=request.artifact.mime_type,
            status=AdapterStatus.QUEUED,
            created_at=now,
            authorization=request.registry.authorization,
            insecure=request.registry.insecure,
            capabilities=capabilities,
            sbom_media_types=sbom_media_types,
        )
        self._store.create(scan)
        return scan

    def _finished(self, scan_id: str) -> AdapterScan | None:
        scan = self._store.get(scan_id)
        if scan is None:
            raise ScanApiError(404, f"scan request {scan_id!r} not found")
        if scan.status in (AdapterStatus.QUEUED, AdapterStatus.RUNNING):
            return None
        if scan.status is AdapterStatus.FAILED:
            raise ScanApiError(500, f"scan failed: {scan.reason or 'unknown reason'}")
        return scan

    def sbom_report(self, scan_id: str, media_type: str) -> dict[str, Any] | None:
        """The SBOM report (``media_type``: SPDX or CycloneDX JSON); ``None`` while it runs.

        The document is the one Moorage attaches to its own images as a referrer
        (``core.scan_sbom``): for an image its inventory's, for an index the index's.
        Raises ``ScanApiError`` 400 when the request did not enable the ``sbom``
        capability or that format, else as :meth:`report`.
        """
        scan = self._store.get(scan_id)
        if scan is not None and SBOM not in scan.capabilities:
            raise ScanApiError(400, f"scan request {scan_id!r} did not enable the sbom capability")
        if scan is not None and media_type not in scan.sbom_media_types:
            raise ScanApiError(
                400,
                f"scan request {scan_id!r} asked for the SBOM formats "
                f"{list(scan.sbom_media_types)}, not {media_type!r}",
            )
        done = self._finished(scan_id)
        if done is None:
            return None
        when = done.finished_at or done.created_at
        # NOTE: the builders' libraries load with the first report asked for (core.sbom_formats)
        from core.scan_sbom import sbom_document  # noqa: PLC0415

        subject = SbomSubject(done.repository, done.digest, when)
        document = sbom_document(media_type, subject, done.inventories)
        return {
            "generated_at": when.isoformat(),
            "artifact": {
                "repository": done.repository,
                "digest": done.digest,
                "mime_type": done.mime_type,
            },
            "scanner": {"name": SCANNER_NAME, "vendor": SCANNER_VENDOR, "version": SCANNER_VERSION},
            "vendor_attributes": {"images": len(done.inventories)},
            "media_type": media_type,
            "sbom": document,
        }

    def report(self, scan_id: str) -> dict[str, Any] | None:
        """The report document; ``None`` while the scan runs.

        Raises ``ScanApiError`` 404 for an unknown (or expired) id, 500 for a failed scan.
        """
        scan = self._finished(scan_id)
        if scan is None:
            return None
        report = ScanReport(
            project_id=0,
            repository=scan.repository,
            digest=scan.digest,
            status=ScanStatus.SUCCEEDED,
            started_at=scan.created_at,
            finished_at=scan.finished_at,
            data_updated_at=scan.data_updated_at,
            findings=scan.findings,
            platforms=scan.platforms,
        )
        return harbor_report(report, scan.mime_type, self._clock.now())

    def run(self, scan: AdapterScan, source: ImageSource, beat: Callable[[], None]) -> AdapterScan:
        """Analyze and match ``scan``'s artifact from ``source``; store and return the outcome.

        Other errors of ``source`` (an unreachable registry) propagate, for a retry.
        """
        if self._analyzer is None or self._lookup is None:
            raise RuntimeError("AdapterScans.run needs the analyzer and the vulnerability data")
        findings: list[PlatformFinding] = []
        failures: list[str] = []
        platforms: list[str] = []
        inventories: list[Inventory] = []
        try:
            results = self._analyzer.analyze(source, scan.digest)
        except ScanFailedError as exc:
            results, failures = [], [exc.reason]
        for result in results:
            platform = str(result.platform) if result.platform is not None else None
            if platform is not None:
                platforms.append(platform)
            if result.failure is not None:
                failures.append(f"{platform or result.manifest_digest}: {result.failure}")
                continue
            beat()
            inventories.append(Inventory(result.manifest_digest, platform, None, result.packages))
            found = match(result.packages, result.os, self._lookup)
            findings += [PlatformFinding(platform, f) for f in found]
        done = replace(
            scan,
            status=AdapterStatus.FAILED if failures else AdapterStatus.SUCCEEDED,
            finished_at=self._clock.now(),
            reason="; ".join(failures)[:1024] or None,
            data_updated_at=self._data_time(),
            findings=tuple(findings),
            platforms=tuple(platforms),
            inventories=tuple(inventories),
            authorization="",
        )
        self._store.finish(done)
        return done

    def fail(self, scan_id: str, reason: str) -> None:
        """Record that the scan ``scan_id`` ended without a result."""
        scan = self._store.get(scan_id)
        if scan is None or scan.status in (AdapterStatus.SUCCEEDED, AdapterStatus.FAILED):
            return
        self._store.finish(
            replace(
                scan,
                status=AdapterStatus.FAILED,
                finished_at=self._clock.now(),
                reason=reason[:1024],
                authorization="",
            )
        )
