"""``moorage scan run|status|report``: scan images and read the results from the shell.

``run`` starts a scan of one artifact (``--repository`` and ``--digest``), of a whole
project, or of everything (``--all``, system administrators); ``--wait`` follows it with
a progress line until no scan of the project is running. ``status`` prints a table of a
project's scans (counts per severity, fixable, status); ``report`` the findings of one
artifact (``--json``: Harbor's report document). A failed call prints the problem
details on stderr and exits 1.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from typing import Annotated, Any, Final

import typer

from cli.api_client import ApiError, Connection
from cli.control import connection_options

scan_app = typer.Typer(help="Vulnerability scans and their reports.", no_args_is_help=True)
scan_app.callback()(connection_options)

ProjectOpt = Annotated[str, typer.Option("--project", "-p", help="The project.")]
#: Seconds between two progress polls, and the longest ``--wait`` follows a run.
POLL_SECONDS: Final = 1.0
WAIT_BOUND: Final = 6 * 3600.0
_SEVERITIES: Final = ("Critical", "High", "Medium", "Low", "Negligible", "Unknown")


def _call(action: Callable[[], Any]) -> Any:
    try:
        return action()
    except ApiError as exc:
        typer.echo(json.dumps(exc.problem, sort_keys=True), err=True)
        raise typer.Exit(1) from exc


def table(headers: list[str], rows: list[list[str]]) -> str:
    """Rows under headers, each column as wide as its widest cell."""
    widths = [max(len(str(c)) for c in column) for column in zip(headers, *rows, strict=True)]
    lines = [headers, *rows]
    return "\n".join(
        "  ".join(str(cell).ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip()
        for line in lines
    )


def _reports(connection: Connection, project: str, **filters: Any) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    last = None
    for _ in range(10_000):
        page = connection.call("GET", f"/api/v1/projects/{project}/scans", last=last, **filters)
        items += page["items"]
        last = page["next"]
        if last is None:
            break
    return items


def _short(digest: str) -> str:
    return digest.split(":", 1)[-1][:12]


@scan_app.command("run")
def run(
    ctx: typer.Context,
    project: Annotated[str | None, typer.Option("--project", "-p", help="The project.")] = None,
    repository: Annotated[str | None, typer.Option(help="One artifact's repository.")] = None,
    digest: Annotated[str | None, typer.Option(help="One artifact's digest.")] = None,
    everything: Annotated[bool, typer.Option("--all", help="Every project.")] = False,
    wait: Annotated[bool, typer.Option(help="Follow the run until it is done.")] = False,
) -> None:
    """Start a scan; prints the run's workflow id (findable in the Temporal UI)."""
    connection: Connection = ctx.obj
    if everything:
        started = _call(lambda: connection.call("POST", "/api/v1/scans"))
    elif project is None:
        raise typer.BadParameter("give --project (with --repository and --digest) or --all")
    else:
        body = {"repository": repository, "digest": digest} if digest or repository else {}
        started = _call(lambda: connection.call("POST", f"/api/v1/projects/{project}/scans", body))
    typer.echo(f"started {started['workflow_id']}")
    if wait and project is not None:
        _follow(connection, project, digest)


def _follow(connection: Connection, project: str, digest: str | None) -> None:
    deadline = time.monotonic() + WAIT_BOUND
    time.sleep(POLL_SECONDS)
    while time.monotonic() < deadline:
        reports = _call(lambda: _reports(connection, project))
        if digest is not None:
            reports = [r for r in reports if r["digest"] == digest]
        running = sum(1 for r in reports if r["status"] == "running")
        done = len(reports) - running
        failed = sum(1 for r in reports if r["status"] == "failed")
        sys.stderr.write(f"\rscanned {done} of {len(reports)}, {failed} failed   ")
        sys.stderr.flush()
        if reports and not running:
            sys.stderr.write("\n")
            _print_status(reports)
            return
        time.sleep(POLL_SECONDS)
    typer.echo("\ngave up waiting (the scans go on)", err=True)
    raise typer.Exit(1)


def _print_status(reports: list[dict[str, Any]]) -> None:
    headers = [
        "REPOSITORY",
        "DIGEST",
        "STATUS",
        "CRIT",
        "HIGH",
        "MED",
        "LOW",
        "FIXABLE",
        "DATA AGE",
    ]
    rows = []
    for r in reports:
        counts = r["counts"]
        age = r["data_age_seconds"]
        rows.append(
            [
                r["repository"],
                _short(r["digest"]),
                r["status"],
                str(counts.get("Critical", 0)),
                str(counts.get("High", 0)),
                str(counts.get("Medium", 0)),
                str(counts.get("Low", 0)),
                str(r["fixable"]),
                "-" if age is None else f"{age // 3600}h",
            ]
        )
    typer.echo(table(headers, rows))


@scan_app.command("status")
def status(
    ctx: typer.Context,
    project: ProjectOpt,
    repository: Annotated[str | None, typer.Option(help="Only this repository.")] = None,
    severity: Annotated[
        str | None, typer.Option(help="Only scans with a finding at or above it.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the API's JSON.")] = False,
) -> None:
    """A table of the project's scans: status, counts per severity, fixable."""
    connection: Connection = ctx.obj
    reports = _call(lambda: _reports(connection, project, repository=repository, severity=severity))
    if as_json:
        typer.echo(json.dumps(reports, sort_keys=True))
        return
    _print_status(reports)


@scan_app.command("report")
def report(
    ctx: typer.Context,
    project: ProjectOpt,
    digest: Annotated[str, typer.Argument(help="The artifact's digest.")],
    as_json: Annotated[bool, typer.Option("--json", help="Harbor's report document.")] = False,
) -> None:
    """The findings of one artifact, worst first."""
    connection: Connection = ctx.obj
    path = f"/api/v1/projects/{project}/scans/{digest}"
    document = _call(lambda: connection.call("GET", f"{path}/report"))
    if as_json:
        typer.echo(json.dumps(document, sort_keys=True))
        return
    summary = _call(lambda: connection.call("GET", path))
    rank = {name: n for n, name in enumerate(_SEVERITIES)}
    rows = [
        [
            v["id"],
            ",".join(a for a in v["vendor_attributes"]["aliases"] if a.startswith("CVE-")),
            v["severity"],
            v["package"],
            v["version"],
            v["fix_version"] or "-",
            v["vendor_attributes"].get("platform") or "",
        ]
        for v in sorted(
            document["vulnerabilities"], key=lambda v: (rank.get(v["severity"], 9), v["id"])
        )
    ]
    counts = ", ".join(f"{summary['counts'][s]} {s}" for s in _SEVERITIES if summary["counts"][s])
    typer.echo(
        f"{summary['repository']}@{digest}: {summary['status']}, "
        f"{summary['total']} vulnerabilities ({counts or 'none'}), {summary['fixable']} fixable"
    )
    if rows:
        headers = ["ID", "CVE", "SEVERITY", "PACKAGE", "VERSION", "FIXED IN", "PLATFORM"]
        typer.echo(table(headers, rows))
