"""``moorage preheat``: P2P provider instances, preheat policies and their runs.

``instance list|create|delete|ping`` manage provider instances (system administrators;
the secret is read from ``--secret`` or ``MOORAGE_PREHEAT_SECRET`` and never shown
again); ``policy list|create|delete|run`` a project's policies (``run --wait`` polls until
the execution finished and exits 1 unless it succeeded); ``executions`` prints a
project's runs (``--id`` one run with its per-candidate results); ``stop`` stops a
running one. Each command prints the
API's JSON answer on stdout; a failed call prints the problem details on stderr and
exits 1.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Annotated, Any

import typer

from cli.api_client import ApiError, Connection
from cli.control import connection_options

preheat_app = typer.Typer(
    help="P2P preheat: provider instances, policies and runs.", no_args_is_help=True
)
preheat_app.callback()(connection_options)
instance_app = typer.Typer(help="P2P provider instances (Dragonfly, Kraken).", no_args_is_help=True)
policy_app = typer.Typer(help="A project's preheat policies.", no_args_is_help=True)
preheat_app.add_typer(instance_app, name="instance")
preheat_app.add_typer(policy_app, name="policy")

_INSTANCES = "/api/v1/p2p/instances"
ProjectArg = Annotated[str, typer.Option("--project", "-p", help="The project.")]
#: How long ``policy run --wait`` waits at most, and between polls.
WAIT_SECONDS = 3600.0
POLL_SECONDS = 1.0
#: Statuses of an execution that has not finished.
_ACTIVE = frozenset({"running", "stopping"})


def _policies(project: str) -> str:
    return f"/api/v1/projects/{project}/preheat/policies"


def _executions(project: str) -> str:
    return f"/api/v1/projects/{project}/preheat/executions"


def _emit(action: Callable[[Connection], Any], ctx: typer.Context) -> Any:
    try:
        result = action(ctx.obj)  # NOTE: sub-groups inherit the connection object
    except ApiError as exc:
        typer.echo(json.dumps(exc.problem, sort_keys=True), err=True)
        raise typer.Exit(1) from exc
    typer.echo(json.dumps(result, sort_keys=True))
    return result


@instance_app.command("list")
def list_instances(ctx: typer.Context) -> None:
    """List the provider instances (secrets are never shown)."""
    _emit(lambda c: c.call("GET", _INSTANCES, limit=1000), ctx)


@instance_app.command("create")
def create_instance(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="A unique name.")],
    vendor: Annotated[str, typer.Argument(help="dragonfly or kraken.")],
    endpoint: Annotated[str, typer.Argument(help="The manager's (or Kraken proxy's) URL.")],
    auth_mode: Annotated[
        str, typer.Option(help="none, basic, bearer (Harbor's oauth) or header.")
    ] = "none",
    username: Annotated[str, typer.Option(help="Username of basic auth.")] = "",
    secret: Annotated[
        str | None,
        typer.Option(
            envvar="MOORAGE_PREHEAT_SECRET",
            help="Password, token, or 'Name: value' header (stored sealed).",
        ),
    ] = None,
    disabled: Annotated[bool, typer.Option("--disabled", help="Create it disabled.")] = False,
    default: Annotated[
        bool, typer.Option("--default", help="Make it the instance policies use by default.")
    ] = False,
    insecure: Annotated[
        bool, typer.Option("--insecure", help="Do not verify the provider's TLS certificate.")
    ] = False,
) -> None:
    """Add a provider instance."""
    body = {
        "name": name,
        "vendor": vendor,
        "endpoint": endpoint,
        "auth_mode": auth_mode,
        "username": username,
        "secret": secret,
        "enabled": not disabled,
        "default": default,
        "insecure": insecure,
    }
    _emit(lambda c: c.call("POST", _INSTANCES, body), ctx)


@instance_app.command("delete")
def delete_instance(
    ctx: typer.Context, instance: Annotated[int, typer.Argument(help="The instance's id.")]
) -> None:
    """Remove an instance no policy uses."""
    _emit(lambda c: c.call("DELETE", f"{_INSTANCES}/{instance}"), ctx)


@instance_app.command("ping")
def ping_instance(
    ctx: typer.Context, instance: Annotated[int, typer.Argument(help="The instance's id.")]
) -> None:
    """Ask the provider's health endpoint now; exits 1 unless it is healthy."""
    result = _emit(lambda c: c.call("POST", f"{_INSTANCES}/{instance}/health"), ctx)
    if not result.get("healthy"):
        raise typer.Exit(1)


@policy_app.command("list")
def list_policies(ctx: typer.Context, project: ProjectArg) -> None:
    """List a project's preheat policies."""
    _emit(lambda c: c.call("GET", _policies(project), limit=1000), ctx)


@policy_app.command("create")
def create_policy(
    ctx: typer.Context,
    project: ProjectArg,
    name: Annotated[str, typer.Argument(help="A name, unique in the project.")],
    instance: Annotated[str, typer.Argument(help="The provider instance's name.")],
    repositories: Annotated[str, typer.Option(help="Repository glob (inside the project).")] = "**",
    tags: Annotated[str, typer.Option(help="Tag glob.")] = "**",
    signed_only: Annotated[bool, typer.Option("--signed-only", help="Only signed images.")] = False,
    severity: Annotated[
        str | None, typer.Option(help="Leave out images with findings at or above this.")
    ] = None,
    trigger: Annotated[str, typer.Option(help="manual, scheduled or event_based.")] = "manual",
    cron: Annotated[str | None, typer.Option(help="Cron of a scheduled policy.")] = None,
    scope: Annotated[
        str, typer.Option(help="single_seed_peer, all_seed_peers or all_peers.")
    ] = "single_seed_peer",
    cluster: Annotated[
        list[int] | None, typer.Option("--cluster", help="A scheduler cluster id (repeatable).")
    ] = None,
) -> None:
    """Add a preheat policy."""
    body = {
        "name": name,
        "instance": instance,
        "repositories": repositories,
        "tags": tags,
        "signed_only": signed_only,
        "severity": severity,
        "trigger": trigger,
        "cron": cron,
        "scope": scope,
        "cluster_ids": list(cluster or []),
    }
    _emit(lambda c: c.call("POST", _policies(project), body), ctx)


@policy_app.command("delete")
def delete_policy(
    ctx: typer.Context,
    project: ProjectArg,
    policy: Annotated[int, typer.Argument(help="The policy's id.")],
) -> None:
    """Delete a policy (its executions stay in the history)."""
    _emit(lambda c: c.call("DELETE", f"{_policies(project)}/{policy}"), ctx)


@policy_app.command("run")
def run_policy(
    ctx: typer.Context,
    project: ProjectArg,
    policy: Annotated[int, typer.Argument(help="The policy's id.")],
    wait: Annotated[bool, typer.Option("--wait", help="Wait until it finished.")] = False,
) -> None:
    """Run a policy now; prints the execution (the finished one with ``--wait``)."""
    start = f"{_policies(project)}/{policy}/executions"
    if not wait:
        _emit(lambda c: c.call("POST", start), ctx)
        return

    def started_and_done(c: Connection) -> Any:
        execution = c.call("POST", start)
        deadline = time.monotonic() + WAIT_SECONDS
        while execution["status"] in _ACTIVE and time.monotonic() < deadline:
            time.sleep(POLL_SECONDS)
            execution = c.call("GET", f"{_executions(project)}/{execution['id']}")
        return execution

    result = _emit(started_and_done, ctx)
    if result.get("status") != "succeeded":
        raise typer.Exit(1)


@preheat_app.command("executions")
def executions(
    ctx: typer.Context,
    project: ProjectArg,
    execution: Annotated[
        str | None, typer.Option("--id", help="One execution, with its candidates' results.")
    ] = None,
    policy: Annotated[int | None, typer.Option("--policy", help="Only this policy's.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000)] = 50,
) -> None:
    """A project's preheat runs, newest first (or one run and its tasks)."""
    if execution is None:
        _emit(lambda c: c.call("GET", _executions(project), limit=limit, policy_id=policy), ctx)
        return

    def one(c: Connection) -> Any:
        found = c.call("GET", f"{_executions(project)}/{execution}")
        tasks = c.call("GET", f"{_executions(project)}/{execution}/tasks", limit=1000)
        return {**found, "tasks": tasks["items"]}

    _emit(one, ctx)


@preheat_app.command("stop")
def stop(
    ctx: typer.Context,
    project: ProjectArg,
    execution: Annotated[str, typer.Argument(help="The execution's id.")],
) -> None:
    """Stop a running execution (it settles as ``stopped``; a finished one is refused)."""
    _emit(lambda c: c.call("POST", f"{_executions(project)}/{execution}/stop"), ctx)
