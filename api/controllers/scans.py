"""Management API: scan reports, on-demand scans, CVE allowlists and the scan policy.

Per project under ``/api/v1/projects/{p}/``: ``scans`` (list with filters, start a scan of
one artifact or of the whole project), ``scans/{digest}`` (the summary),
``scans/{digest}/report`` (Harbor's report document), ``scan-policy`` and
``scan-allowlist``. System-wide: ``/api/v1/scans`` (scan everything, re-match every
report) and ``/api/v1/scan-allowlist`` (system administrators). Reads need the project's
``scan`` ``read`` right, starting scans ``scan`` ``create``, changing the policy and the
allowlist ``configuration`` ``update`` (``core.rbac``).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import anyio.to_thread
from litestar import Controller, Request, Response, get, post, put
from litestar.di import NamedDependency
from litestar.params import FromPath, FromQuery, JSONBody
from pydantic import BaseModel, ConfigDict, Field

from api.context import registry_of
from api.guards import project_permission, signed_in, system_admin
from api.pagination import NAMES, Page, PageParams
from api.scan_wiring import scan_reports_of, scan_starter_of
from core.errors import InvalidInputError, NotFoundError
from core.scan_jobs import (
    REMATCH_WORKFLOW,
    SCAN_MANY_WORKFLOW,
    SCAN_WORKFLOW,
    RematchInput,
    ScanManyInput,
    demand_token,
    demand_workflow_id,
)
from core.scan_records import (
    ALLOWLIST_COMMENT_MAX,
    ALLOWLIST_MAX,
    VULN_ID_MAX,
    VULN_ID_PATTERN,
    AllowlistEntry,
    ReportFilter,
    ScanReport,
    ScanStatus,
    ScanTarget,
)
from core.scan_reports import HARBOR_REPORT, harbor_report, summary
from core.vuln_policy import scannable
from core.vulndb.severity import Severity


class SummaryOut(BaseModel):
    repository: str
    digest: str
    status: str
    reason: str | None
    severity: str | None
    total: int
    fixable: int
    counts: dict[str, int]
    scanner: dict[str, str]
    started_at: str
    finished_at: str | None
    data_updated_at: str | None
    data_age_seconds: int | None
    platforms: list[str]

    @classmethod
    def of(cls, report: ScanReport) -> SummaryOut:
        return cls(**summary(report, datetime.now(UTC)))


class SummaryPage(Page[SummaryOut]):
    pass


class ScanIn(BaseModel):
    """One artifact (``repository`` and ``digest``), or the whole project (neither)."""

    model_config = ConfigDict(extra="forbid")
    repository: str | None = Field(default=None, max_length=255)
    digest: str | None = Field(default=None, max_length=256)


class ScanStarted(BaseModel):
    workflow_id: str
    started: bool


class PolicyIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    scan_on_push: bool = True
    #: Refuse pulls of images with a finding at or above this severity (after allowlists).
    prevent_severity: Severity | None = None
    #: Refuse pulls of scannable images not scanned yet, or whose scan failed.
    refuse_unscanned: bool = False


class AllowlistItem(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str = Field(min_length=1, max_length=VULN_ID_MAX, pattern=VULN_ID_PATTERN)
    expires_at: datetime | None = None
    comment: str = Field(default="", max_length=ALLOWLIST_COMMENT_MAX)


class AllowlistIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    items: list[AllowlistItem] = Field(default_factory=list, max_length=ALLOWLIST_MAX)


class AllowlistOut(BaseModel):
    items: list[AllowlistItem]
    #: Ids whose entry expired (kept, but they no longer count).
    expired: list[str]


def _allowlist_out(entries: list[AllowlistEntry]) -> AllowlistOut:
    now = datetime.now(UTC)
    return AllowlistOut(
        items=[
            AllowlistItem(id=e.vulnerability_id, expires_at=e.expires_at, comment=e.comment)
            for e in entries
        ],
        expired=[e.vulnerability_id for e in entries if not e.active(now)],
    )


def _entries(data: AllowlistIn) -> list[AllowlistEntry]:
    return [
        AllowlistEntry(
            i.id,
            i.expires_at.astimezone(UTC) if i.expires_at and i.expires_at.tzinfo else i.expires_at,
            i.comment,
        )
        for i in data.items
    ]


async def _start_one(request: Request[Any, Any, Any], project: str, data: ScanIn) -> ScanStarted:
    registry = registry_of(request)
    if not data.repository or not data.digest:
        raise InvalidInputError("give both repository and digest, or neither", field="digest")
    if data.repository.partition("/")[0] != project:
        raise InvalidInputError(f"repository is not in project {project!r}", field="repository")

    def load() -> ScanTarget:
        with registry.metadata.read() as session:
            repository = session.repositories.get(str(data.repository))
            manifest = (
                session.manifests.get(repository.id, str(data.digest)) if repository else None
            )
        if repository is None or manifest is None:
            raise NotFoundError(f"no manifest {data.digest} in {data.repository}", field="digest")
        if not scannable(manifest.media_type, manifest.payload):
            raise InvalidInputError("the artifact is not a container image", field="digest")
        return ScanTarget(repository.project_id, project, repository.name, str(data.digest))

    target = await anyio.to_thread.run_sync(load)
    workflow_id = demand_workflow_id(target)
    search = {
        "MoorageProject": project,
        "MoorageRepository": target.repository,
        "MoorageDigest": target.digest,
    }
    started = await scan_starter_of(registry).start(
        SCAN_WORKFLOW, target, workflow_id, search=search
    )
    return ScanStarted(workflow_id=workflow_id, started=started)


class ProjectScanController(Controller):
    path = "/api/v1/projects/{project:str}"
    tags = ["scans"]  # noqa: RUF012

    @get(
        "/scans", summary="Scan summaries of a project", guards=[project_permission("scan", "read")]
    )
    async def list_scans(
        self,
        request: Request[Any, Any, Any],
        project: FromPath[str],
        page: NamedDependency[PageParams],
        repository: FromQuery[str | None] = None,
        status: FromQuery[ScanStatus | None] = None,
        severity: FromQuery[Severity | None] = None,
    ) -> Response[SummaryPage]:
        reports = scan_reports_of(registry_of(request))
        where = ReportFilter(repository, status, severity)
        window = await page.fetch(
            lambda after, count: reports.reports(project, where, after, count),
            key=lambda report: report.digest,
            cursor=NAMES,
        )
        return window.respond(request, SummaryPage, [SummaryOut.of(r) for r in window.items])

    @post(
        "/scans",
        summary="Scan one artifact, or every image of the project",
        status_code=202,
        guards=[signed_in, project_permission("scan", "create")],
    )
    async def start_scan(
        self, request: Request[Any, Any, Any], project: FromPath[str], data: JSONBody[ScanIn]
    ) -> ScanStarted:
        if data.repository is not None or data.digest is not None:
            return await _start_one(request, project, data)
        registry = registry_of(request)
        project_id = await anyio.to_thread.run_sync(
            lambda: scan_reports_of(registry).project_id(project)
        )
        workflow_id = f"scan-many-{project}-{demand_token()}"
        params = ScanManyInput(project_id, registry.settings.scan.concurrency)
        started = await scan_starter_of(registry).start(
            SCAN_MANY_WORKFLOW, params, workflow_id, search={"MoorageProject": project}
        )
        return ScanStarted(workflow_id=workflow_id, started=started)

    @get(
        "/scans/{digest:str}",
        summary="Scan summary of one artifact",
        guards=[project_permission("scan", "read")],
    )
    async def read_scan(
        self, request: Request[Any, Any, Any], project: FromPath[str], digest: FromPath[str]
    ) -> SummaryOut:
        reports = scan_reports_of(registry_of(request))
        return SummaryOut.of(await anyio.to_thread.run_sync(reports.report, project, digest))

    @get(
        "/scans/{digest:str}/report",
        summary="The full vulnerability report (Harbor's schema, version 1.1)",
        guards=[project_permission("scan", "read")],
    )
    async def read_report(
        self, request: Request[Any, Any, Any], project: FromPath[str], digest: FromPath[str]
    ) -> Response[bytes]:
        registry = registry_of(request)
        report = await anyio.to_thread.run_sync(scan_reports_of(registry).report, project, digest)

        def media_type() -> str:
            with registry.metadata.read() as session:
                repository = session.repositories.get(report.repository)
                found = session.manifests.get(repository.id, digest) if repository else None
            return found.media_type if found is not None else ""

        body = harbor_report(report, await anyio.to_thread.run_sync(media_type), datetime.now(UTC))
        return Response(content=json.dumps(body).encode(), media_type=HARBOR_REPORT)

    @get(
        "/scan-policy",
        summary="Scan policy of a project",
        guards=[project_permission("scan", "read")],
    )
    async def read_policy(
        self, request: Request[Any, Any, Any], project: FromPath[str]
    ) -> PolicyIn:
        policy = await anyio.to_thread.run_sync(
            scan_reports_of(registry_of(request)).policy, project
        )
        return PolicyIn(
            scan_on_push=policy.scan_on_push,
            prevent_severity=policy.prevent_severity,
            refuse_unscanned=policy.refuse_unscanned,
        )

    @put(
        "/scan-policy",
        summary="Set the scan policy of a project (scan on push, pull gate)",
        guards=[signed_in, project_permission("configuration", "update")],
    )
    async def write_policy(
        self, request: Request[Any, Any, Any], project: FromPath[str], data: JSONBody[PolicyIn]
    ) -> PolicyIn:
        reports = scan_reports_of(registry_of(request))
        await anyio.to_thread.run_sync(
            lambda: reports.set_policy(
                project,
                scan_on_push=data.scan_on_push,
                prevent_severity=data.prevent_severity,
                refuse_unscanned=data.refuse_unscanned,
            )
        )
        return data

    @get(
        "/scan-allowlist",
        summary="CVE allowlist of a project",
        guards=[project_permission("scan", "read")],
    )
    async def read_allowlist(
        self, request: Request[Any, Any, Any], project: FromPath[str]
    ) -> AllowlistOut:
        reports = scan_reports_of(registry_of(request))
        return _allowlist_out(await anyio.to_thread.run_sync(reports.allowlist, project))

    @put(
        "/scan-allowlist",
        summary="Replace the CVE allowlist of a project",
        guards=[signed_in, project_permission("configuration", "update")],
    )
    async def write_allowlist(
        self, request: Request[Any, Any, Any], project: FromPath[str], data: JSONBody[AllowlistIn]
    ) -> AllowlistOut:
        reports = scan_reports_of(registry_of(request))
        kept = await anyio.to_thread.run_sync(reports.set_allowlist, project, _entries(data))
        return _allowlist_out(kept)


class SystemScanController(Controller):
    path = "/api/v1"
    tags = ["scans"]  # noqa: RUF012

    @post(
        "/scans",
        summary="Scan every image of every project",
        status_code=202,
        guards=[signed_in, system_admin],
    )
    async def scan_all(self, request: Request[Any, Any, Any]) -> ScanStarted:
        registry = registry_of(request)
        workflow_id = f"scan-many-all-{demand_token()}"
        params = ScanManyInput(None, registry.settings.scan.concurrency)
        started = await scan_starter_of(registry).start(SCAN_MANY_WORKFLOW, params, workflow_id)
        return ScanStarted(workflow_id=workflow_id, started=started)

    @post(
        "/scans/rematch",
        summary="Match every stored report again (after a data update)",
        status_code=202,
        guards=[signed_in, system_admin],
    )
    async def rematch(self, request: Request[Any, Any, Any]) -> ScanStarted:
        workflow_id = f"scan-rematch-{demand_token()}"
        starter = scan_starter_of(registry_of(request))
        started = await starter.start(REMATCH_WORKFLOW, RematchInput(), workflow_id)
        return ScanStarted(workflow_id=workflow_id, started=started)

    @get("/scan-allowlist", summary="The system CVE allowlist", guards=[signed_in])
    async def read_allowlist(self, request: Request[Any, Any, Any]) -> AllowlistOut:
        reports = scan_reports_of(registry_of(request))
        return _allowlist_out(await anyio.to_thread.run_sync(reports.allowlist, None))

    @put(
        "/scan-allowlist",
        summary="Replace the system CVE allowlist",
        guards=[signed_in, system_admin],
    )
    async def write_allowlist(
        self, request: Request[Any, Any, Any], data: JSONBody[AllowlistIn]
    ) -> AllowlistOut:
        reports = scan_reports_of(registry_of(request))
        kept = await anyio.to_thread.run_sync(reports.set_allowlist, None, _entries(data))
        return _allowlist_out(kept)
