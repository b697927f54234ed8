"""``moorage gc|retention|immutability|quota ...``: the operations API from the shell.

Each command makes management-API calls over HTTP (``cli.api_client`` says where and
with which credentials) and prints one JSON object on stdout. A failed call prints the
problem details on stderr and exits 1; ``--wait`` polls a run until it leaves
``queued``/``running`` (exit 1 when it ``failed`` or was ``cancelled``, 2 when
``--timeout`` passes first).
"""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

from cli.api_client import ApiError, Connection, connect

gc_app = typer.Typer(help="Garbage collection (system administrators).", no_args_is_help=True)
retention_app = typer.Typer(help="A project's tag retention rules and runs.", no_args_is_help=True)
immutability_app = typer.Typer(help="A project's tag immutability rules.", no_args_is_help=True)
quota_app = typer.Typer(help="A project's quota and usage.", no_args_is_help=True)

PENDING = frozenset({"queued", "running"})
POLL_SECONDS = 1.0

Project = Annotated[str, typer.Argument(help="The project's name.")]
Wait = Annotated[bool, typer.Option("--wait", help="Poll until the run has finished.")]
Timeout = Annotated[float, typer.Option(min=1, help="Seconds --wait waits at most.")]
DryRun = Annotated[bool, typer.Option("--dry-run", help="Report only; delete nothing.")]


def connection_options(
    ctx: typer.Context,
    url: Annotated[
        str | None, typer.Option(envvar="MOORAGE_URL", help="Registry base URL.")
    ] = None,
    username: Annotated[str | None, typer.Option(envvar="MOORAGE_USERNAME")] = None,
    password: Annotated[
        str | None, typer.Option(envvar="MOORAGE_PASSWORD", help="Password, token or secret.")
    ] = None,
    token: Annotated[
        str | None, typer.Option(envvar="MOORAGE_TOKEN", help="Bearer token (OIDC, workload).")
    ] = None,
) -> None:
    """Where the registry is and how to log in (see ``cli.api_client``).

    The one set of connection options of every command group that talks to the API.
    """
    if logging.getLogger().getEffectiveLevel() > logging.DEBUG:
        # NOTE: stderr carries problem details only; request lines are debug output here.
        logging.getLogger("httpx").setLevel(logging.WARNING)
    ctx.obj = connect(url, username, password, token)


for _group in (gc_app, retention_app, immutability_app, quota_app):
    _group.callback()(connection_options)


def _emit(action: Callable[[Connection], Any], ctx: typer.Context) -> Any:
    """Run ``action``, print its JSON answer; on failure print the problem and exit 1."""
    try:
        result = action(ctx.obj)
    except ApiError as exc:
        typer.echo(json.dumps(exc.problem, sort_keys=True), err=True)
        raise typer.Exit(1) from exc
    typer.echo(json.dumps(result, sort_keys=True))
    return result


def _read_json(file: Path) -> Any:
    try:
        text = sys.stdin.read() if str(file) == "-" else file.read_text(encoding="utf-8")
        return json.loads(text)
    except (OSError, ValueError) as exc:
        problem = {"title": "invalid input", "detail": f"{file}: {exc}"}
        typer.echo(json.dumps(problem), err=True)
        raise typer.Exit(1) from exc


def _wait(connection: Connection, path: str, run: dict[str, Any], timeout: float) -> Any:
    """Poll ``path`` until the run leaves ``PENDING``, at most ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    for _ in range(int(timeout / POLL_SECONDS) + 2):
        if run["state"] not in PENDING or time.monotonic() >= deadline:
            break
        time.sleep(POLL_SECONDS)
        run = connection.call("GET", path)
    return run


def _finish(run: dict[str, Any], wait: bool) -> None:
    if not wait:
        return
    if run["state"] in PENDING:
        typer.echo(
            json.dumps({"title": "timed out", "detail": "the run has not finished"}), err=True
        )
        raise typer.Exit(2)
    if run["state"] in {"failed", "cancelled"}:
        raise typer.Exit(1)


# garbage collection


@gc_app.command("run")
def gc_run(
    ctx: typer.Context,
    dry_run: DryRun = False,
    delete_untagged: Annotated[
        bool, typer.Option("--delete-untagged", help="Also delete untagged manifests.")
    ] = False,
    wait: Wait = False,
    timeout: Timeout = 600.0,
) -> None:
    """Request a garbage-collection run."""
    body = {"dry_run": dry_run, "delete_untagged": delete_untagged}

    def action(connection: Connection) -> Any:
        run = connection.call("POST", "/api/v1/system/gc", body)
        return _wait(connection, f"/api/v1/system/gc/{run['id']}", run, timeout) if wait else run

    _finish(_emit(action, ctx), wait)


@gc_app.command("status")
def gc_status(ctx: typer.Context, run_id: Annotated[str, typer.Argument()]) -> None:
    """State and report of a garbage-collection run."""
    _emit(lambda c: c.call("GET", f"/api/v1/system/gc/{run_id}"), ctx)


@gc_app.command("cancel")
def gc_cancel(ctx: typer.Context, run_id: Annotated[str, typer.Argument()]) -> None:
    """Cancel a garbage-collection run (its workflow is cancelled, the run marked)."""
    _emit(lambda c: c.call("POST", f"/api/v1/system/gc/{run_id}/cancel"), ctx)


@gc_app.command("runs")
def gc_runs(ctx: typer.Context, limit: Annotated[int, typer.Option(min=1, max=100)] = 20) -> None:
    """Recent garbage-collection runs, newest first."""
    _emit(lambda c: c.call("GET", "/api/v1/system/gc", limit=limit), ctx)


# retention


def _project_path(project: str, what: str) -> str:
    return f"/api/v1/projects/{project}/{what}"


@retention_app.command("get")
def retention_get(ctx: typer.Context, project: Project) -> None:
    """The project's retention rules."""
    _emit(lambda c: c.call("GET", _project_path(project, "retention")), ctx)


@retention_app.command("set")
def retention_set(
    ctx: typer.Context,
    project: Project,
    file: Annotated[Path, typer.Argument(help="JSON rules document ('-': stdin).")],
) -> None:
    """Replace the project's retention rules with the document in FILE."""
    body = _read_json(file)
    _emit(lambda c: c.call("PUT", _project_path(project, "retention"), body), ctx)


@retention_app.command("run")
def retention_run(
    ctx: typer.Context,
    project: Project,
    dry_run: DryRun = False,
    wait: Wait = False,
    timeout: Timeout = 600.0,
) -> None:
    """Run the project's retention rules now (or report what they would delete)."""
    path = _project_path(project, "retention/runs")

    def action(connection: Connection) -> Any:
        run = connection.call("POST", path, {"dry_run": dry_run})
        return _wait(connection, f"{path}/{run['id']}", run, timeout) if wait else run

    _finish(_emit(action, ctx), wait)


@retention_app.command("runs")
def retention_runs(ctx: typer.Context, project: Project) -> None:
    """The project's retention runs, newest first."""
    _emit(lambda c: c.call("GET", _project_path(project, "retention/runs")), ctx)


@retention_app.command("status")
def retention_status(
    ctx: typer.Context, project: Project, run_id: Annotated[str, typer.Argument()]
) -> None:
    """State and report of one retention run."""
    _emit(lambda c: c.call("GET", _project_path(project, f"retention/runs/{run_id}")), ctx)


@retention_app.command("cancel")
def retention_cancel(
    ctx: typer.Context, project: Project, run_id: Annotated[str, typer.Argument()]
) -> None:
    """Cancel one retention run (its workflow is cancelled, the run marked)."""
    path = _project_path(project, f"retention/runs/{run_id}/cancel")
    _emit(lambda c: c.call("POST", path), ctx)


# immutability


@immutability_app.command("get")
def immutability_get(ctx: typer.Context, project: Project) -> None:
    """The project's tag immutability rules."""
    _emit(lambda c: c.call("GET", _project_path(project, "immutability")), ctx)


@immutability_app.command("set")
def immutability_set(
    ctx: typer.Context,
    project: Project,
    file: Annotated[Path, typer.Argument(help="JSON rules document ('-': stdin).")],
) -> None:
    """Replace the project's tag immutability rules with the document in FILE."""
    body = _read_json(file)
    _emit(lambda c: c.call("PUT", _project_path(project, "immutability"), body), ctx)


# quota


@quota_app.command("get")
def quota_get(ctx: typer.Context, project: Project) -> None:
    """The project's limits and exact usage."""
    _emit(lambda c: c.call("GET", _project_path(project, "quota")), ctx)


_LIMIT_HELP = "-1: unlimited; omitted: unchanged."
Bytes = Annotated[int | None, typer.Option("--bytes", min=-1, help=f"Storage bytes. {_LIMIT_HELP}")]
Artifacts = Annotated[
    int | None, typer.Option("--artifacts", min=-1, help=f"Artifacts. {_LIMIT_HELP}")
]


@quota_app.command("set")
def quota_set(
    ctx: typer.Context, project: Project, bytes_: Bytes = None, artifacts: Artifacts = None
) -> None:
    """Set the project's limits (system administrators); prints limits and usage."""

    def action(connection: Connection) -> Any:
        path = _project_path(project, "quota")
        current = connection.call("GET", path)
        body = {"bytes": current["bytes"], "artifacts": current["artifacts"]}
        for key, value in (("bytes", bytes_), ("artifacts", artifacts)):
            if value is not None:
                body[key] = None if value < 0 else value
        return connection.call("PUT", path, body)

    _emit(action, ctx)
