"""Management API: trusted JWT issuers (``/api/v1/trusted-issuers``, administrators)."""

from __future__ import annotations

from typing import Any

import anyio.to_thread
from litestar import Controller, Request, Response, delete, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody
from pydantic import BaseModel, ConfigDict, Field

from api.controllers.robots import PermissionIn
from api.guards import system_admin
from api.pagination import IDS, Page, PageParams
from core.identity_records import RepositoryPermission, TrustedIssuerRecord
from core.services.identity_services import IdentityServices


class IssuerIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    issuer: str = Field(min_length=1, max_length=512)
    jwks_url: str | None = Field(default=None, max_length=1024)
    discovery_url: str | None = Field(default=None, max_length=1024)
    audience: str = Field(min_length=1, max_length=255)
    subject_claim: str = Field(default="sub", min_length=1, max_length=64)
    subject_pattern: str = Field(default="*", min_length=1, max_length=255)
    permissions: list[PermissionIn] = Field(min_length=1, max_length=100)


class IssuerOut(BaseModel):
    id: int
    issuer: str
    jwks_url: str | None
    discovery_url: str | None
    audience: str
    subject_claim: str
    subject_pattern: str
    permissions: list[dict[str, object]]

    @classmethod
    def of(cls, record: TrustedIssuerRecord) -> IssuerOut:
        return cls(
            id=record.id,
            issuer=record.issuer,
            jwks_url=record.jwks_url,
            discovery_url=record.discovery_url,
            audience=record.audience,
            subject_claim=record.subject_claim,
            subject_pattern=record.subject_pattern,
            permissions=[p.as_dict() for p in record.permissions],
        )


class IssuerPage(Page[IssuerOut]):
    """Trusted issuers, by id."""


class TrustedIssuerController(Controller):
    path = "/api/v1/trusted-issuers"
    tags = ["trusted issuers"]  # noqa: RUF012
    guards = [system_admin]  # noqa: RUF012

    @post("/", summary="Trust an issuer's JWTs as registry credentials")
    async def create(
        self, identity_services: NamedDependency[IdentityServices], data: JSONBody[IssuerIn]
    ) -> Response[IssuerOut]:
        permissions = tuple(
            RepositoryPermission(p.repository, frozenset(p.actions)) for p in data.permissions
        )

        def run() -> TrustedIssuerRecord:
            return identity_services.issuers.register(
                data.issuer,
                jwks_url=data.jwks_url,
                discovery_url=data.discovery_url,
                audience=data.audience,
                subject_claim=data.subject_claim,
                subject_pattern=data.subject_pattern,
                permissions=permissions,
            )

        return Response(content=IssuerOut.of(await anyio.to_thread.run_sync(run)), status_code=201)

    @get("/", summary="List trusted issuers")
    async def list_issuers(
        self,
        request: Request[Any, Any, Any],
        identity_services: NamedDependency[IdentityServices],
        page: NamedDependency[PageParams],
    ) -> Response[IssuerPage]:
        window = await page.fetch(identity_services.issuers.list, key=_id, cursor=IDS)
        return window.respond(request, IssuerPage, [IssuerOut.of(i) for i in window.items])

    @delete("/{issuer_id:int}", summary="Stop trusting an issuer", status_code=204)
    async def remove(
        self, identity_services: NamedDependency[IdentityServices], issuer_id: FromPath[int]
    ) -> None:
        await anyio.to_thread.run_sync(identity_services.issuers.remove, issuer_id)


def _id(issuer: TrustedIssuerRecord) -> int:
    return issuer.id
