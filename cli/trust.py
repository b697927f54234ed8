"""``moorage trust policy|verdict|results``: content trust from the shell.

``policy show|set|delete -p P`` reads, replaces (from a JSON file, ``-`` for stdin) or
removes a project's trust policy; ``verdict REPOSITORY REFERENCE`` says whether an image
meets it and which requirement fails; ``results REPOSITORY REFERENCE`` lists the image's
signatures and attestations with their verification results. Each command prints the
API's JSON answer on stdout; a failed call prints the problem details on stderr and exits 1.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

from cli.api_client import ApiError, Connection
from cli.control import connection_options

trust_app = typer.Typer(
    help="Content trust: policies, signatures and verdicts.", no_args_is_help=True
)
policy_app = typer.Typer(help="A project's trust policy.", no_args_is_help=True)
trust_app.add_typer(policy_app, name="policy")
trust_app.callback()(connection_options)

ProjectOpt = Annotated[str, typer.Option("--project", "-p", help="The project.")]
RepositoryArg = Annotated[str, typer.Argument(help="The repository (project/name).")]
ReferenceArg = Annotated[str, typer.Argument(help="A tag or a digest.")]


def _emit(action: Callable[[Connection], Any], ctx: typer.Context) -> None:
    try:
        result = action(ctx.obj)
    except ApiError as exc:
        typer.echo(json.dumps(exc.problem, sort_keys=True), err=True)
        raise typer.Exit(1) from exc
    typer.echo(json.dumps(result, sort_keys=True))


def _base(project: str) -> str:
    return f"/api/v1/projects/{project}/trust"


@policy_app.command("show")
def show_policy(ctx: typer.Context, project: ProjectOpt) -> None:
    """Print the project's trust policy (document and revision)."""
    _emit(lambda c: c.call("GET", f"{_base(project)}/policy"), ctx)


@policy_app.command("set")
def set_policy(
    ctx: typer.Context,
    project: ProjectOpt,
    document: Annotated[str, typer.Argument(help="A JSON policy file, '-' for stdin.")],
) -> None:
    """Replace the project's trust policy; its images are verified again."""
    text = sys.stdin.read() if document == "-" else Path(document).read_text(encoding="utf-8")
    try:
        body = json.loads(text)
    except ValueError as exc:
        raise typer.BadParameter(f"not JSON: {exc}", param_hint="DOCUMENT") from exc
    _emit(lambda c: c.call("PUT", f"{_base(project)}/policy", body), ctx)


@policy_app.command("delete")
def delete_policy(ctx: typer.Context, project: ProjectOpt) -> None:
    """Remove the project's trust policy (pulls are no longer gated)."""
    _emit(lambda c: c.call("DELETE", f"{_base(project)}/policy"), ctx)


@trust_app.command("verdict")
def verdict(ctx: typer.Context, repository: RepositoryArg, reference: ReferenceArg) -> None:
    """Whether the image meets its project's policy, and which requirement fails."""
    project = repository.partition("/")[0]
    params = {"repository": repository, "reference": reference}
    _emit(lambda c: c.call("GET", f"{_base(project)}/artifacts", **params), ctx)


@trust_app.command("results")
def results(
    ctx: typer.Context,
    repository: RepositoryArg,
    reference: ReferenceArg,
    kind: Annotated[
        str | None, typer.Option(help="Only 'signature' or 'attestation' results.")
    ] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000)] = 100,
    last: Annotated[str | None, typer.Option(help="Page: the previous page's `next`.")] = None,
) -> None:
    """The image's signatures and attestations, verified or refused with the reason."""
    project = repository.partition("/")[0]
    params: dict[str, Any] = {"repository": repository, "reference": reference, "limit": limit}
    if kind:
        params["kind"] = kind
    if last is not None:
        params["last"] = last
    _emit(lambda c: c.call("GET", f"{_base(project)}/artifacts/results", **params), ctx)
