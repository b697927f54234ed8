"""Harbor's Pluggable Scanner API (v1.2): its media types, documents and scan records.

Moorage speaks it both ways:

- **served**: ``/scanner-adapter/api/v1/{metadata,scan,scan/{id}/report}`` on the API. A
  scan request names an artifact in *another* registry (URL and ``Authorization`` given
  by the caller); a workflow pulls it through the outbound policy, analyzes and matches
  it with the built-in analyzer and the local vulnerability data, and stores the result
  as an :class:`AdapterScan` until the report is read (``keep_seconds``).
- **used**: an installation's own scans may be delegated to any scanner that speaks the
  API (a registration, ``core.scanners``, or ``scanner_api.delegate``); its report
  (:func:`findings_of`) becomes the artifact's report.

The report itself is rendered by ``core.scan_reports.harbor_report`` (one rendering for
Moorage's own report endpoint and the adapter).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any, Final, Protocol

from pydantic import BaseModel, ConfigDict, Field

from core.sbom_formats import CYCLONEDX, SPDX
from core.scan_records import (
    EXTERNAL_PREFIX,
    SCANNER_NAME,
    SCANNER_VENDOR,
    SCANNER_VERSION,
    Inventory,
    PlatformFinding,
)
from core.scan_reports import HARBOR_REPORT
from core.vulndb.matching import Finding, FixStatus
from core.vulndb.severity import Severity

#: The generic vulnerability report (v1.1) and Harbor's older native one (same fields).
NATIVE_REPORT: Final = "application/vnd.scanner.adapter.vuln.report.harbor+json; version=1.0"
REPORT_TYPES: Final = (HARBOR_REPORT, NATIVE_REPORT)
_NOT_IMPLEMENTED = 501
METADATA_TYPE: Final = "application/vnd.scanner.adapter.metadata+json; version=1.1"
SCAN_REQUEST_TYPE: Final = "application/vnd.scanner.adapter.scan.request+json; version=1.1"
SCAN_RESPONSE_TYPE: Final = "application/vnd.scanner.adapter.scan.response+json; version=1.0"
ERROR_TYPE: Final = "application/vnd.scanner.adapter.error+json; version=1.0"
#: The SBOM report (v1.2's ``sbom`` capability): an envelope around one SBOM document.
SBOM_REPORT: Final = "application/vnd.security.sbom.report+json; version=1.0"
#: The SBOM documents it can hold (``sbom_media_types``): Moorage's own two.
SBOM_MEDIA_TYPES: Final = (SPDX, CYCLONEDX)
VULNERABILITY, SBOM = "vulnerability", "sbom"
#: The report types of each capability.
PRODUCES: Final = {VULNERABILITY: (HARBOR_REPORT, NATIVE_REPORT), SBOM: (SBOM_REPORT,)}
#: Artifact media types the adapter scans (Harbor requires the Docker v2 manifest).
CONSUMES: Final = (
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
)
#: Seconds a client is told to wait before polling a running scan's report again.
REFRESH_AFTER: Final = 1
_DIGEST = re.compile(r"^sha(256:[a-f0-9]{64}|512:[a-f0-9]{128})$")
_SEVERITIES: Final = {s.value.lower(): s for s in Severity}


class ScanApiError(Exception):
    """A request the adapter refuses: ``status`` and a message (Harbor's error body)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


def media_type_base(value: str) -> str:
    """``type/subtype`` of a media type, lower case, parameters dropped."""
    return value.split(";", 1)[0].strip().lower()


def _version(value: str) -> str:
    for part in value.split(";")[1:]:
        key, _, found = part.partition("=")
        if key.strip().lower() == "version":
            return found.strip().strip('"')
    return ""


def _known(item: str, known: tuple[str, ...]) -> str | None:
    for candidate in known:
        if media_type_base(item) == media_type_base(candidate) and _version(item) in (
            "",
            _version(candidate),
        ):
            return candidate
    return None


def report_type(accept: str) -> str:
    """The report media type an ``Accept`` header asks for (``ScanApiError`` 501 if none).

    A missing or wildcard ``Accept`` gets the generic vulnerability report (v1.1).
    """
    wanted = [item.strip() for item in accept.split(",") if item.strip()]
    if not wanted or any(media_type_base(w) in ("*/*", "application/*") for w in wanted):
        return HARBOR_REPORT
    for item in wanted:
        found = _known(item, (*REPORT_TYPES, SBOM_REPORT))
        if found is not None:
            return found
    raise ScanApiError(
        _NOT_IMPLEMENTED,
        f"unsupported report media type {accept!r}; use {HARBOR_REPORT!r} or {SBOM_REPORT!r}",
    )


def sbom_media_type(value: str | None) -> str:
    """The SBOM format a report query asks for (``ScanApiError`` 400 if none or unknown)."""
    if not value:
        raise ScanApiError(
            400, f"an SBOM report needs the sbom_media_type query, one of {list(SBOM_MEDIA_TYPES)}"
        )
    base = media_type_base(value)
    if base not in SBOM_MEDIA_TYPES:
        raise ScanApiError(
            400, f"unsupported sbom_media_type {value!r}; use one of {list(SBOM_MEDIA_TYPES)}"
        )
    return base


def metadata(data_updated_at: datetime | None) -> dict[str, Any]:
    """The adapter's metadata document (scanner, capabilities, properties)."""
    properties = {
        "harbor.scanner-adapter/scanner-type": "os-package-vulnerability",
        "harbor.scanner-adapter/vulnerability-database-source": "OSV",
    }
    if data_updated_at is not None:
        properties["harbor.scanner-adapter/vulnerability-database-updated-at"] = (
            data_updated_at.isoformat()
        )
    return {
        "scanner": {"name": SCANNER_NAME, "vendor": SCANNER_VENDOR, "version": SCANNER_VERSION},
        "capabilities": [
            {
                "type": VULNERABILITY,
                "consumes_mime_types": list(CONSUMES),
                "produces_mime_types": list(REPORT_TYPES),
            },
            {
                "type": SBOM,
                "consumes_mime_types": list(CONSUMES),
                "produces_mime_types": [SBOM_REPORT],
                "additional_attributes": {"sbom_media_types": list(SBOM_MEDIA_TYPES)},
            },
        ],
        "properties": properties,
    }


class RegistryIn(BaseModel):
    model_config = ConfigDict(extra="ignore")
    url: str = Field(min_length=1, max_length=2048)
    authorization: str = Field(default="", max_length=16384)
    insecure: bool = False


class ArtifactIn(BaseModel):
    model_config = ConfigDict(extra="ignore")
    repository: str = Field(min_length=1, max_length=255)
    digest: str = Field(min_length=1, max_length=256)
    tag: str | None = Field(default=None, max_length=128)
    mime_type: str = Field(min_length=1, max_length=255)
    size: int | None = None


class ParametersIn(BaseModel):
    model_config = ConfigDict(extra="ignore")
    sbom_media_types: list[str] = Field(default_factory=list, max_length=8)


class CapabilityIn(BaseModel):
    model_config = ConfigDict(extra="ignore")
    type: str = VULNERABILITY
    produces_mime_types: list[str] = Field(default_factory=list, max_length=8)
    parameters: ParametersIn | None = None


class ScanRequestIn(BaseModel):
    """Harbor's ``ScanRequest`` (unknown fields ignored, as the spec allows)."""

    model_config = ConfigDict(extra="ignore")
    registry: RegistryIn
    artifact: ArtifactIn
    enabled_capabilities: list[CapabilityIn] = Field(default_factory=list)


def check_request(request: ScanRequestIn) -> None:
    """Refuse what the adapter cannot scan (422) or what is malformed (400)."""
    if not _DIGEST.match(request.artifact.digest):
        raise ScanApiError(400, f"artifact digest {request.artifact.digest!r} is not a digest")
    if media_type_base(request.artifact.mime_type) not in CONSUMES:
        raise ScanApiError(422, f"unsupported artifact mime_type {request.artifact.mime_type!r}")
    for capability in request.enabled_capabilities:
        if capability.type not in PRODUCES:
            raise ScanApiError(
                _NOT_IMPLEMENTED,
                f"unsupported capability {capability.type!r}; use {VULNERABILITY!r} or {SBOM!r}",
            )
        for produced in capability.produces_mime_types:
            if _known(produced, PRODUCES[capability.type]) is None:
                raise ScanApiError(
                    _NOT_IMPLEMENTED,
                    f"the {capability.type} capability does not produce {produced!r}",
                )
        wanted = capability.parameters.sbom_media_types if capability.parameters else []
        for media_type in wanted:
            if media_type_base(media_type) not in SBOM_MEDIA_TYPES:
                raise ScanApiError(
                    422,
                    f"unsupported sbom_media_types entry {media_type!r}; "
                    f"use {list(SBOM_MEDIA_TYPES)}",
                )
    scheme = request.registry.url.split("://", 1)[0].lower()
    if scheme not in ("http", "https"):
        raise ScanApiError(400, f"registry url {request.registry.url!r} is not http(s)")


def enabled_capabilities(request: ScanRequestIn) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The capabilities a (checked) request enables, and the SBOM formats it wants.

    Without ``enabled_capabilities`` every capability is enabled (as the spec says), and
    an ``sbom`` capability without ``sbom_media_types`` wants both formats.
    """
    if not request.enabled_capabilities:
        return (VULNERABILITY, SBOM), SBOM_MEDIA_TYPES
    types = tuple(dict.fromkeys(c.type for c in request.enabled_capabilities))
    formats: list[str] = []
    for capability in request.enabled_capabilities:
        if capability.type == SBOM:
            wanted = capability.parameters.sbom_media_types if capability.parameters else []
            formats += [media_type_base(m) for m in wanted] or list(SBOM_MEDIA_TYPES)
    return types, tuple(dict.fromkeys(formats))


class ExternalScannerError(Exception):
    """An external scanner refused or failed a call; ``str()`` says why."""


@dataclass(frozen=True, slots=True)
class Poll:
    """A report poll: the report, or ``None`` and how long the scanner asks to wait."""

    report: dict[str, Any] | None
    refresh_after: float


class ExternalScanner(Protocol):
    """The client side of the API, for one external scanner."""

    async def scan(self, request: dict[str, Any]) -> str:
        """Submit a scan request; the scanner's id for it (``ExternalScannerError``)."""

    async def report(self, scan_id: str) -> Poll:
        """Poll the vulnerability report of ``scan_id`` (``ExternalScannerError``)."""

    async def metadata(self) -> dict[str, Any]:
        """The scanner's metadata document (``ExternalScannerError``)."""

    async def sbom_report(self, scan_id: str, media_type: str) -> Poll:
        """Poll the SBOM report of ``scan_id`` in ``media_type`` (``ExternalScannerError``)."""

    async def aclose(self) -> None: ...


def sbom_formats(document: Mapping[str, Any]) -> tuple[str, ...]:
    """The SBOM formats Moorage can attach that a scanner's metadata offers (v1.2 ``sbom``).

    ``()`` when it lists no ``sbom`` capability producing the SBOM report.
    """
    found: list[str] = []
    capabilities = document.get("capabilities")
    for capability in capabilities if isinstance(capabilities, list) else []:
        if not isinstance(capability, Mapping) or capability.get("type") != SBOM:
            continue
        produces = capability.get("produces_mime_types") or []
        if not any(isinstance(p, str) and _known(p, (SBOM_REPORT,)) for p in produces):
            continue
        extra = capability.get("additional_attributes")
        offered = extra.get("sbom_media_types") if isinstance(extra, Mapping) else None
        found += [
            media_type_base(m)
            for m in (offered if isinstance(offered, list) else [])
            if isinstance(m, str) and media_type_base(m) in SBOM_MEDIA_TYPES
        ]
    return tuple(dict.fromkeys(found))


def sbom_of(report: Mapping[str, Any], media_type: str) -> bytes:
    """The SBOM document of a scanner's SBOM report, as JSON (``ExternalScannerError``)."""
    document = report.get("sbom")
    found = report.get("media_type")
    if not isinstance(document, Mapping) or (
        isinstance(found, str) and media_type_base(found) != media_type
    ):
        raise ExternalScannerError(f"the scanner's SBOM report holds no {media_type} document")
    return json.dumps(document, separators=(",", ":")).encode()


class AdapterStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class AdapterScan:
    """One scan requested through the adapter, and (once done) its findings.

    ``authorization`` is what the requester handed for the pull; it is kept sealed and
    dropped when the scan ends.
    """

    id: str
    registry_url: str
    repository: str
    digest: str
    mime_type: str
    status: AdapterStatus
    created_at: datetime
    authorization: str = ""
    insecure: bool = False
    finished_at: datetime | None = None
    reason: str | None = None
    data_updated_at: datetime | None = None
    findings: tuple[PlatformFinding, ...] = ()
    platforms: tuple[str, ...] = ()
    #: The capabilities the request enabled, and the SBOM formats it asked for.
    capabilities: tuple[str, ...] = (VULNERABILITY, SBOM)
    sbom_media_types: tuple[str, ...] = SBOM_MEDIA_TYPES
    #: The packages of each image (once done), for the SBOM reports.
    inventories: tuple[Inventory, ...] = ()


class AdapterScanStore(Protocol):
    """Scans served through the adapter. Each method is one transaction."""

    def create(self, scan: AdapterScan) -> None: ...

    def get(self, scan_id: str) -> AdapterScan | None: ...

    def mark_running(self, scan_id: str) -> None: ...

    def finish(self, scan: AdapterScan) -> None:
        """Store the outcome (status, findings, reason) and drop the authorization."""

    def purge(self, before: datetime) -> int:
        """Delete the scans created before ``before``; how many."""


# -- a scanner's report as Moorage findings (delegation) --------------------------------


def _text(value: object) -> str:
    return value if isinstance(value, str) else ""


def _finding(item: Mapping[str, Any]) -> PlatformFinding:
    found_extra = item.get("vendor_attributes")
    extra: Mapping[str, Any] = found_extra if isinstance(found_extra, Mapping) else {}
    found_cvss = item.get("preferred_cvss")
    cvss: Mapping[str, Any] = found_cvss if isinstance(found_cvss, Mapping) else {}
    fixed = _text(item.get("fix_version")) or None
    status = _text(extra.get("fix_status")) or ("fixed" if fixed else "unfixed")
    aliases: Sequence[Any] = extra.get("aliases") or []
    score = cvss.get("score_v3")
    vector = _text(extra.get("cvss_vector")) or _text(cvss.get("vector_v3")) or None
    package, version = _text(item.get("package")), _text(item.get("version"))
    platform = extra.get("platform")
    finding = Finding(
        vulnerability_id=_text(item.get("id")),
        aliases=tuple(str(a) for a in aliases if isinstance(a, str)),
        package=package,
        version=version,
        package_type=_text(extra.get("package_type")),
        purl=_text(extra.get("purl")),
        ecosystem=_text(extra.get("ecosystem")),
        matched_name=package,
        matched_version=version,
        status=FixStatus(status) if status in ("fixed", "unfixed") else FixStatus.UNFIXED,
        fixed_version=fixed,
        severity=_SEVERITIES.get(_text(item.get("severity")).lower(), Severity.UNKNOWN),
        severity_source=_text(extra.get("severity_source")) or "scanner",
        cvss_score=float(score) if isinstance(score, int | float) else None,
        cvss_vector=vector,
        summary=_text(item.get("description")),
    )
    return PlatformFinding(platform if isinstance(platform, str) else None, finding)


def findings_of(report: Mapping[str, Any]) -> tuple[PlatformFinding, ...]:
    """The findings of a scanner's vulnerability report (entries without an id dropped).

    Moorage's own ``vendor_attributes`` (purl, ecosystem, fix status, platform, ...) are
    read back where present, so a report from another Moorage keeps every field.
    """
    items = report.get("vulnerabilities") or []
    if not isinstance(items, list):
        raise TypeError("the report's vulnerabilities are not a list")
    found = [_finding(item) for item in items if isinstance(item, Mapping)]
    return tuple(f for f in found if f.finding.vulnerability_id)


def scanner_label(report: Mapping[str, Any]) -> str:
    """``api:<name> <version>`` of the scanner a report names (at most 64 characters)."""
    scanner = report.get("scanner") or {}
    label = ""
    if isinstance(scanner, Mapping):
        label = f"{_text(scanner.get('name'))} {_text(scanner.get('version'))}".strip()
    return f"{EXTERNAL_PREFIX}{label or 'external'}"[:64]
