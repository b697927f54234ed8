"""Management API: backups and restores (``/api/v1/system/backups``), system admins only.

Creating, verifying, restoring and pruning start workflows and answer ``202`` with the
operation's id; ``GET /api/v1/system/backups/operations/{id}`` reads its state and, once
it ended, its result or error.
"""

from __future__ import annotations

import secrets
from datetime import datetime
from typing import Any

import anyio.to_thread
from litestar import Controller, Request, Response, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody
from pydantic import BaseModel, Field

from api.backup_runs import BackupRuns, Operation, TemporalUnavailableError
from api.errors import problem
from api.guards import system_admin
from api.pagination import NEWEST_FIRST, Page, PageParams
from core.backup import BackupManifest
from core.backup_service import BackupService
from core.names import validate_project_name


class BackupRequest(BaseModel):
    #: Back up this project only (default: the whole installation).
    project: str | None = None


class RestoreRequest(BaseModel):
    #: Restore this project only (default: the whole installation, into one without projects).
    project: str | None = None


class PruneRequest(BaseModel):
    keep_last: int = Field(ge=1)


class BackupOut(BaseModel):
    id: str
    created_at: str
    completed_at: str
    project: str | None
    projects: list[str]
    blobs: int
    bytes: int
    schema_revision: str
    source_database: str
    encrypted: bool

    @classmethod
    def of(cls, backup: BackupManifest) -> BackupOut:
        return cls(
            id=backup.id,
            created_at=backup.created_at,
            completed_at=backup.completed_at,
            project=backup.project,
            projects=[p.name for p in backup.snapshot.projects],
            blobs=len(backup.snapshot.blobs),
            bytes=backup.total_bytes,
            schema_revision=backup.snapshot.revision,
            source_database=backup.snapshot.dialect,
            encrypted=backup.key_id != "plain",
        )


class BackupPage(Page[BackupOut]):
    """Complete backups, newest first."""


class OperationOut(BaseModel):
    id: str
    state: str
    backup_id: str | None = None
    result: Any = None
    error: str | None = None

    @classmethod
    def of(cls, operation: Operation, backup_id: str | None = None) -> OperationOut:
        return cls(
            id=operation.id,
            state=operation.state,
            backup_id=backup_id,
            result=operation.result,
            error=operation.error,
        )


def unavailable(_request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    """Temporal is away: ``503`` (the operation did not start; try again later)."""
    return problem(503, "Service Unavailable", str(exc))


def _checked(project: str | None) -> str | None:
    if project is not None:
        validate_project_name(project)
    return project


def _key(backup: BackupManifest) -> tuple[datetime, str]:
    return datetime.fromisoformat(backup.created_at), backup.id


class BackupController(Controller):
    path = "/api/v1/system/backups"
    tags = ["backups"]  # noqa: RUF012
    guards = [system_admin]  # noqa: RUF012
    exception_handlers = {TemporalUnavailableError: unavailable}  # noqa: RUF012

    @post("/", summary="Start a backup (whole installation, or one project)", status_code=202)
    async def create(
        self,
        backups: NamedDependency[BackupService],
        backup_runs: NamedDependency[BackupRuns],
        data: JSONBody[BackupRequest],
    ) -> OperationOut:
        project = _checked(data.project)
        backups.location  # noqa: B018 - refuses (409) when no location is configured
        backup_id = backups.new_id()
        arg = {"backup_id": backup_id, "project": project, "keep_last": 0}
        started = await backup_runs.start("BackupWorkflow", arg, f"backup-{backup_id}")
        return OperationOut.of(started, backup_id)

    @get("/", summary="Complete backups, newest first")
    async def list_backups(
        self,
        request: Request[Any, Any, Any],
        backups: NamedDependency[BackupService],
        page: NamedDependency[PageParams],
    ) -> Response[BackupPage]:
        window = await page.fetch(backups.page, key=_key, cursor=NEWEST_FIRST)
        return window.respond(request, BackupPage, [BackupOut.of(b) for b in window.items])

    @get("/{backup_id:str}", summary="One backup's manifest summary")
    async def read(
        self, backups: NamedDependency[BackupService], backup_id: FromPath[str]
    ) -> BackupOut:
        return BackupOut.of(await anyio.to_thread.run_sync(backups.get, backup_id))

    @post(
        "/{backup_id:str}/verify",
        summary="Verify a backup's blobs and audit chain",
        status_code=202,
    )
    async def verify(
        self,
        backups: NamedDependency[BackupService],
        backup_runs: NamedDependency[BackupRuns],
        backup_id: FromPath[str],
    ) -> OperationOut:
        await anyio.to_thread.run_sync(backups.get, backup_id)
        workflow_id = f"backup-verify-{backup_id}-{secrets.token_hex(4)}"
        started = await backup_runs.start(
            "VerifyBackupWorkflow", {"backup_id": backup_id}, workflow_id
        )
        return OperationOut.of(started, backup_id)

    @post(
        "/{backup_id:str}/restore",
        summary="Restore a backup (or one project of it)",
        status_code=202,
    )
    async def restore(
        self,
        backups: NamedDependency[BackupService],
        backup_runs: NamedDependency[BackupRuns],
        backup_id: FromPath[str],
        data: JSONBody[RestoreRequest],
    ) -> OperationOut:
        project = _checked(data.project)
        await anyio.to_thread.run_sync(backups.get, backup_id)
        workflow_id = f"backup-restore-{backup_id}-{secrets.token_hex(4)}"
        arg = {"backup_id": backup_id, "project": project}
        started = await backup_runs.start("RestoreBackupWorkflow", arg, workflow_id)
        return OperationOut.of(started, backup_id)

    @post("/prune", summary="Delete all but the newest backups", status_code=202)
    async def prune(
        self,
        backups: NamedDependency[BackupService],
        backup_runs: NamedDependency[BackupRuns],
        data: JSONBody[PruneRequest],
    ) -> OperationOut:
        backups.location  # noqa: B018 - refuses (409) when no location is configured
        workflow_id = f"backup-prune-{secrets.token_hex(6)}"
        started = await backup_runs.start(
            "PruneBackupsWorkflow", {"keep_last": data.keep_last}, workflow_id
        )
        return OperationOut.of(started)

    @get("/operations/{operation_id:str}", summary="State and outcome of a backup operation")
    async def operation(
        self, backup_runs: NamedDependency[BackupRuns], operation_id: FromPath[str]
    ) -> OperationOut:
        return OperationOut.of(await backup_runs.read(operation_id))
