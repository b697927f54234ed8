"""Management API: local users (``/api/v1/users``).

Administrators create, list, read, update (password reset, disabled flag, email and full
name) and delete accounts; a user reads its own account and changes its own password with
``PUT /api/v1/users/me/password`` (the current password is checked like a login).
"""

from __future__ import annotations

from typing import Any

import anyio.to_thread
from litestar import Controller, Request, Response, delete, get, patch, post, put
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody
from pydantic import BaseModel, ConfigDict, Field

from api.guards import signed_in, system_admin
from api.pagination import NAMES, Page, PageParams
from core.access import Identity
from core.identity_records import LocalUser, UserProfile
from core.services.identity_services import IdentityServices


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


class UserPage(Page[UserOut]):
    """Local users, by username."""


class UserController(Controller):
    path = "/api/v1/users"
    tags = ["users"]  # noqa: RUF012
    guards = [signed_in]  # noqa: RUF012

    @post("/", summary="Create a local user (administrators)", guards=[system_admin])
    async def create(
        self,
        caller: NamedDependency[Identity],
        identity_services: NamedDependency[IdentityServices],
        data: JSONBody[UserIn],
    ) -> Response[UserOut]:
        create = identity_services.users.create
        user = await anyio.to_thread.run_sync(
            create, caller, data.username, data.password, data.profile()
        )
        return Response(content=UserOut.of(user), status_code=201)

    @get("/", summary="List local users (administrators)", guards=[system_admin])
    async def list_users(
        self,
        request: Request[Any, Any, Any],
        caller: NamedDependency[Identity],
        identity_services: NamedDependency[IdentityServices],
        page: NamedDependency[PageParams],
    ) -> Response[UserPage]:
        listing = identity_services.users.list
        window = await page.fetch(
            lambda after, count: listing(caller, after, count), key=_username, cursor=NAMES
        )
        return window.respond(request, UserPage, [UserOut.of(u) for u in window.items])

    @put(
        "/me/password", summary="Change one's own password (with the current one)", status_code=204
    )
    async def change_password(
        self,
        caller: NamedDependency[Identity],
        identity_services: NamedDependency[IdentityServices],
        data: JSONBody[PasswordChange],
    ) -> None:
        change = identity_services.users.change_own_password
        await anyio.to_thread.run_sync(change, caller, data.current_password, data.new_password)

    @get("/{username:str}", summary="Read a user (administrators; users read themselves)")
    async def read(
        self,
        caller: NamedDependency[Identity],
        identity_services: NamedDependency[IdentityServices],
        username: FromPath[str],
    ) -> UserOut:
        user = await anyio.to_thread.run_sync(identity_services.users.get, caller, username)
        return UserOut.of(user)

    @patch(
        "/{username:str}",
        summary="Reset, disable, enable or describe a user; change one's own password",
        status_code=204,
    )
    async def update(
        self,
        caller: NamedDependency[Identity],
        identity_services: NamedDependency[IdentityServices],
        username: FromPath[str],
        data: JSONBody[UserPatch],
    ) -> None:
        def run() -> None:
            identity_services.users.update(
                caller,
                username,
                password=data.password,
                current_password=data.current_password,
                disabled=data.disabled,
                profile=data.profile(),
            )

        await anyio.to_thread.run_sync(run)

    @delete(
        "/{username:str}",
        summary="Delete a user (administrators)",
        status_code=204,
        guards=[system_admin],
    )
    async def remove(
        self,
        caller: NamedDependency[Identity],
        identity_services: NamedDependency[IdentityServices],
        username: FromPath[str],
    ) -> None:
        await anyio.to_thread.run_sync(identity_services.users.delete, caller, username)


def _username(user: LocalUser) -> str:
    return user.username
