"""``moorage backup create|list|show|verify|restore|prune|status``: backups from the shell.

Each command calls the management API (``/api/v1/system/backups``, system administrators)
and prints one JSON object. Operations run as workflows; ``--wait`` polls the operation
until it ends and exits 1 when it failed (or, for ``verify``, found problems), 2 when
``--timeout`` passed first.
"""

from __future__ import annotations

import json
import time
from typing import Annotated, Any

import typer

from cli.api_client import Connection
from cli.control import _emit, connection_options

backup_app = typer.Typer(help="Backups and restores (system administrators).", no_args_is_help=True)
backup_app.callback()(connection_options)

BASE = "/api/v1/system/backups"
POLL_SECONDS = 1.0

Wait = Annotated[bool, typer.Option("--wait", help="Poll until the operation has ended.")]
Timeout = Annotated[float, typer.Option(min=1, help="Seconds --wait waits at most.")]
Project = Annotated[
    str | None, typer.Option("--project", help="One project only (default: everything).")
]
BackupId = Annotated[str, typer.Argument(help="The backup's id.")]


def _poll(connection: Connection, operation: dict[str, Any], timeout: float) -> Any:
    deadline = time.monotonic() + timeout
    path = f"{BASE}/operations/{operation['id']}"
    for _ in range(int(timeout / POLL_SECONDS) + 2):
        if operation["state"] != "running" or time.monotonic() >= deadline:
            break
        time.sleep(POLL_SECONDS)
        polled = connection.call("GET", path)
        operation = {**operation, **{k: v for k, v in polled.items() if v is not None}}
    return operation


def _run(ctx: typer.Context, path: str, body: dict[str, Any], wait: bool, timeout: float) -> None:
    def action(connection: Connection) -> Any:
        started = connection.call("POST", path, body)
        return _poll(connection, started, timeout) if wait else started

    operation = _emit(action, ctx)
    if not wait:
        return
    if operation["state"] == "running":
        typer.echo(json.dumps({"title": "timed out", "detail": "still running"}), err=True)
        raise typer.Exit(2)
    result = operation.get("result") or {}
    if operation["state"] != "completed" or result.get("ok") is False:
        raise typer.Exit(1)


@backup_app.command("create")
def create(
    ctx: typer.Context, project: Project = None, wait: Wait = False, timeout: Timeout = 3600
) -> None:
    """Back up the whole installation (or one project)."""
    _run(ctx, f"{BASE}/", {"project": project}, wait, timeout)


@backup_app.command("list")
def list_backups(
    ctx: typer.Context, limit: Annotated[int, typer.Option(min=1, max=1000)] = 100
) -> None:
    """Complete backups, newest first."""
    _emit(lambda c: c.call("GET", f"{BASE}/", limit=limit), ctx)


@backup_app.command("show")
def show(ctx: typer.Context, backup_id: BackupId) -> None:
    """One backup's summary."""
    _emit(lambda c: c.call("GET", f"{BASE}/{backup_id}"), ctx)


@backup_app.command("verify")
def verify(
    ctx: typer.Context, backup_id: BackupId, wait: Wait = False, timeout: Timeout = 3600
) -> None:
    """Check every blob's digest and size, the snapshot and the audit chain."""
    _run(ctx, f"{BASE}/{backup_id}/verify", {}, wait, timeout)


@backup_app.command("restore")
def restore(
    ctx: typer.Context,
    backup_id: BackupId,
    project: Project = None,
    wait: Wait = False,
    timeout: Timeout = 3600,
) -> None:
    """Restore one project beside the others, or everything into an empty installation."""
    _run(ctx, f"{BASE}/{backup_id}/restore", {"project": project}, wait, timeout)


@backup_app.command("prune")
def prune(
    ctx: typer.Context,
    keep_last: Annotated[int, typer.Option("--keep-last", min=1, help="Backups to keep.")],
    wait: Wait = False,
    timeout: Timeout = 3600,
) -> None:
    """Delete all but the newest backups, and the blobs only they held."""
    _run(ctx, f"{BASE}/prune", {"keep_last": keep_last}, wait, timeout)


@backup_app.command("status")
def status(ctx: typer.Context, operation_id: Annotated[str, typer.Argument()]) -> None:
    """State and outcome of a backup operation."""
    _emit(lambda c: c.call("GET", f"{BASE}/operations/{operation_id}"), ctx)
