"""``moorage apply|plan|export``: the registry's administration as code.

The commands talk to a running registry through its management API (``cli.api_client``
says where and with which credentials), never to its database: every change goes
through the same services, rules, permission checks and audit trail as a change made by
hand, and is attributed to the caller. ``plan`` reads, compares and prints; ``apply``
does the same and then makes the changes, all or nothing (``cli.apply_execute``);
``export`` prints the registry's state as a file ``apply`` takes back without change.

Exit codes: 0 success (for ``plan --detailed-exitcode``: no changes), 1 an error (nothing
applied), 2 (``plan --detailed-exitcode`` only) changes pending.
"""

from __future__ import annotations

import json
import logging
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from cli.api_client import Connection
    from cli.apply_state import LiveState
    from core.ascode_plan import Change

# NOTE: the documents' models, the planner and the API client are imported by the commands
# that use them: ``moorage`` imports this module for every command, ``moorage api`` and
# ``moorage worker`` included, and these took most of the command's start-up.

Files = Annotated[
    list[Path],
    typer.Option("--file", "-f", help="A YAML or JSON file, a directory of them, or -."),
]
Prune = Annotated[
    bool, typer.Option("--prune", help="Delete (or reset) what the file does not name.")
]


class PlanFormat(StrEnum):
    TEXT = "text"
    JSON = "json"


class ExportFormat(StrEnum):
    YAML = "yaml"
    JSON = "json"


Output = Annotated[PlanFormat, typer.Option("--output", "-o", help="text or json.")]
Url = Annotated[str | None, typer.Option(envvar="MOORAGE_URL", help="Registry base URL.")]
Username = Annotated[str | None, typer.Option(envvar="MOORAGE_USERNAME")]
Password = Annotated[
    str | None, typer.Option(envvar="MOORAGE_PASSWORD", help="Password, token or secret.")
]
Token = Annotated[
    str | None, typer.Option(envvar="MOORAGE_TOKEN", help="Bearer token (OIDC, workload).")
]


def _connection(
    url: str | None, username: str | None, password: str | None, token: str | None
) -> Connection:
    from cli.api_client import connect  # noqa: PLC0415 - see the module's imports

    if logging.getLogger().getEffectiveLevel() > logging.DEBUG:
        logging.getLogger("httpx").setLevel(logging.WARNING)
    return connect(url, username, password, token)


def _fail(problem: dict[str, Any]) -> typer.Exit:
    typer.echo(json.dumps(problem, sort_keys=True), err=True)
    return typer.Exit(1)


def _prepare(
    connection: Connection, files: list[Path], prune: bool
) -> tuple[LiveState, list[Change]]:
    from cli.api_client import ApiError  # noqa: PLC0415 - see the module's imports
    from cli.apply_file import load_documents  # noqa: PLC0415
    from cli.apply_state import read_state  # noqa: PLC0415
    from core.ascode_plan import PlanError, make_plan  # noqa: PLC0415

    try:
        desired = load_documents(files)
        state = read_state(connection)
        return state, make_plan(desired, state.docs, prune=prune)
    except PlanError as exc:
        raise _fail({"title": "invalid configuration", "errors": exc.problems}) from exc
    except ApiError as exc:
        raise _fail(exc.problem) from exc


def _show(changes: list[Change], output: str, secrets: dict[str, str] | None = None) -> None:
    if output == "json":
        body: dict[str, Any] = {"changes": [c.as_dict() for c in changes]}
        if secrets is not None:
            body["secrets"] = secrets
        typer.echo(json.dumps(body, sort_keys=True))
        return
    for change in changes:
        typer.echo(change.describe())
    typer.echo(f"{len(changes)} change(s)" if changes else "no changes")
    for robot, secret in (secrets or {}).items():
        typer.echo(f"secret of {robot} (shown once): {secret}")


def plan(
    files: Files,
    prune: Prune = False,
    output: Output = PlanFormat.TEXT,
    detailed_exitcode: Annotated[
        bool, typer.Option("--detailed-exitcode", help="Exit 2 when there are changes.")
    ] = False,
    url: Url = None,
    username: Username = None,
    password: Password = None,
    token: Token = None,
) -> None:
    """Print what apply would change; change nothing."""
    _, changes = _prepare(_connection(url, username, password, token), files, prune)
    _show(changes, output)
    if detailed_exitcode and changes:
        raise typer.Exit(2)


def apply(
    files: Files,
    prune: Prune = False,
    output: Output = PlanFormat.TEXT,
    url: Url = None,
    username: Username = None,
    password: Password = None,
    token: Token = None,
) -> None:
    """Make the registry match the file(s), all or nothing; print the changes made."""
    from cli.apply_execute import ApplyError, Executor  # noqa: PLC0415 - see the module's imports

    connection = _connection(url, username, password, token)
    state, changes = _prepare(connection, files, prune)
    executor = Executor(connection, dict(state.ids))
    problems = executor.resolve_secrets(changes)
    if problems:
        raise _fail({"title": "invalid configuration", "errors": problems})
    try:
        executor.run(changes)
    except ApplyError as exc:
        raise _fail(
            {
                "title": "apply failed; the changes made before were undone",
                "change": exc.change.describe(),
                "document": exc.change.where,
                "problem": exc.problem,
                "undo_failures": exc.undo_failures,
            }
        ) from exc
    _show(changes, output, executor.secrets)


def export(
    output: Annotated[
        ExportFormat, typer.Option("--output", "-o", help="yaml or json.")
    ] = ExportFormat.YAML,
    url: Url = None,
    username: Username = None,
    password: Password = None,
    token: Token = None,
) -> None:
    """Print the registry's state as a configuration file (never a secret)."""
    import yaml  # noqa: PLC0415 - see the module's imports

    from cli.api_client import ApiError  # noqa: PLC0415
    from cli.apply_state import read_state  # noqa: PLC0415

    try:
        docs = read_state(_connection(url, username, password, token)).exported()
    except ApiError as exc:
        raise _fail(exc.problem) from exc
    if output == "json":
        typer.echo(json.dumps(docs, indent=2, sort_keys=True))
    else:
        typer.echo(yaml.safe_dump_all(docs, sort_keys=False), nl=False)
