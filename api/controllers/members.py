"""Management API: project members (``/api/v1/projects/{project}/members``)."""

from __future__ import annotations

from typing import Any

import anyio.to_thread
from litestar import Controller, Request, Response, delete, get, patch, post
from litestar.params import FromPath, JSONBody
from pydantic import BaseModel, ConfigDict, Field, model_validator

from api.context import identity_of, registry_of
from api.principal import require_caller
from core.identity_records import MemberRecord


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


class MemberPage(BaseModel):
    items: list[MemberOut]
    next: str | None = None


class MemberController(Controller):
    path = "/api/v1/projects/{project:str}/members"
    tags = ["members"]  # noqa: RUF012

    @post("/", summary="Add a user, group or robot with a role")
    async def add(
        self, request: Request[Any, Any, Any], project: FromPath[str], data: JSONBody[MemberIn]
    ) -> Response[Any]:
        registry = registry_of(request)
        caller = await require_caller(request, registry)
        kind, name = data.kind_and_name()
        add = identity_of(registry).members.add
        member = await anyio.to_thread.run_sync(add, caller, project, kind, name, data.role)
        return Response(content=MemberOut.of(member), status_code=201)

    @get("/", summary="List members")
    async def list_members(
        self, request: Request[Any, Any, Any], project: FromPath[str]
    ) -> MemberPage:
        registry = registry_of(request)
        caller = await require_caller(request, registry)
        members = await anyio.to_thread.run_sync(
            identity_of(registry).members.list, caller, project
        )
        return MemberPage(items=[MemberOut.of(m) for m in members])

    @patch("/{member_id:int}", summary="Change a member's role")
    async def update(
        self,
        request: Request[Any, Any, Any],
        project: FromPath[str],
        member_id: FromPath[int],
        data: JSONBody[MemberPatch],
    ) -> MemberOut:
        registry = registry_of(request)
        caller = await require_caller(request, registry)
        update = identity_of(registry).members.update
        member = await anyio.to_thread.run_sync(update, caller, project, member_id, data.role)
        return MemberOut.of(member)

    @delete("/{member_id:int}", summary="Remove a member", status_code=204)
    async def remove(
        self, request: Request[Any, Any, Any], project: FromPath[str], member_id: FromPath[int]
    ) -> None:
        registry = registry_of(request)
        caller = await require_caller(request, registry)
        remove = identity_of(registry).members.remove
        await anyio.to_thread.run_sync(remove, caller, project, member_id)
