"""Scanner API activities: run a served scan, and hand an own scan to an external scanner.

- ``scanner_api_scan_artifact`` pulls the requester's image (through the outbound
  policy), analyzes and matches it, and stores the outcome under the scan's id; a scan
  already finished is not run again. It heartbeats every few seconds while it runs.
- ``scan_delegate_artifact`` asks the external scanner the artifact's project uses
  (``core.scanners.delegate_of``: its selected registration, else the default one, else
  the ``scanner_api.delegate`` setting) to scan an artifact of this installation, handing
  it a pull-only token for that repository, polls the report (heartbeating the scanner's
  name and scan id, so a retry resumes polling the same scan rather than requesting
  another) and stores the report as the artifact's own. When the scanner's metadata
  offers the ``sbom`` capability (API v1.2) in CycloneDX or SPDX JSON, the request enables
  it too and the scanner's SBOM documents are attached to the artifact as referrers,
  as Moorage attaches its own (a scanner without it leaves the artifact without SBOMs).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import AbstractAsyncContextManager
from datetime import UTC, datetime
from typing import Any, Final

import anyio.to_thread
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.scans import HEARTBEAT_EVERY
from core.access import IdentityKind, Scope
from core.scan.source import ImageSource
from core.scan_jobs import ADAPTER_FAIL, ADAPTER_SCAN, NOT_DELEGATED, SCAN_DELEGATE, AdapterFailure
from core.scan_records import ScanReport, ScanStatus, ScanTarget
from core.scan_service import ScanService
from core.scanner_api import (
    SBOM,
    SBOM_REPORT,
    VULNERABILITY,
    AdapterScan,
    AdapterStatus,
    ExternalScanner,
    ExternalScannerError,
    Poll,
    findings_of,
    sbom_formats,
    sbom_of,
    scanner_label,
)
from core.scanner_api_service import AdapterScans
from core.scanner_api_settings import DelegateSettings
from core.scanners import ScannerCall
from core.tokens import TokenService

#: Subject of the pull tokens handed to an external scanner.
SCANNER_SUBJECT: Final = "scanner"
logger = logging.getLogger(__name__)


@contextlib.asynccontextmanager
async def heartbeating(details: Callable[[], tuple[Any, ...]] = tuple) -> AsyncIterator[None]:
    """Heartbeat the current activity every few seconds while the block runs."""

    async def beat() -> None:
        while True:
            activity.heartbeat(*details())
            await asyncio.sleep(HEARTBEAT_EVERY)

    task = asyncio.get_running_loop().create_task(beat())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


class ScannerApiActivities:
    """The served scans' activities."""

    def __init__(
        self,
        scans: AdapterScans,
        sources: Callable[[AdapterScan], AbstractAsyncContextManager[ImageSource]],
    ) -> None:
        """``sources(scan)`` opens the image source of the requester's registry."""
        self._scans, self._sources = scans, sources

    @activity.defn(name=ADAPTER_SCAN)
    async def scanner_api_scan_artifact(self, scan_id: str) -> str:
        """Run the served scan ``scan_id``; its status (``gone``: expired or unknown)."""
        store = self._scans.store
        scan = await anyio.to_thread.run_sync(store.get, scan_id)
        if scan is None:
            return "gone"
        if scan.status in (AdapterStatus.SUCCEEDED, AdapterStatus.FAILED):
            return str(scan.status)
        await anyio.to_thread.run_sync(store.mark_running, scan_id)
        async with self._sources(scan) as source, heartbeating():
            done = await anyio.to_thread.run_sync(self._scans.run, scan, source, lambda: None)
        return str(done.status)

    @activity.defn(name=ADAPTER_FAIL)
    def scanner_api_record_failure(self, params: AdapterFailure) -> None:
        """Record that a served scan ended without a result."""
        self._scans.fail(params.scan_id, params.reason)


class DelegateActivities:
    """Hands this installation's scans to the external scanner their project uses."""

    def __init__(
        self,
        scans: ScanService,
        settings: DelegateSettings,
        registry_url: str | None,
        tokens: Callable[[], TokenService],
        choose: Callable[[str], ScannerCall | None],
        scanner: Callable[[ScannerCall], ExternalScanner],
        attach: Callable[[ScanTarget, Mapping[str, bytes]], int],
    ) -> None:
        """``choose(project)`` picks the scanner; ``scanner(call)`` opens a client of it.

        ``choose`` answers ``None`` for the built-in analyzer; a client is closed after
        each scan. ``settings`` gives the polling bounds. ``attach(target, documents)``
        attaches the scanner's SBOM documents (``SbomPublisher.attach_documents``).
        """
        self._scans, self._settings, self._registry = scans, settings, registry_url
        self._tokens, self._choose, self._scanner = tokens, choose, scanner
        self._attach = attach

    def _request(self, target: ScanTarget, formats: tuple[str, ...]) -> dict[str, Any] | None:
        artifact = self._scans.artifact(target)
        if artifact is None:
            return None
        if not self._registry:
            raise ApplicationError(
                "a delegated scan needs the registry's URL "
                "(scanner_api.delegate.registry_url or public_url)",
                non_retryable=True,
            )
        scope = Scope("repository", target.repository, frozenset({"pull"}))
        issued = self._tokens().issue(
            SCANNER_SUBJECT,
            [scope],
            False,
            datetime.now(UTC),
            {"kind": str(IdentityKind.SCANNER)},
        )
        self._scans.store.mark_running(
            target.project_id, target.repository, target.digest, datetime.now(UTC)
        )
        return {
            "registry": {"url": self._registry, "authorization": f"Bearer {issued.token}"},
            "artifact": {
                "repository": target.repository,
                "digest": target.digest,
                "mime_type": artifact.media_type,
            },
            "enabled_capabilities": [
                {"type": VULNERABILITY},
                *(
                    [
                        {
                            "type": SBOM,
                            "produces_mime_types": [SBOM_REPORT],
                            "parameters": {"sbom_media_types": list(formats)},
                        }
                    ]
                    if formats
                    else []
                ),
            ],
        }

    def _store(self, target: ScanTarget, report: dict[str, Any]) -> str:
        try:
            findings = findings_of(report)
        except TypeError as exc:
            raise ApplicationError(f"the scanner's report: {exc}", non_retryable=True) from exc
        previous = self._scans.store.report(target.project_id, target.digest)
        now = datetime.now(UTC)
        self._scans.store.save_report(
            ScanReport(
                project_id=target.project_id,
                repository=target.repository,
                digest=target.digest,
                status=ScanStatus.SUCCEEDED,
                started_at=previous.started_at if previous is not None else now,
                finished_at=now,
                findings=findings,
                platforms=tuple(sorted({f.platform for f in findings if f.platform})),
                scanner=scanner_label(report),
            )
        )
        return str(ScanStatus.SUCCEEDED)

    @activity.defn(name=SCAN_DELEGATE)
    async def scan_delegate_artifact(self, target: ScanTarget) -> str:
        """Scan ``target`` with the external scanner: its status, or ``local``/``skipped``."""
        call = await anyio.to_thread.run_sync(self._choose, target.project)
        if call is None:
            return NOT_DELEGATED
        client = self._scanner(call)
        pending = activity.info().heartbeat_details
        resumed = len(pending) > 1 and str(pending[1]) == call.name
        remote: list[str] = [str(pending[0])] if resumed else []
        documents: dict[str, bytes] = {}
        try:
            async with heartbeating(lambda: (*remote, call.name)):
                formats = await self._formats(client, call.name)
                if not remote:
                    request = await anyio.to_thread.run_sync(self._request, target, formats)
                    if request is None:
                        return "skipped"
                    remote.append(await client.scan(request))
                    activity.heartbeat(*remote, call.name)
                report = await self._poll(client.report, remote[0])
                for media_type in formats:
                    documents |= await self._sbom(client, remote[0], media_type, call.name)
        except ExternalScannerError as exc:
            raise ApplicationError(str(exc), non_retryable=True) from exc
        finally:
            await client.aclose()
        status = await anyio.to_thread.run_sync(self._store, target, report)
        if documents:
            await anyio.to_thread.run_sync(self._attach, target, documents)
        return status

    @staticmethod
    async def _formats(client: ExternalScanner, name: str) -> tuple[str, ...]:
        """The SBOM formats the scanner offers (none when its metadata cannot be read)."""
        try:
            return sbom_formats(await client.metadata())
        except ExternalScannerError as exc:
            logger.warning("scanner %s: no metadata, so no SBOMs: %s", name, exc)
            return ()

    async def _sbom(
        self, client: ExternalScanner, scan_id: str, media_type: str, name: str
    ) -> dict[str, bytes]:
        """The scanner's ``media_type`` SBOM of the scan (none, logged, when it fails)."""
        try:
            report = await self._poll(lambda i: client.sbom_report(i, media_type), scan_id)
            return {media_type: sbom_of(report, media_type)}
        except ExternalScannerError as exc:
            logger.warning("scanner %s: no %s SBOM of scan %s: %s", name, media_type, scan_id, exc)
            return {}

    async def _poll(self, read: Callable[[str], Awaitable[Poll]], scan_id: str) -> dict[str, Any]:
        settings = self._settings
        deadline = time.monotonic() + settings.timeout_seconds
        while time.monotonic() < deadline:
            poll = await read(scan_id)
            if poll.report is not None:
                return poll.report
            wait = min(max(poll.refresh_after, settings.poll_seconds), settings.max_poll_seconds)
            await asyncio.sleep(wait)
        raise ApplicationError(
            f"the scanner gave no report within {settings.timeout_seconds:g} s",
            non_retryable=True,
        )
