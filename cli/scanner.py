"""``moorage scanner``: scanner registrations (system administrators).

``list``, ``add`` (the access credential is read from ``--access-credential`` or
``MOORAGE_SCANNER_CREDENTIAL`` and never shown again), ``remove``, ``default`` (make one
the system default), ``ping`` (ask the adapter's metadata now; exits 1 when it does not
answer) and ``use`` (select the scanner of a project's scans, ``--default`` for the
system default). Each command prints the API's JSON answer on stdout; a failed call
prints the problem details on stderr and exits 1.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Annotated, Any

import typer

from cli.api_client import ApiError, Connection
from cli.control import connection_options

scanner_app = typer.Typer(
    help="Scanner registrations: external scanners of the Pluggable Scanner API.",
    no_args_is_help=True,
)
scanner_app.callback()(connection_options)

_SCANNERS = "/api/v1/scanners"
NameArg = Annotated[str, typer.Argument(help="The registration's name.")]


def _emit(action: Callable[[Connection], Any], ctx: typer.Context) -> Any:
    try:
        result = action(ctx.obj)
    except ApiError as exc:
        typer.echo(json.dumps(exc.problem, sort_keys=True), err=True)
        raise typer.Exit(1) from exc
    typer.echo(json.dumps(result, sort_keys=True))
    return result


@scanner_app.command("list")
def list_scanners(ctx: typer.Context) -> None:
    """List the registrations (credentials are never shown)."""
    _emit(lambda c: c.call("GET", _SCANNERS, limit=1000), ctx)


@scanner_app.command("add")
def add_scanner(
    ctx: typer.Context,
    name: NameArg,
    url: Annotated[str, typer.Argument(help="The adapter's base URL (before /api/v1).")],
    auth: Annotated[
        str, typer.Option(help="none, Basic, Bearer or X-ScannerAdapter-API-Key.")
    ] = "none",
    access_credential: Annotated[
        str | None,
        typer.Option(
            envvar="MOORAGE_SCANNER_CREDENTIAL",
            help="username:password, token or API key (stored sealed).",
        ),
    ] = None,
    description: Annotated[str, typer.Option(help="A description.")] = "",
    skip_cert_verify: Annotated[
        bool, typer.Option("--skip-cert-verify", help="Do not verify its TLS certificate.")
    ] = False,
    disabled: Annotated[bool, typer.Option("--disabled", help="Add it disabled.")] = False,
    default: Annotated[bool, typer.Option("--default", help="Make it the default.")] = False,
) -> None:
    """Register a scanner."""
    body = {
        "name": name,
        "url": url,
        "description": description,
        "auth": auth,
        "access_credential": access_credential,
        "skip_cert_verify": skip_cert_verify,
        "disabled": disabled,
        "is_default": default,
    }
    _emit(lambda c: c.call("POST", _SCANNERS, body), ctx)


@scanner_app.command("remove")
def remove_scanner(ctx: typer.Context, name: NameArg) -> None:
    """Remove a registration no project selects."""
    _emit(lambda c: c.call("DELETE", f"{_SCANNERS}/{name}"), ctx)


@scanner_app.command("default")
def default_scanner(ctx: typer.Context, name: NameArg) -> None:
    """Make a registration the system default."""
    _emit(lambda c: c.call("POST", f"{_SCANNERS}/{name}/default"), ctx)


@scanner_app.command("ping")
def ping_scanner(ctx: typer.Context, name: NameArg) -> None:
    """Ask the adapter's metadata now (exits 1 when it does not answer as a scanner)."""
    _emit(lambda c: c.call("POST", f"{_SCANNERS}/{name}/ping"), ctx)


@scanner_app.command("use")
def use_scanner(
    ctx: typer.Context,
    project: Annotated[str, typer.Argument(help="The project.")],
    name: Annotated[str | None, typer.Argument(help="The registration's name.")] = None,
    default: Annotated[
        bool, typer.Option("--default", help="Use the system default (clears a selection).")
    ] = False,
) -> None:
    """Select the scanner of a project's scans."""
    if (name is None) != default:
        typer.echo("give a scanner's name or --default", err=True)
        raise typer.Exit(2)
    path = f"/api/v1/projects/{project}/scanner"
    _emit(lambda c: c.call("PUT", path, {"scanner": name}), ctx)
