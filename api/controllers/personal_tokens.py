"""Management API: the caller's personal access tokens (``/api/v1/users/me/tokens``)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import anyio.to_thread
from litestar import Controller, Request, Response, delete, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody
from pydantic import BaseModel, ConfigDict, Field

from api.guards import signed_in
from api.pagination import IDS, Page, PageParams
from core.access import Identity
from core.identity_records import PersonalTokenRecord
from core.services.identity_services import IdentityServices


class TokenIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=128)
    scopes: list[str] = Field(min_length=1, max_length=4)
    expires_at: datetime | None = None


class TokenOut(BaseModel):
    id: int
    owner: str
    name: str
    scopes: list[str]
    expires_at: str | None
    revoked: bool
    created_at: str
    token: str | None = None

    @classmethod
    def of(cls, record: PersonalTokenRecord, token: str | None = None) -> TokenOut:
        return cls(
            id=record.id,
            owner=record.owner,
            name=record.name,
            scopes=sorted(record.scopes),
            expires_at=record.expires_at.isoformat() if record.expires_at else None,
            revoked=record.revoked,
            created_at=record.created_at.isoformat(),
            token=token,
        )


class TokenPage(Page[TokenOut]):
    """The caller's tokens, by id (never their secrets)."""


class PersonalTokenController(Controller):
    path = "/api/v1/users/me/tokens"
    tags = ["personal access tokens"]  # noqa: RUF012
    guards = [signed_in]  # noqa: RUF012

    @post("/", summary="Create a personal access token (shown once)")
    async def create(
        self,
        caller: NamedDependency[Identity],
        identity_services: NamedDependency[IdentityServices],
        data: JSONBody[TokenIn],
    ) -> Response[TokenOut]:
        create = identity_services.tokens.create
        created = await anyio.to_thread.run_sync(
            create, caller, data.name, frozenset(data.scopes), data.expires_at
        )
        return Response(content=TokenOut.of(created.record, created.token), status_code=201)

    @get("/", summary="List the caller's tokens (never their secrets)")
    async def list_tokens(
        self,
        request: Request[Any, Any, Any],
        caller: NamedDependency[Identity],
        identity_services: NamedDependency[IdentityServices],
        page: NamedDependency[PageParams],
    ) -> Response[TokenPage]:
        listing = identity_services.tokens.list
        window = await page.fetch(
            lambda after, count: listing(caller, after, count), key=_id, cursor=IDS
        )
        return window.respond(request, TokenPage, [TokenOut.of(t) for t in window.items])

    @delete("/{token_id:int}", summary="Revoke a token", status_code=204)
    async def revoke(
        self,
        caller: NamedDependency[Identity],
        identity_services: NamedDependency[IdentityServices],
        token_id: FromPath[int],
    ) -> None:
        await anyio.to_thread.run_sync(identity_services.tokens.revoke, caller, token_id)


def _id(token: PersonalTokenRecord) -> int:
    return token.id
