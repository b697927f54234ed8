"""``moorage keys rotate`` and ``moorage audit verify|purge`` on a prepared SQLite installation.

The commands take the metadata, the signing-key store, the audit store and the clock from
a composition root of their own (``cli.composition``), built from the environment.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

import pytest
from pydantic import SecretStr
from typer.testing import CliRunner

from cli.composition import compose
from cli.main import app
from cli.startup import prepare_installation
from core.services.auth import load_signing_keys
from core.settings import AuthSettings, Settings

runner = CliRunner()


@pytest.fixture
def settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    for name in [name for name in os.environ if name.startswith("MOORAGE_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("MOORAGE_DATA_DIR", str(tmp_path))
    password = secrets.token_urlsafe(12)
    monkeypatch.setenv("MOORAGE_AUTH__ADMIN_PASSWORD", password)
    settings = Settings(data_dir=tmp_path, auth=AuthSettings(admin_password=SecretStr(password)))
    prepare_installation(settings)
    return settings


def _kids(settings: Settings) -> list[str]:
    root = compose(settings)
    try:
        return [key.kid for key in load_signing_keys(root.metadata)]
    finally:
        root.close()


def test_keys_rotate_adds_a_key_to_the_installation(settings: Settings) -> None:
    before = _kids(settings)
    result = runner.invoke(app, ["keys", "rotate"])
    assert result.exit_code == 0, result.output
    after = _kids(settings)
    assert len(after) == len(before) + 1
    (added,) = set(after) - set(before)
    assert f"new signing key {added}" in result.output


def test_audit_verify_and_purge_run_on_the_installation(settings: Settings) -> None:
    verified = runner.invoke(app, ["audit", "verify"])
    assert verified.exit_code == 0, verified.output
    assert "audit log intact" in verified.output
    purged = runner.invoke(app, ["audit", "purge", "--older-than-days", "1"])
    assert purged.exit_code == 0, purged.output
    assert "purged 0 events" in purged.output
