"""``moorage replication``: policies, runs and the execution history from the shell.

``policies``, ``create``, ``show``, ``delete`` manage policies (system administrators);
``run`` starts a manual execution (``--wait`` polls until it finished and exits 1 unless
it succeeded); ``stop`` stops a running one; ``executions`` and ``tasks`` print the
history and per-artifact results.
Each command prints the API's JSON answer on stdout; a failed call prints the problem
details on stderr and exits 1.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Annotated, Any

import typer

from cli.api_client import ApiError, Connection
from cli.control import connection_options

replication_app = typer.Typer(
    help="Replication policies, runs and their results.", no_args_is_help=True
)
replication_app.callback()(connection_options)

_POLICIES = "/api/v1/replication/policies"
_EXECUTIONS = "/api/v1/replication/executions"
PolicyId = Annotated[int, typer.Argument(help="The policy's id.")]
#: How long ``run --wait`` waits at most, and between polls.
WAIT_SECONDS = 3600.0
POLL_SECONDS = 1.0
#: Statuses of an execution that has not finished yet.
_ACTIVE = frozenset({"running", "stopping"})


def _emit(action: Callable[[Connection], Any], ctx: typer.Context) -> Any:
    try:
        result = action(ctx.obj)
    except ApiError as exc:
        typer.echo(json.dumps(exc.problem, sort_keys=True), err=True)
        raise typer.Exit(1) from exc
    typer.echo(json.dumps(result, sort_keys=True))
    return result


@replication_app.command("policies")
def list_policies(ctx: typer.Context) -> None:
    """List the replication policies."""
    _emit(lambda c: c.call("GET", _POLICIES, limit=1000), ctx)


@replication_app.command("create")
def create(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="A unique name.")],
    direction: Annotated[str, typer.Argument(help="push (local -> endpoint) or pull.")],
    endpoint: Annotated[str, typer.Argument(help="The registry endpoint's name.")],
    repositories: Annotated[str, typer.Option(help="Repository glob.")] = "**",
    tags: Annotated[str, typer.Option(help="Tag glob.")] = "**",
    artifact_kind: Annotated[str, typer.Option(help="all, image or artifact.")] = "all",
    no_referrers: Annotated[bool, typer.Option("--no-referrers")] = False,
    flatten: Annotated[int, typer.Option(help="Leading path components dropped.")] = 0,
    prefix: Annotated[str, typer.Option(help="Destination namespace.")] = "",
    trigger: Annotated[str, typer.Option(help="manual, scheduled or event.")] = "manual",
    cron: Annotated[str | None, typer.Option(help="Cron of a scheduled policy.")] = None,
    deletions: Annotated[bool, typer.Option("--deletions", help="Replicate deletions.")] = False,
    skip_existing: Annotated[
        bool, typer.Option("--skip-existing", help="Keep destination tags that differ.")
    ] = False,
    bandwidth_kbps: Annotated[int, typer.Option(help="KiB/s per copy (0: no cap).")] = 0,
    concurrency: Annotated[int, typer.Option(min=1, max=64)] = 4,
) -> None:
    """Create a policy."""
    body = {
        "name": name,
        "direction": direction,
        "endpoint": endpoint,
        "repositories": repositories,
        "tags": tags,
        "artifact_kind": artifact_kind,
        "referrers": not no_referrers,
        "flatten": flatten,
        "prefix": prefix,
        "trigger": trigger,
        "cron": cron,
        "deletions": deletions,
        "override": not skip_existing,
        "bandwidth_kbps": bandwidth_kbps,
        "concurrency": concurrency,
    }
    _emit(lambda c: c.call("POST", _POLICIES, body), ctx)


@replication_app.command("show")
def show(ctx: typer.Context, policy: PolicyId) -> None:
    """One policy."""
    _emit(lambda c: c.call("GET", f"{_POLICIES}/{policy}"), ctx)


@replication_app.command("delete")
def delete(ctx: typer.Context, policy: PolicyId) -> None:
    """Delete a policy (its executions stay in the history)."""
    _emit(lambda c: c.call("DELETE", f"{_POLICIES}/{policy}"), ctx)


@replication_app.command("run")
def run(
    ctx: typer.Context,
    policy: PolicyId,
    wait: Annotated[bool, typer.Option("--wait", help="Wait until it finished.")] = False,
) -> None:
    """Run a policy now; prints the execution (the finished one with ``--wait``)."""
    if not wait:
        _emit(lambda c: c.call("POST", f"{_POLICIES}/{policy}/executions"), ctx)
        return

    def started_and_done(c: Connection) -> Any:
        execution = c.call("POST", f"{_POLICIES}/{policy}/executions")
        deadline = time.monotonic() + WAIT_SECONDS
        while execution["status"] in _ACTIVE and time.monotonic() < deadline:
            time.sleep(POLL_SECONDS)
            execution = c.call("GET", f"{_EXECUTIONS}/{execution['id']}")
        return execution

    result = _emit(started_and_done, ctx)
    if result.get("status") != "succeeded":
        raise typer.Exit(1)


@replication_app.command("executions")
def executions(
    ctx: typer.Context,
    policy: Annotated[int | None, typer.Option("--policy", help="Only this policy's.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000)] = 50,
) -> None:
    """The execution history, newest first."""
    _emit(lambda c: c.call("GET", _EXECUTIONS, limit=limit, policy_id=policy), ctx)


@replication_app.command("tasks")
def tasks(
    ctx: typer.Context,
    execution: Annotated[str, typer.Argument(help="The execution's id.")],
) -> None:
    """An execution's per-artifact results."""
    _emit(lambda c: c.call("GET", f"{_EXECUTIONS}/{execution}/tasks", limit=1000), ctx)


@replication_app.command("stop")
def stop(
    ctx: typer.Context,
    execution: Annotated[str, typer.Argument(help="The execution's id.")],
) -> None:
    """Stop a running execution (it settles as ``stopped``; a finished one is refused)."""
    _emit(lambda c: c.call("POST", f"{_EXECUTIONS}/{execution}/stop"), ctx)
