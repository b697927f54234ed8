"""``moorage audit ...``, ``moorage keys ...`` and ``moorage login``."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated

import typer

from adapters.config_file import load_settings
from core.settings import Settings

audit_app = typer.Typer(help="The audit log: verify its hash chain, purge old events.")
keys_app = typer.Typer(help="Token-signing keys.")


def _audit_store(settings: Settings):  # type: ignore[no-untyped-def]  # noqa: ANN202
    from storage.db.audit import SqlAuditStore  # noqa: PLC0415
    from storage.db.engine import create_engines  # noqa: PLC0415

    return SqlAuditStore(create_engines(settings))


@audit_app.command("verify")
def audit_verify() -> None:
    """Recompute the audit hash chain; exit 1 if any event was edited or deleted."""
    report = _audit_store(load_settings()).verify()
    if report.ok:
        typer.echo(f"audit log intact: {report.checked} events verified")
        return
    typer.echo(
        f"audit log TAMPERED: {report.problem} (after {report.checked} good events)", err=True
    )
    raise typer.Exit(1)


@audit_app.command("purge")
def audit_purge(
    older_than_days: Annotated[int, typer.Option(min=0, help="Delete events older than this.")],
) -> None:
    """Delete old events, leaving an anchor so the rest of the chain still verifies."""
    cutoff = datetime.now(UTC) - timedelta(days=older_than_days)
    removed = _audit_store(load_settings()).purge(cutoff)
    typer.echo(f"purged {removed} events older than {cutoff.isoformat()}")


@keys_app.command("rotate")
def keys_rotate() -> None:
    """Add a new signing key and retire the keys no unexpired token can carry.

    The new key is published at once and signs new tokens 90 s later, when every API
    process has loaded it; an old key goes only after all tokens it signed have expired.
    """
    from datetime import UTC, datetime  # noqa: PLC0415

    from core.key_rotation import KeyRotation, retire_grace  # noqa: PLC0415
    from core.services.auth import ensure_signing_key  # noqa: PLC0415
    from storage.db.engine import create_engines  # noqa: PLC0415
    from storage.db.metadata import SqlMetadata  # noqa: PLC0415
    from storage.db.signing_keys import SqlSigningKeyStore  # noqa: PLC0415

    settings = load_settings()
    engines = create_engines(settings)
    metadata = SqlMetadata(engines)
    ensure_signing_key(metadata)
    rotation = KeyRotation(SqlSigningKeyStore(metadata))
    now = datetime.now(UTC)
    kid, _ = rotation.rotate(now)
    retired = rotation.retire(now, retire_grace(settings.auth.token_ttl_seconds))
    typer.echo(f"new signing key {kid}; retired {len(retired)}")


def login(
    registry: Annotated[str, typer.Argument(help="Registry base URL, e.g. http://127.0.0.1:5000")],
    issuer: Annotated[str, typer.Option(help="OIDC issuer URL (the Keycloak realm).")],
    client_id: Annotated[str, typer.Option(help="The CLI's public client.")] = "moorage-cli",
    config: Annotated[Path, typer.Option(help="Where to store the token.")] = Path(
        "~/.config/moorage/credentials.json"
    ),
) -> None:
    """Log in with the device authorization grant; store a personal access token."""
    from cli.device_login import device_login  # noqa: PLC0415

    result = device_login(registry, issuer, client_id, show=typer.echo)
    path = config.expanduser()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({registry: result}, indent=2) + "\n", encoding="utf-8")
    path.chmod(0o600)
    typer.echo(f"logged in to {registry} as {result['username']}; token stored in {path}")
