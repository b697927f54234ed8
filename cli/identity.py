"""``moorage audit ...``, ``moorage keys ...`` and ``moorage login``."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from adapters.config_file import load_settings

if TYPE_CHECKING:
    from cli.composition import Composition
    from core.settings import Settings

audit_app = typer.Typer(help="The audit log: verify its hash chain, purge old events.")
keys_app = typer.Typer(help="Token-signing keys.")


def _compose(settings: Settings) -> Composition:
    from cli.composition import compose  # noqa: PLC0415 - the storage stack only when run

    return compose(settings)


@audit_app.command("verify")
def audit_verify() -> None:
    """Recompute the audit hash chain; exit 1 if any event was edited or deleted."""
    root = _compose(load_settings())
    try:
        report = root.audit_store.verify()
    finally:
        root.close()
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
    root = _compose(load_settings())
    try:
        cutoff = root.clock.now() - timedelta(days=older_than_days)
        removed = root.audit_store.purge(cutoff)
    finally:
        root.close()
    typer.echo(f"purged {removed} events older than {cutoff.isoformat()}")


@keys_app.command("rotate")
def keys_rotate(
    revoke: Annotated[
        bool,
        typer.Option(
            "--revoke",
            help="Delete every older key now (a leaked key): tokens they signed are refused.",
        ),
    ] = False,
) -> None:
    """Add a new signing key and retire the keys no unexpired token can carry.

    The new key is published at once and signs new tokens 90 s later, when every API
    process has loaded it; an old key goes only after all tokens it signed have expired.
    With ``--revoke`` every older key goes at once and the new key signs at once: every
    token issued before is refused by an API process once it has reloaded its keys
    (restart the API processes to make that immediate).
    """
    from core.key_rotation import retire_grace  # noqa: PLC0415
    from core.services.auth import ensure_signing_key  # noqa: PLC0415

    settings = load_settings()
    root = _compose(settings)
    try:
        ensure_signing_key(root.metadata)
        now = root.clock.now()
        kid, _ = root.key_rotation.rotate(now)
        if revoke:
            retired = root.key_rotation.revoke_all_but(kid)
        else:
            retired = root.key_rotation.retire(now, retire_grace(settings.auth.token_ttl_seconds))
    finally:
        root.close()
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
