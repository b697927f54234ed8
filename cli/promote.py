"""``moorage promote``: CI promotions from the shell (``/api/v1/promotions``).

``moorage promote SOURCE TARGET [--gate G]... [--wait]`` starts a promotion (the same
request twice is one promotion) and, with ``--wait``, polls until it ended: exit 0 when
promoted, 1 otherwise (refused by a gate, failed, or the wait ran out; the promotion's
JSON is printed either way). Gates: ``scan=<severity>``, ``signed``,
``builder=<builder id>``, ``approval`` or ``approval=<timeout seconds>``.
``moorage promote show ID``, ``approve ID`` and ``list [-p PROJECT]`` read, approve and
list promotions; ``keys PROJECT [--rotate]`` lists (after rotating) a project's signing
keys. Connection options as every API command (``MOORAGE_URL``,
``MOORAGE_USERNAME``/``MOORAGE_PASSWORD`` for a robot account).
"""

from __future__ import annotations

import json
import time
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from cli.api_client import ApiError, Connection
from cli.control import connection_options

#: Statuses a promotion ends in.
FINAL = frozenset({"promoted", "refused", "failed"})
_POLL_SECONDS = 1.0


class _DefaultStart(TyperGroup):
    """``moorage promote SRC TARGET`` means ``moorage promote start SRC TARGET``."""

    def resolve_command(self, ctx: Any, args: list[str]) -> Any:
        if args and args[0] not in self.commands and not args[0].startswith("-"):
            args = ["start", *args]
        return super().resolve_command(ctx, args)


promote_app = typer.Typer(
    cls=_DefaultStart,
    help="CI promotions: SOURCE to TARGET through gates (see `moorage promote start`).",
    no_args_is_help=True,
)
promote_app.callback()(connection_options)


def parse_gates(values: list[str]) -> dict[str, Any]:
    """The API's ``gates`` object from ``--gate`` values."""
    gates: dict[str, Any] = {}
    for value in values:
        name, eq, arg = value.partition("=")
        if name == "scan" and eq:
            gates["max_severity"] = arg
        elif name == "signed" and not eq:
            gates["signed"] = True
        elif name == "builder" and arg:
            gates["builder"] = arg
        elif name == "wait" and arg.isdigit():
            gates["wait_seconds"] = int(arg)
        elif name == "approval":
            gates["approval"] = True
            if eq:
                if not arg.isdigit():
                    raise typer.BadParameter("approval=<seconds>", param_hint="--gate")
                gates["approval_timeout_seconds"] = int(arg)
        else:
            raise typer.BadParameter(
                f"unknown gate {value!r} (scan=SEVERITY, signed, builder=ID, approval[=SECONDS], "
                "wait=SECONDS)",
                param_hint="--gate",
            )
    return gates


def _fail(exc: ApiError) -> typer.Exit:
    typer.echo(json.dumps(exc.problem, sort_keys=True), err=True)
    return typer.Exit(1)


def _wait(connection: Connection, promotion_id: str, timeout: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        state: dict[str, Any] = connection.call("GET", f"/api/v1/promotions/{promotion_id}")
        if state["status"] in FINAL or time.monotonic() >= deadline:
            return state
        time.sleep(_POLL_SECONDS)


@promote_app.command("start")
def start(
    ctx: typer.Context,
    source: Annotated[str, typer.Argument(help="project/repo:tag or project/repo@digest")],
    target: Annotated[str, typer.Argument(help="project/repo:tag")],
    gate: Annotated[
        list[str] | None,
        typer.Option(
            "--gate",
            "-g",
            help="scan=SEVERITY, signed, builder=ID, approval[=SECONDS]; wait=SECONDS: how "
            "long failing gates are evaluated again before a refusal",
        ),
    ] = None,
    sign: Annotated[
        bool, typer.Option("--sign", help="Sign the promoted image with the target's key.")
    ] = False,
    wait: Annotated[bool, typer.Option("--wait", help="Wait until the promotion ended.")] = False,
    timeout: Annotated[float, typer.Option(min=1, help="Seconds --wait waits at most.")] = 3600,
) -> None:
    """Promote SOURCE to TARGET once the gates pass."""
    body = {"source": source, "target": target, "gates": parse_gates(gate or []), "sign": sign}
    try:
        state: dict[str, Any] = ctx.obj.call("POST", "/api/v1/promotions", body)
        if wait:
            state = _wait(ctx.obj, state["id"], timeout)
    except ApiError as exc:
        raise _fail(exc) from exc
    typer.echo(json.dumps(state, sort_keys=True))
    if wait and state["status"] != "promoted":
        raise typer.Exit(1)


@promote_app.command("show")
def show(ctx: typer.Context, promotion_id: Annotated[str, typer.Argument(metavar="ID")]) -> None:
    """A promotion's gates, status and what it copied."""
    try:
        state = ctx.obj.call("GET", f"/api/v1/promotions/{promotion_id}")
    except ApiError as exc:
        raise _fail(exc) from exc
    typer.echo(json.dumps(state, sort_keys=True))


@promote_app.command("approve")
def approve(ctx: typer.Context, promotion_id: Annotated[str, typer.Argument(metavar="ID")]) -> None:
    """Approve a promotion that waits for manual approval."""
    try:
        state = ctx.obj.call("POST", f"/api/v1/promotions/{promotion_id}/approve")
    except ApiError as exc:
        raise _fail(exc) from exc
    typer.echo(json.dumps(state, sort_keys=True))


@promote_app.command("list")
def list_promotions(
    ctx: typer.Context,
    project: Annotated[
        str | None, typer.Option("--project", "-p", help="Only promotions into it.")
    ] = None,
) -> None:
    """Promotions (id, run state, target repository, digest), newest first."""
    try:
        found = ctx.obj.call("GET", "/api/v1/promotions", project=project)
    except ApiError as exc:
        raise _fail(exc) from exc
    typer.echo(json.dumps(found, sort_keys=True))


@promote_app.command("keys")
def signing_keys(
    ctx: typer.Context,
    project: Annotated[str, typer.Argument(help="The project whose signing keys to list.")],
    rotate: Annotated[
        bool, typer.Option("--rotate", help="Make a new active key first (project admins).")
    ] = False,
) -> None:
    """A project's signing keys (public PEM, fingerprint, active or retired), oldest first."""
    base = f"/api/v1/projects/{project}/signing-keys"
    try:
        if rotate:
            ctx.obj.call("POST", f"{base}/rotate")
        found = ctx.obj.call("GET", base, limit=100)
    except ApiError as exc:
        raise _fail(exc) from exc
    typer.echo(json.dumps(found, sort_keys=True))
