"""Management API: local users (``/api/v1/users``).

Administrators create, list, read, update (password reset, disabled flag, email and full
name) and delete accounts; a user reads its own account and changes its own password with
``PUT /api/v1/users/me/password`` (the current password is checked like a login).
"""

from __future__ import annotations

from typing import Any

import anyio.to_thread
from litestar import Controller, Request, Response, delete, get, patch, post, put
from litestar.params import FromPath, FromQuery, JSONBody
from pydantic import BaseModel, ConfigDict, Field

from api.context import identity_of, registry_of
from api.principal import require_caller
from core.identity_records import LocalUser, UserProfile


class UserIn(BaseModel):
    # NOTE: unknown fields (is_admin, sysadmin_flag, ...) are refused: no mass assignment.
    model_config = ConfigDict(extra="forbid")
    username: str = Field(min_length=1, max_length=63)
    password: str = Field(min_length=1, max_length=256)
    email: str | None = Field(default=None, max_length=254)
    full_name: str | None = Field(default=None, max_length=255)

    def profile(self) -> UserProfile:
        return {"email": self.email, "full_name": self.full_name}


class UserPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")
    password: str | None = Field(default=None, max_length=256)
    current_password: str | None = Field(default=None, max_length=256)
    disabled: bool | None = None
    email: str | None = Field(default=None, max_length=254)
    full_name: str | None = Field(default=None, max_length=255)

    def profile(self) -> UserProfile:
        """The profile fields the request names (``null`` clears one)."""
        return {
            key: getattr(self, key)
            for key in ("email", "full_name")
            if key in self.model_fields_set
        }


class PasswordChange(BaseModel):
    model_config = ConfigDict(extra="forbid")
    current_password: str = Field(min_length=1, max_length=256)
    new_password: str = Field(min_length=1, max_length=256)


class UserOut(BaseModel):
    username: str
    is_admin: bool
    disabled: bool
    email: str | None = None
    full_name: str | None = None

    @classmethod
    def of(cls, user: LocalUser) -> UserOut:
        return cls(
            username=user.username,
            is_admin=user.is_admin,
            disabled=user.disabled,
            email=user.email,
            full_name=user.full_name,
        )


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
        user = await anyio.to_thread.run_sync(
            create, caller, data.username, data.password, data.profile()
        )
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

    @put(
        "/me/password", summary="Change one's own password (with the current one)", status_code=204
    )
    async def change_password(
        self, request: Request[Any, Any, Any], data: JSONBody[PasswordChange]
    ) -> None:
        registry = registry_of(request)
        caller = await require_caller(request, registry)
        change = identity_of(registry).users.change_own_password
        await anyio.to_thread.run_sync(change, caller, data.current_password, data.new_password)

    @get("/{username:str}", summary="Read a user (administrators; users read themselves)")
    async def read(self, request: Request[Any, Any, Any], username: FromPath[str]) -> UserOut:
        registry = registry_of(request)
        caller = await require_caller(request, registry)
        user = await anyio.to_thread.run_sync(identity_of(registry).users.get, caller, username)
        return UserOut.of(user)

    @patch(
        "/{username:str}",
        summary="Reset, disable, enable or describe a user; change one's own password",
    )
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
                profile=data.profile(),
            )

        await anyio.to_thread.run_sync(run)
        return Response(content=None, status_code=204)

    @delete("/{username:str}", summary="Delete a user (administrators)", status_code=204)
    async def remove(self, request: Request[Any, Any, Any], username: FromPath[str]) -> None:
        registry = registry_of(request)
        caller = await require_caller(request, registry)
        await anyio.to_thread.run_sync(identity_of(registry).users.delete, caller, username)
