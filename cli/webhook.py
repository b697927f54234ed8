"""``moorage webhook list|create|test|deliveries|redeliver``: webhook policies from the shell.

``--project P`` works on a project's policies; without it, on the system-wide ones
(system administrators). Each command prints the API's JSON answer on stdout; a failed
call prints the problem details on stderr and exits 1. ``create`` prints the signing
secret once: keep it, it is never shown again.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any

import typer

from cli.api_client import ApiError, Connection
from cli.control import connection_options

webhook_app = typer.Typer(help="Webhook policies and their deliveries.", no_args_is_help=True)

ProjectOpt = Annotated[
    str | None,
    typer.Option("--project", "-p", help="The project; omit for system-wide webhooks."),
]
HookId = Annotated[int, typer.Argument(help="The webhook's id.")]


webhook_app.callback()(connection_options)


def _base(project: str | None) -> str:
    return f"/api/v1/projects/{project}/webhooks" if project else "/api/v1/webhooks"


def _emit(action: Callable[[Connection], Any], ctx: typer.Context) -> None:
    try:
        result = action(ctx.obj)
    except ApiError as exc:
        typer.echo(json.dumps(exc.problem, sort_keys=True), err=True)
        raise typer.Exit(1) from exc
    typer.echo(json.dumps(result, sort_keys=True))


@webhook_app.command("list")
def list_webhooks(ctx: typer.Context, project: ProjectOpt = None) -> None:
    """List the webhook policies (secrets and auth headers are never shown)."""
    _emit(lambda c: c.call("GET", _base(project)), ctx)


@webhook_app.command("create")
def create(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="A name, unique in its scope.")],
    url: Annotated[str, typer.Argument(help="The target URL (https unless allowed).")],
    event: Annotated[list[str], typer.Option("--event", "-e", help="An event type (repeatable).")],
    project: ProjectOpt = None,
    payload_format: Annotated[
        str,
        typer.Option(
            "--format", help="cloudevents, cloudevents-binary, harbor, distribution or slack."
        ),
    ] = "cloudevents",
    auth_header: Annotated[
        str | None,
        typer.Option(
            "--auth-header",
            envvar="MOORAGE_WEBHOOK_AUTH_HEADER",
            help="'Name: value' or an Authorization value (stored sealed).",
        ),
    ] = None,
    disabled: Annotated[bool, typer.Option("--disabled", help="Create it disabled.")] = False,
) -> None:
    """Create a policy; prints it with its signing secret (shown once)."""
    body = {
        "name": name,
        "url": url,
        "events": event,
        "payload_format": payload_format,
        "auth_header": auth_header,
        "enabled": not disabled,
    }
    _emit(lambda c: c.call("POST", _base(project), body), ctx)


@webhook_app.command("test")
def ping_webhook(ctx: typer.Context, hook: HookId, project: ProjectOpt = None) -> None:
    """Send a signed ``ping`` now and print the target's answer (exit 1 unless 2xx)."""
    answer: dict[str, Any] = {}

    def ping(c: Connection) -> Any:
        answer.update(c.call("POST", f"{_base(project)}/{hook}/ping"))
        return answer

    _emit(ping, ctx)
    if not answer.get("delivered"):
        raise typer.Exit(1)


@webhook_app.command("deliveries")
def deliveries(
    ctx: typer.Context,
    hook: HookId,
    project: ProjectOpt = None,
    status: Annotated[
        str | None, typer.Option(help="Only pending, delivered or failed ones.")
    ] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000)] = 50,
    last: Annotated[
        str | None, typer.Option(help="Page: the previous page's `next` (older deliveries).")
    ] = None,
) -> None:
    """The delivery log, newest first: attempts, status codes, latency, next retry."""
    params: dict[str, Any] = {"limit": limit}
    if status:
        params["status"] = status
    if last is not None:
        params["last"] = last
    _emit(lambda c: c.call("GET", f"{_base(project)}/{hook}/deliveries", **params), ctx)


@webhook_app.command("redeliver")
def redeliver(
    ctx: typer.Context,
    hook: HookId,
    project: ProjectOpt = None,
    event_id: Annotated[int | None, typer.Option("--event", help="One event id.")] = None,
    since: Annotated[
        datetime | None, typer.Option(help="Every event from this time (ISO 8601).")
    ] = None,
    until: Annotated[datetime | None, typer.Option(help="... up to this time.")] = None,
) -> None:
    """Deliver one event, or every event of a time range, again (same webhook-id)."""
    body = {
        "event_id": event_id,
        "since": since.isoformat() if since else None,
        "until": until.isoformat() if until else None,
    }
    _emit(lambda c: c.call("POST", f"{_base(project)}/{hook}/redeliver", body), ctx)
