"""The settings ``moorage dev`` forces: everything local, under one data directory."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import typer
from pydantic import SecretStr

from cli.password import ensure_admin_password

if TYPE_CHECKING:
    from pathlib import Path

    from core.settings import Settings


def dev_overrides(data_dir: Path, temporal_port: int | None, ui_port: int | None) -> dict[str, Any]:
    """Settings that ``moorage dev`` forces: everything local, under ``data_dir``."""
    data_dir = data_dir.resolve()
    temporal: dict[str, Any] = {}
    if temporal_port is not None:
        temporal["dev_port"] = temporal_port
    if ui_port is not None:
        temporal["dev_ui_port"] = ui_port
    return {
        "data_dir": data_dir,
        "database_url": f"sqlite:///{data_dir / 'moorage.db'}",
        "storage": "filesystem",
        "blob_root": data_dir / "blobs",
        "auth": {"create_project_on_push": True},
        "temporal": temporal,
    }


def with_dev_temporal_address(settings: Settings) -> Settings:
    """Point the Temporal client at the embedded dev server."""
    temporal = settings.temporal.model_copy(
        update={"address": f"127.0.0.1:{settings.temporal.dev_port}"}
    )
    return settings.model_copy(update={"temporal": temporal})


def with_admin_password(settings: Settings) -> Settings:
    """Use the configured admin password, or the one generated once under the data dir."""
    if settings.auth.admin_password is not None:
        return settings
    stored = ensure_admin_password(settings.data_dir)
    if stored.created:
        typer.echo(f"Admin password (shown once, kept in {stored.path}): {stored.value}")
    else:
        typer.echo(f"Admin password: see {stored.path}")
    auth = settings.auth.model_copy(update={"admin_password": SecretStr(stored.value)})
    return settings.model_copy(update={"auth": auth})
