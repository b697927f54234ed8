"""``moorage vulndb``: load and inspect the offline vulnerability data (OSV exports).

Runs against the metadata database directly (after migrating it), so an air-gapped
site can load the exports it carried in without the API or the worker running.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

import typer

from adapters.config_file import load_settings

vulndb_app = typer.Typer(help="Offline vulnerability data (OSV).", no_args_is_help=True)


@vulndb_app.command("import")
def vulndb_import(
    ecosystem: Annotated[
        list[str] | None,
        typer.Option("--ecosystem", "-e", help="Only this ecosystem (repeatable)."),
    ] = None,
    source: Annotated[
        str | None,
        typer.Option(help="Location for the one --ecosystem given (directory, zip or URL)."),
    ] = None,
    full: Annotated[bool, typer.Option(help="Re-read the whole export.")] = False,
) -> None:
    """Import OSV exports: incremental through modified_id.csv unless --full."""
    from adapters.osv_files import OsvFiles  # noqa: PLC0415 - loaded by the command that needs it
    from core.outbound import OutboundPolicy  # noqa: PLC0415
    from core.vulndb.importer import ImportFailedError, ImportLimits, OsvImporter  # noqa: PLC0415
    from storage.db.engine import create_engines  # noqa: PLC0415
    from storage.db.migrate import upgrade  # noqa: PLC0415
    from storage.db.vulndb import SqlVulnDb  # noqa: PLC0415

    settings = load_settings()
    config = settings.scan.vulndb
    sources = dict(config.sources)
    if source is not None:
        if not ecosystem or len(ecosystem) != 1:
            raise typer.BadParameter("--source needs exactly one --ecosystem")
        sources = {ecosystem[0]: source}
    elif ecosystem:
        missing = [e for e in ecosystem if e not in sources]
        if missing:
            raise typer.BadParameter(f"no source configured for {', '.join(missing)}")
        sources = {e: sources[e] for e in ecosystem}
    if not sources:
        raise typer.BadParameter("no sources: configure scan.vulndb.sources or pass --source")
    upgrade(settings)
    engines = create_engines(settings)
    policy = OutboundPolicy.of(settings.outbound.allow, allow_http=settings.outbound.allow_http)
    importer = OsvImporter(
        SqlVulnDb(engines),
        OsvFiles(policy, config.max_download_bytes),
        lambda: datetime.now(UTC),
        ImportLimits(config.max_record_bytes, config.max_records),
    )
    failed = False
    try:
        for name, location in sorted(sources.items()):
            try:
                result = importer.run(name, location, full=full)
            except ImportFailedError as exc:
                typer.echo(f"{name}: failed: {exc}", err=True)
                failed = True
                continue
            mode = "incremental" if result.incremental else "full"
            typer.echo(
                f"{name}: {mode} import, {result.read} read, {result.saved} saved, "
                f"{result.unchanged} unchanged, {result.withdrawn} withdrawn, "
                f"{result.removed} removed, {result.invalid} invalid"
            )
    finally:
        engines.dispose()
    if failed:
        raise typer.Exit(1)


@vulndb_app.command("status")
def vulndb_status() -> None:
    """Records per ecosystem and when each was last imported."""
    from storage.db.engine import create_engines  # noqa: PLC0415
    from storage.db.migrate import upgrade  # noqa: PLC0415
    from storage.db.vulndb import SqlVulnDb  # noqa: PLC0415

    settings = load_settings()
    upgrade(settings)
    engines = create_engines(settings)
    try:
        sources = SqlVulnDb(engines).sources()
    finally:
        engines.dispose()
    typer.echo(f"{'ECOSYSTEM':<16} {'RECORDS':>9}  {'NEWEST RECORD':<25} {'IMPORTED':<25}")
    for state in sources:
        newest = state.newest_modified.isoformat() if state.newest_modified else "-"
        imported = state.imported_at.isoformat() if state.imported_at else "-"
        typer.echo(f"{state.ecosystem:<16} {state.records:>9}  {newest:<25} {imported:<25}")
