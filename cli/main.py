"""The ``moorage`` command.

Each command imports its process module when it runs, so ``--help`` stays fast and
one process does not load the others' dependencies.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from adapters.config_file import load_settings
from cli.apply import apply, export, plan
from cli.backup import backup_app
from cli.control import gc_app, immutability_app, quota_app, retention_app
from cli.dev_settings import dev_overrides
from cli.identity import audit_app, keys_app, login
from cli.listen import Listen
from cli.logs import configure_logging, quiet_native_grpc
from cli.preheat import preheat_app
from cli.promote import promote_app
from cli.replication import replication_app
from cli.scan import scan_app
from cli.scanner import scanner_app
from cli.trust import trust_app
from cli.vulndb import vulndb_app
from cli.webhook import webhook_app
from core.observability_settings import LogSettings
from core.version import moorage_version

app = typer.Typer(
    name="moorage",
    help="Moorage, an OCI container registry.",
    no_args_is_help=True,
    add_completion=False,
)

DEFAULT_LISTEN = Listen("127.0.0.1", 5000)
LOG_LEVEL_VARIABLE = "MOORAGE_OBSERVABILITY__LOGS__LEVEL"
#: One API worker per CPU plus one, at most 5: a worker waits on the GIL and the database
#: for part of each request, so one more than the CPUs measured best on 2 cores (3
#: workers: manifest GET +20%, PUT +10% over 2; see docs/performance.md).
DEFAULT_API_WORKERS = max(2, min((os.cpu_count() or 1) + 1, 5))


def _listen(value: str) -> Listen:
    try:
        return Listen.parse(value)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from exc


ListenOption = Annotated[
    Listen,
    typer.Option(
        "--listen", help="HOST:PORT to serve HTTP on.", parser=_listen, metavar="HOST:PORT"
    ),
]


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"moorage {moorage_version()}")
        raise typer.Exit


@app.callback()
def _configure(
    log_level: Annotated[
        str | None,
        typer.Option(help="Python logging level (default: observability.logs.level, INFO)."),
    ] = None,
    _version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_print_version, is_eager=True, help="Print the version."
        ),
    ] = False,
) -> None:
    if log_level is not None:
        # NOTE: through the environment, so server worker processes log at this level too.
        os.environ[LOG_LEVEL_VARIABLE] = log_level.upper()
    # NOTE: the server commands configure logging again from their settings.
    configure_logging(LogSettings(level=os.environ.get(LOG_LEVEL_VARIABLE, "INFO")), replace=False)


@app.command()
def api(
    listen: ListenOption = DEFAULT_LISTEN,
    workers: Annotated[
        int, typer.Option(min=1, help="Server worker processes (default: the CPU count).")
    ] = DEFAULT_API_WORKERS,
    server: Annotated[
        str, typer.Option(help="ASGI server: granian or uvicorn.", case_sensitive=False)
    ] = "granian",
) -> None:
    """Serve the registry's HTTP API (runs migrations first)."""
    quiet_native_grpc()
    from cli.api import SERVERS, run_api  # noqa: PLC0415 - loaded by the command that needs it

    if server.lower() not in SERVERS:
        raise typer.BadParameter(f"expected one of {', '.join(SERVERS)}", param_hint="--server")
    run_api(load_settings(), listen, workers, server.lower())


@app.command()
def worker() -> None:
    """Run the Temporal worker (workflows, activities and schedules)."""
    from cli.worker_process import run_worker_process  # noqa: PLC0415 - loaded by the command that needs it

    run_worker_process(load_settings())


@app.command()
def migrate() -> None:
    """Prepare the installation: schema upgrade, first signing key, master key, admin account.

    Everything runs under the migration lock, once; a deployment's migration job runs this
    before any API or worker starts (they would do the same, finding it done).
    """
    from cli.startup import prepare_installation  # noqa: PLC0415 - loaded by the command

    prepare_installation(load_settings())


@app.command()
def dev(
    data_dir: Annotated[Path, typer.Option(help="Where all state lives.")] = Path("moorage-data"),
    listen: ListenOption = DEFAULT_LISTEN,
    temporal_port: Annotated[
        int | None, typer.Option(help="Temporal dev server gRPC port.")
    ] = None,
    temporal_ui_port: Annotated[int | None, typer.Option(help="Temporal UI port.")] = None,
) -> None:
    """Run everything on this machine: Temporal dev server, worker and API."""
    from cli.dev import run_dev  # noqa: PLC0415 - loaded by the command that needs it

    settings = load_settings(**dev_overrides(data_dir, temporal_port, temporal_ui_port))
    run_dev(settings, listen)


app.add_typer(audit_app, name="audit")
app.add_typer(keys_app, name="keys")
app.add_typer(gc_app, name="gc")
app.add_typer(retention_app, name="retention")
app.add_typer(immutability_app, name="immutability")
app.add_typer(quota_app, name="quota")
app.add_typer(vulndb_app, name="vulndb")
app.add_typer(webhook_app, name="webhook")
app.add_typer(backup_app, name="backup")
app.add_typer(replication_app, name="replication")
app.add_typer(preheat_app, name="preheat")
app.add_typer(trust_app, name="trust")
app.add_typer(scan_app, name="scan")
app.add_typer(scanner_app, name="scanner")
app.add_typer(promote_app, name="promote")
app.command("login")(login)
app.command("apply")(apply)
app.command("plan")(plan)
app.command("export")(export)


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":
    main()
