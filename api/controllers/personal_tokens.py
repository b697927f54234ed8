"""Management API: the caller's personal access tokens (``/api/v1/users/me/tokens``)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import anyio.to_thread
from litestar import Controller, Request, Response, delete, get, post
from litestar.params import FromPath, JSONBody
from pydantic import BaseModel, ConfigDict, Field

from api.context import identity_of, registry_of
from api.principal import require_caller
from core.identity_records import PersonalTokenRecord


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


class TokenPage(BaseModel):
    items: list[TokenOut]
    next: str | None = None


class PersonalTokenController(Controller):
    path = "/api/v1/users/me/tokens"
    tags = ["personal access tokens"]  # noqa: RUF012

    @post("/", summary="Create a personal access token (shown once)")
    async def create(
        self, request: Request[Any, Any, Any], data: JSONBody[TokenIn]
    ) -> Response[Any]:
        registry = registry_of(request)
        caller = await require_caller(request, registry)
        create = identity_of(registry).tokens.create
        created = await anyio.to_thread.run_sync(
            create, caller, data.name, frozenset(data.scopes), data.expires_at
        )
        return Response(content=TokenOut.of(created.record, created.token), status_code=201)

    @get("/", summary="List the caller's tokens (never their secrets)")
    async def list_tokens(self, request: Request[Any, Any, Any]) -> TokenPage:
        registry = registry_of(request)
        caller = await require_caller(request, registry)
        found = await anyio.to_thread.run_sync(identity_of(registry).tokens.list, caller)
        return TokenPage(items=[TokenOut.of(t) for t in found])

    @delete("/{token_id:int}", summary="Revoke a token", status_code=204)
    async def revoke(self, request: Request[Any, Any, Any], token_id: FromPath[int]) -> None:
        registry = registry_of(request)
        caller = await require_caller(request, registry)
        await anyio.to_thread.run_sync(identity_of(registry).tokens.revoke, caller, token_id)
