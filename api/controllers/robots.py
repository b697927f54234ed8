"""Management API: robot accounts, per project and system-wide.

``POST`` answers the secret once; ``PATCH`` disables/enables, changes the expiry or,
with ``{"rotate_secret": true}``, answers a new secret once.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import anyio.to_thread
from litestar import Controller, Request, Response, delete, get, patch, post
from litestar.params import FromPath, JSONBody
from pydantic import BaseModel, ConfigDict, Field

from api.context import identity_of, registry_of
from api.principal import require_caller
from core.identity_records import RepositoryPermission, RobotRecord


class PermissionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    repository: str = Field(min_length=1, max_length=255)
    actions: list[str] = Field(min_length=1, max_length=3)


class RobotIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=128)
    permissions: list[PermissionIn] = Field(min_length=1, max_length=100)
    expires_at: datetime | None = None

    def parsed(self) -> list[RepositoryPermission]:
        return [RepositoryPermission(p.repository, frozenset(p.actions)) for p in self.permissions]


class RobotPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")
    disabled: bool | None = None
    expires_at: datetime | None = None
    rotate_secret: bool = False


class RobotOut(BaseModel):
    id: int
    name: str
    permissions: list[dict[str, object]]
    expires_at: str | None
    disabled: bool
    creator: str
    secret: str | None = None

    @classmethod
    def of(cls, robot: RobotRecord, secret: str | None = None) -> RobotOut:
        return cls(
            id=robot.id,
            name=robot.name,
            permissions=[p.as_dict() for p in robot.permissions],
            expires_at=robot.expires_at.isoformat() if robot.expires_at else None,
            disabled=robot.disabled,
            creator=robot.creator,
            secret=secret,
        )


class RobotPage(BaseModel):
    items: list[RobotOut]
    next: str | None = None


async def _create(
    request: Request[Any, Any, Any], project: str | None, data: RobotIn
) -> Response[Any]:
    registry = registry_of(request)
    caller = await require_caller(request, registry)
    robots = identity_of(registry).robots

    def run() -> Any:
        if project is None:
            return robots.create_system(caller, data.name, data.parsed(), data.expires_at)
        return robots.create_in_project(caller, project, data.name, data.parsed(), data.expires_at)

    created = await anyio.to_thread.run_sync(run)
    return Response(content=RobotOut.of(created.robot, created.secret), status_code=201)


async def _list(request: Request[Any, Any, Any], project: str | None) -> RobotPage:
    registry = registry_of(request)
    caller = await require_caller(request, registry)
    found = await anyio.to_thread.run_sync(identity_of(registry).robots.list, caller, project)
    return RobotPage(items=[RobotOut.of(r) for r in found])


async def _read(request: Request[Any, Any, Any], project: str | None, robot_id: int) -> RobotOut:
    registry = registry_of(request)
    caller = await require_caller(request, registry)
    get_robot = identity_of(registry).robots.get
    return RobotOut.of(await anyio.to_thread.run_sync(get_robot, caller, project, robot_id, "read"))


async def _update(
    request: Request[Any, Any, Any], project: str | None, robot_id: int, data: RobotPatch
) -> RobotOut:
    registry = registry_of(request)
    caller = await require_caller(request, registry)

    def run() -> tuple[RobotRecord, str | None]:
        return identity_of(registry).robots.update(
            caller,
            project,
            robot_id,
            disabled=data.disabled,
            expires_at=data.expires_at,
            rotate=data.rotate_secret,
        )

    robot, secret = await anyio.to_thread.run_sync(run)
    return RobotOut.of(robot, secret)


async def _delete(request: Request[Any, Any, Any], project: str | None, robot_id: int) -> None:
    registry = registry_of(request)
    caller = await require_caller(request, registry)
    await anyio.to_thread.run_sync(identity_of(registry).robots.delete, caller, project, robot_id)


class ProjectRobotController(Controller):
    path = "/api/v1/projects/{project:str}/robots"
    tags = ["robots"]  # noqa: RUF012

    @post("/", summary="Create a project robot (the secret is shown once)")
    async def create(
        self, request: Request[Any, Any, Any], project: FromPath[str], data: JSONBody[RobotIn]
    ) -> Response[Any]:
        return await _create(request, project, data)

    @get("/", summary="List the project's robots")
    async def list_robots(
        self, request: Request[Any, Any, Any], project: FromPath[str]
    ) -> RobotPage:
        return await _list(request, project)

    @get("/{robot_id:int}", summary="Read a project robot")
    async def read(
        self, request: Request[Any, Any, Any], project: FromPath[str], robot_id: FromPath[int]
    ) -> RobotOut:
        return await _read(request, project, robot_id)

    @patch("/{robot_id:int}", summary="Disable, re-date or rotate a project robot")
    async def update(
        self,
        request: Request[Any, Any, Any],
        project: FromPath[str],
        robot_id: FromPath[int],
        data: JSONBody[RobotPatch],
    ) -> RobotOut:
        return await _update(request, project, robot_id, data)

    @delete("/{robot_id:int}", summary="Delete a project robot", status_code=204)
    async def remove(
        self, request: Request[Any, Any, Any], project: FromPath[str], robot_id: FromPath[int]
    ) -> None:
        await _delete(request, project, robot_id)


class SystemRobotController(Controller):
    path = "/api/v1/robots"
    tags = ["robots"]  # noqa: RUF012

    @post("/", summary="Create a system robot (administrators; the secret is shown once)")
    async def create(
        self, request: Request[Any, Any, Any], data: JSONBody[RobotIn]
    ) -> Response[Any]:
        return await _create(request, None, data)

    @get("/", summary="List system robots")
    async def list_robots(self, request: Request[Any, Any, Any]) -> RobotPage:
        return await _list(request, None)

    @get("/{robot_id:int}", summary="Read a system robot")
    async def read(self, request: Request[Any, Any, Any], robot_id: FromPath[int]) -> RobotOut:
        return await _read(request, None, robot_id)

    @patch("/{robot_id:int}", summary="Disable, re-date or rotate a system robot")
    async def update(
        self, request: Request[Any, Any, Any], robot_id: FromPath[int], data: JSONBody[RobotPatch]
    ) -> RobotOut:
        return await _update(request, None, robot_id, data)

    @delete("/{robot_id:int}", summary="Delete a system robot", status_code=204)
    async def remove(self, request: Request[Any, Any, Any], robot_id: FromPath[int]) -> None:
        await _delete(request, None, robot_id)
