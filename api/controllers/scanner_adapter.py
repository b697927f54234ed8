"""The scanner adapter: Harbor's Pluggable Scanner API v1.2 over Moorage's own scanner.

Under ``/scanner-adapter/api/v1``: ``GET metadata``, ``POST scan`` (202 ``{id}``; the
scan runs as a workflow that pulls the artifact from the registry the request names)
and ``GET scan/{id}/report`` (302 with ``Refresh-After`` while it runs, then the
report: the vulnerability report, or with ``Accept`` the SBOM report type and the
``sbom_media_type`` query the SBOM report of the ``sbom`` capability). Callers
authenticate with one of the configured ``scanner_api.tokens``, as
``Authorization: Bearer <token>`` or ``X-ScannerAdapter-API-Key: <token>``. Errors are
Harbor's ``{"error": {"message": ...}}`` documents.
"""

from __future__ import annotations

import hmac
import json
import logging
from typing import Any

import anyio.to_thread
from litestar import Controller, Request, Response, get, post
from litestar.params import FromPath
from pydantic import ValidationError

from api.context import registry_of
from api.scan_wiring import scan_starter_of
from core.scan_jobs import ADAPTER_SCAN_WORKFLOW, adapter_workflow_id
from core.scanner_api import (
    ERROR_TYPE,
    METADATA_TYPE,
    REFRESH_AFTER,
    SBOM_REPORT,
    SCAN_RESPONSE_TYPE,
    ScanApiError,
    ScanRequestIn,
    metadata,
    report_type,
    sbom_media_type,
)
from core.scanner_api_service import AdapterScans

_UNAUTHORIZED, _BAD_REQUEST = 401, 400
logger = logging.getLogger(__name__)


def _error(status: int, message: str) -> Response[bytes]:
    body = json.dumps({"error": {"message": message}}).encode()
    return Response(body, status_code=status, media_type=ERROR_TYPE)


def _document(status: int, document: object, media_type: str) -> Response[bytes]:
    return Response(json.dumps(document).encode(), status_code=status, media_type=media_type)


def _authorized(request: Request[Any, Any, Any]) -> bool:
    tokens = registry_of(request).settings.scanner_api.tokens
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    sent = value.strip() if scheme.lower() == "bearer" else ""
    sent = sent or request.headers.get("x-scanneradapter-api-key", "").strip()
    if not sent:
        return False
    return any(hmac.compare_digest(sent.encode(), t.get_secret_value().encode()) for t in tokens)


def _scans(request: Request[Any, Any, Any]) -> AdapterScans:
    scans = registry_of(request).extras["scanner_api"]
    assert isinstance(scans, AdapterScans)  # noqa: S101 - set by the composition root
    return scans


_REFUSED = "a scanner API token is required (Authorization: Bearer <token>)"


class ScannerAdapterController(Controller):
    path = "/scanner-adapter/api/v1"
    tags = ["scanner adapter"]  # noqa: RUF012 - Litestar's class attribute

    @get("/metadata", summary="The scanner's name, capabilities and properties")
    async def get_metadata(self, request: Request[Any, Any, Any]) -> Response[bytes]:
        if not _authorized(request):
            return _error(_UNAUTHORIZED, _REFUSED)
        data_time = await anyio.to_thread.run_sync(registry_of(request).extras["vuln_data_time"])
        return _document(200, metadata(data_time), METADATA_TYPE)

    @post("/scan", summary="Accept a scan request; answer its id")
    async def post_scan(self, request: Request[Any, Any, Any]) -> Response[bytes]:
        if not _authorized(request):
            return _error(_UNAUTHORIZED, _REFUSED)
        try:
            parsed = ScanRequestIn.model_validate(json.loads(await request.body()))
            scan = await anyio.to_thread.run_sync(_scans(request).accept, parsed)
        except (ValueError, ValidationError) as exc:
            return _error(_BAD_REQUEST, f"invalid scan request: {exc}"[:1024])
        except ScanApiError as exc:
            return _error(exc.status, exc.message)
        starter = scan_starter_of(registry_of(request))
        try:
            await starter.start(ADAPTER_SCAN_WORKFLOW, scan.id, adapter_workflow_id(scan.id))
        except Exception:
            logger.warning("could not start scanner API scan %s", scan.id, exc_info=True)
            await anyio.to_thread.run_sync(_scans(request).fail, scan.id, "not started")
            return _error(500, "the scan could not be started; try again later")
        return _document(202, {"id": scan.id}, SCAN_RESPONSE_TYPE)

    @get("/scan/{scan_request_id:str}/report", summary="The scan's report, once it is done")
    async def get_report(
        self, request: Request[Any, Any, Any], scan_request_id: FromPath[str]
    ) -> Response[bytes]:
        if not _authorized(request):
            return _error(_UNAUTHORIZED, _REFUSED)
        scans = _scans(request)
        try:
            media_type = report_type(request.headers.get("accept", ""))
            if media_type == SBOM_REPORT:
                wanted = sbom_media_type(request.query_params.get("sbom_media_type"))
                document = await anyio.to_thread.run_sync(
                    scans.sbom_report, scan_request_id, wanted
                )
            else:
                document = await anyio.to_thread.run_sync(scans.report, scan_request_id)
        except ScanApiError as exc:
            return _error(exc.status, exc.message)
        if document is None:
            return Response(
                b"",
                status_code=302,
                headers={"Refresh-After": str(REFRESH_AFTER), "Location": str(request.url)},
            )
        return _document(200, document, media_type)
