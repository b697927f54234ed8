"""Management API: project members (``/api/v1/projects/{project}/members``)."""

from __future__ import annotations

from typing import Any

import anyio.to_thread
from litestar import Controller, Request, Response, delete, get, patch, post
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody
from pydantic import BaseModel, ConfigDict, Field, model_validator

from api.guards import project_permission, signed_in
from api.pagination import IDS, Page, PageParams
from core.access import Identity
from core.identity_records import MemberRecord
from core.services.identity_services import IdentityServices


class MemberIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    user: str | None = Field(default=None, max_length=255)
    group: str | None = Field(default=None, max_length=255)
    robot: str | None = Field(default=None, max_length=255)
    role: str

    @model_validator(mode="after")
    def one_member(self) -> MemberIn:
        if sum(v is not None for v in (self.user, self.group, self.robot)) != 1:
            raise ValueError("name exactly one of user, group or robot")
        return self

    def kind_and_name(self) -> tuple[str, str]:
        for kind in ("user", "group", "robot"):
            value = getattr(self, kind)
            if value is not None:
                return kind, str(value)
        raise AssertionError("validated above")


class MemberPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")
    role: str


class MemberOut(BaseModel):
    id: int
    kind: str
    name: str
    role: str

    @classmethod
    def of(cls, member: MemberRecord) -> MemberOut:
        return cls(id=member.id, kind=member.kind, name=member.name, role=member.role)


class MemberPage(Page[MemberOut]):
    """Members of the project, by id."""


class MemberController(Controller):
    path = "/api/v1/projects/{project:str}/members"
    tags = ["members"]  # noqa: RUF012
    guards = [signed_in]  # noqa: RUF012

    @post(
        "/",
        summary="Add a user, group or robot with a role",
        guards=[project_permission("member", "create")],
    )
    async def add(
        self,
        caller: NamedDependency[Identity],
        identity_services: NamedDependency[IdentityServices],
        project: FromPath[str],
        data: JSONBody[MemberIn],
    ) -> Response[MemberOut]:
        kind, name = data.kind_and_name()
        add = identity_services.members.add
        member = await anyio.to_thread.run_sync(add, caller, project, kind, name, data.role)
        return Response(content=MemberOut.of(member), status_code=201)

    @get("/", summary="List members", guards=[project_permission("member", "list")])
    async def list_members(
        self,
        request: Request[Any, Any, Any],
        caller: NamedDependency[Identity],
        identity_services: NamedDependency[IdentityServices],
        project: FromPath[str],
        page: NamedDependency[PageParams],
    ) -> Response[MemberPage]:
        listing = identity_services.members.list
        window = await page.fetch(
            lambda after, count: listing(caller, project, after, count), key=_id, cursor=IDS
        )
        return window.respond(request, MemberPage, [MemberOut.of(m) for m in window.items])

    @patch(
        "/{member_id:int}",
        summary="Change a member's role",
        guards=[project_permission("member", "update")],
    )
    async def update(
        self,
        caller: NamedDependency[Identity],
        identity_services: NamedDependency[IdentityServices],
        project: FromPath[str],
        member_id: FromPath[int],
        data: JSONBody[MemberPatch],
    ) -> MemberOut:
        update = identity_services.members.update
        member = await anyio.to_thread.run_sync(update, caller, project, member_id, data.role)
        return MemberOut.of(member)

    @delete(
        "/{member_id:int}",
        summary="Remove a member",
        status_code=204,
        guards=[project_permission("member", "delete")],
    )
    async def remove(
        self,
        caller: NamedDependency[Identity],
        identity_services: NamedDependency[IdentityServices],
        project: FromPath[str],
        member_id: FromPath[int],
    ) -> None:
        remove = identity_services.members.remove
        await anyio.to_thread.run_sync(remove, caller, project, member_id)


def _id(member: MemberRecord) -> int:
    return member.id
