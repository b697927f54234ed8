"""Management API: local users (``/api/v1/users``)."""

from __future__ import annotations

from typing import Any

import anyio.to_thread
from litestar import Controller, Request, Response, delete, get, patch, post
from litestar.params import FromPath, FromQuery, JSONBody
from pydantic import BaseModel, ConfigDict, Field

from api.context import identity_of, registry_of
from api.principal import require_caller
from core.identity_records import LocalUser


class UserIn(BaseModel):
    # NOTE: unknown fields (is_admin, sysadmin_flag, ...) are refused: no mass assignment.
    model_config = ConfigDict(extra="forbid")
    username: str = Field(min_length=1, max_length=63)
    password: str = Field(min_length=1, max_length=256)


class UserPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")
    password: str | None = Field(default=None, max_length=256)
    current_password: str | None = Field(default=None, max_length=256)
    disabled: bool | None = None


class UserOut(BaseModel):
    username: str
    is_admin: bool
    disabled: bool

    @classmethod
    def of(cls, user: LocalUser) -> UserOut:
        return cls(username=user.username, is_admin=user.is_admin, disabled=user.disabled)


class UserPage(BaseModel):
    items: list[UserOut]
    next: str | None = None


class UserController(Controller):
    path = "/api/v1/users"
    tags = ["users"]  # noqa: RUF012

    @post("/", summary="Create a local user (administrators)")
    async def create(
        self, request: Request[Any, Any, Any], data: JSONBody[UserIn]
    ) -> Response[Any]:
        registry = registry_of(request)
        caller = await require_caller(request, registry)
        create = identity_of(registry).users.create
        user = await anyio.to_thread.run_sync(create, caller, data.username, data.password)
        return Response(content=UserOut.of(user), status_code=201)

    @get("/", summary="List local users (administrators)")
    async def list_users(
        self,
        request: Request[Any, Any, Any],
        limit: FromQuery[int] = 100,
        last: FromQuery[str | None] = None,
    ) -> UserPage:
        registry = registry_of(request)
        caller = await require_caller(request, registry)
        limit = max(1, min(limit, 100))
        users = await anyio.to_thread.run_sync(
            identity_of(registry).users.list, caller, last, limit + 1
        )
        more, users = len(users) > limit, users[:limit]
        return UserPage(
            items=[UserOut.of(u) for u in users], next=users[-1].username if more else None
        )

    @patch("/{username:str}", summary="Reset, disable or enable a user; change one's own password")
    async def update(
        self, request: Request[Any, Any, Any], username: FromPath[str], data: JSONBody[UserPatch]
    ) -> Response[Any]:
        registry = registry_of(request)
        caller = await require_caller(request, registry)

        def run() -> None:
            identity_of(registry).users.update(
                caller,
                username,
                password=data.password,
                current_password=data.current_password,
                disabled=data.disabled,
            )

        await anyio.to_thread.run_sync(run)
        return Response(content=None, status_code=204)

    @delete("/{username:str}", summary="Delete a user (administrators)", status_code=204)
    async def remove(self, request: Request[Any, Any, Any], username: FromPath[str]) -> None:
        registry = registry_of(request)
        caller = await require_caller(request, registry)
        await anyio.to_thread.run_sync(identity_of(registry).users.delete, caller, username)
