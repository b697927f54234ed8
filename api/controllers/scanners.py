"""Management API: scanner registrations (``/api/v1/scanners``) and a project's scanner.

System administrators only. A registration's access credential is write-only: answers
say whether one is stored (``has_access_credential``), never what it is.
``POST /api/v1/scanners/{name}/ping`` asks the adapter's ``GET /api/v1/metadata`` now and
answers its metadata, or a ``502`` problem detail saying why it could not.
``POST /api/v1/scanners/{name}/default`` makes a registration the system default.
``GET/PUT /api/v1/projects/{project}/scanner`` reads and sets the registration a project's
scans use (``null``: the default). Rules in ``core.scanners``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import anyio.to_thread
from litestar import Controller, Request, Response, delete, get, post, put
from litestar.di import NamedDependency
from litestar.exceptions import HTTPException
from litestar.params import FromPath, JSONBody
from pydantic import BaseModel, ConfigDict, Field, SecretStr

from api.context import Registry, registry_of
from api.guards import system_admin
from api.pagination import NAMES, Page, PageParams
from core.errors import InvalidInputError
from core.paging import window
from core.scanner_api import ExternalScannerError
from core.scanners import (
    Scanner,
    ScannerAuth,
    ScannerInput,
    ScannerProbe,
    ScannerService,
    check_metadata,
)

#: The adapter did not answer its metadata (or not as one).
_BAD_GATEWAY = 502


class ScannerIn(BaseModel):
    """A registration as an administrator writes it (``access_credential`` never echoed)."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(max_length=63)
    description: str = Field(default="", max_length=1024)
    url: str = Field(min_length=1, max_length=2048)
    auth: ScannerAuth = ScannerAuth.NONE
    #: Write-only; on update ``None`` keeps the stored one.
    access_credential: SecretStr | None = Field(default=None, max_length=4096)
    skip_cert_verify: bool = False
    disabled: bool = False
    is_default: bool = False

    def value(self) -> ScannerInput:
        secret = self.access_credential
        return ScannerInput(
            name=self.name,
            url=self.url,
            description=self.description,
            auth=self.auth,
            credential=None if secret is None else secret.get_secret_value(),
            skip_tls_verify=self.skip_cert_verify,
            disabled=self.disabled,
            is_default=self.is_default,
        )


class ScannerOut(BaseModel):
    name: str
    description: str
    url: str
    auth: str
    has_access_credential: bool
    skip_cert_verify: bool
    disabled: bool
    is_default: bool
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, scanner: Scanner) -> ScannerOut:
        return cls(
            name=scanner.name,
            description=scanner.description,
            url=scanner.url,
            auth=scanner.auth.value,
            has_access_credential=scanner.has_credential,
            skip_cert_verify=scanner.skip_tls_verify,
            disabled=scanner.disabled,
            is_default=scanner.is_default,
            created_at=scanner.created_at,
            updated_at=scanner.updated_at,
        )


class ScannerPage(Page[ScannerOut]):
    """Scanner registrations, by name."""


class MetadataOut(BaseModel):
    """What the adapter said of itself (``GET /api/v1/metadata``)."""

    name: str
    vendor: str
    version: str
    capabilities: list[dict[str, Any]]
    properties: dict[str, str]


class ProjectScannerIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    #: The registration's name; ``null``: the system default.
    scanner: str | None = Field(default=None, max_length=63)


class ProjectScannerOut(BaseModel):
    #: The registration the project selects (``null``: none, the default is used).
    scanner: str | None
    #: The enabled registration its scans go to now (``null``: none; then the
    #: ``scanner_api.delegate`` setting, else the built-in analyzer).
    effective: str | None


def scanners_of(registry: Registry) -> ScannerService:
    service = registry.extras.get("scanners")
    if not isinstance(service, ScannerService):
        raise TypeError("the registry was built without scanner registrations")
    return service


def _service(request: Request[Any, Any, Any]) -> ScannerService:
    return scanners_of(registry_of(request))


def _name(scanner: Scanner) -> str:
    return scanner.name


class ScannerController(Controller):
    path = "/api/v1/scanners"
    tags = ["scanners"]  # noqa: RUF012
    guards = [system_admin]  # noqa: RUF012

    @get("/", summary="Scanner registrations, by name")
    async def list_scanners(
        self, request: Request[Any, Any, Any], page: NamedDependency[PageParams]
    ) -> Response[ScannerPage]:
        service = _service(request)

        def fetch(after: str | None, count: int) -> list[Scanner]:
            return window(service.registrations(), _name, after, count)

        found = await page.fetch(fetch, key=_name, cursor=NAMES)
        return found.respond(request, ScannerPage, [ScannerOut.of(s) for s in found.items])

    @post("/", summary="Register a scanner", status_code=201)
    async def create_scanner(
        self, request: Request[Any, Any, Any], data: JSONBody[ScannerIn]
    ) -> ScannerOut:
        service = _service(request)
        return ScannerOut.of(await anyio.to_thread.run_sync(service.create, data.value()))

    @get("/{name:str}", summary="One scanner registration")
    async def read_scanner(
        self, request: Request[Any, Any, Any], name: FromPath[str]
    ) -> ScannerOut:
        return ScannerOut.of(await anyio.to_thread.run_sync(_service(request).get, name))

    @put("/{name:str}", summary="Replace a registration (no credential: keep the stored one)")
    async def replace_scanner(
        self, request: Request[Any, Any, Any], name: FromPath[str], data: JSONBody[ScannerIn]
    ) -> ScannerOut:
        service = _service(request)
        return ScannerOut.of(await anyio.to_thread.run_sync(service.update, name, data.value()))

    @delete("/{name:str}", summary="Remove a registration no project selects", status_code=204)
    async def delete_scanner(self, request: Request[Any, Any, Any], name: FromPath[str]) -> None:
        await anyio.to_thread.run_sync(_service(request).delete, name)

    @post("/{name:str}/default", summary="Make a registration the system default", status_code=200)
    async def set_default(self, request: Request[Any, Any, Any], name: FromPath[str]) -> ScannerOut:
        service = _service(request)
        await anyio.to_thread.run_sync(service.set_default, name)
        return ScannerOut.of(await anyio.to_thread.run_sync(service.get, name))

    @post("/{name:str}/ping", summary="Ask the adapter's metadata now", status_code=200)
    async def ping_scanner(
        self, request: Request[Any, Any, Any], name: FromPath[str]
    ) -> MetadataOut:
        registry = registry_of(request)
        service = scanners_of(registry)
        probe: ScannerProbe = registry.extras["scanner_probe"]
        scanner = await anyio.to_thread.run_sync(service.get, name)
        call = await anyio.to_thread.run_sync(service.call_of, scanner)
        try:
            found = check_metadata(await probe.metadata(call))
        except ExternalScannerError as exc:
            raise HTTPException(
                status_code=_BAD_GATEWAY, detail=f"scanner {name!r}: {exc}"
            ) from exc
        return MetadataOut(
            name=found.name,
            vendor=found.vendor,
            version=found.version,
            capabilities=list(found.capabilities),
            properties=found.properties,
        )


class ProjectScannerController(Controller):
    path = "/api/v1/projects/{project:str}/scanner"
    tags = ["scanners"]  # noqa: RUF012
    guards = [system_admin]  # noqa: RUF012

    @get("/", summary="The scanner a project's scans use")
    async def read_selection(
        self, request: Request[Any, Any, Any], project: FromPath[str]
    ) -> ProjectScannerOut:
        return await anyio.to_thread.run_sync(_selection, _service(request), project)

    @put("/", summary="Select the scanner of a project's scans (null: the default)")
    async def write_selection(
        self,
        request: Request[Any, Any, Any],
        project: FromPath[str],
        data: JSONBody[ProjectScannerIn],
    ) -> ProjectScannerOut:
        service = _service(request)
        if data.scanner == "":
            raise InvalidInputError("scanner: a name, or null for the default", field="scanner")
        await anyio.to_thread.run_sync(service.select, project, data.scanner)
        return await anyio.to_thread.run_sync(_selection, service, project)


def _selection(service: ScannerService, project: str) -> ProjectScannerOut:
    chosen = service.chosen(project)
    return ProjectScannerOut(
        scanner=service.selection(project), effective=None if chosen is None else chosen.name
    )
