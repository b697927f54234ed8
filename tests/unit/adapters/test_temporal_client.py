"""The Temporal client options built from settings: TLS files, API key, namespace."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import SecretStr, ValidationError

from adapters.temporal_client import connect_options, tls_config
from core.settings import TemporalSettings
from core.temporal_settings import TemporalTlsSettings


def test_plain_by_default() -> None:
    options = connect_options(TemporalSettings(namespace="prod"))
    assert options["namespace"] == "prod"
    assert options["tls"] is None
    assert "api_key" not in options


def test_api_key_is_sent_and_tls_left_to_the_sdk_default(tmp_path: Path) -> None:
    del tmp_path
    options = connect_options(TemporalSettings(api_key=SecretStr("k-123")))
    assert options["api_key"] == "k-123"
    assert options["tls"] is None  # NOTE: the SDK turns TLS on for API keys


def test_tls_files_are_read(tmp_path: Path) -> None:
    ca, cert, key = (tmp_path / name for name in ("ca.pem", "c.pem", "c.key"))
    ca.write_bytes(b"CA")
    cert.write_bytes(b"CERT")
    key.write_bytes(b"KEY")
    tls = TemporalTlsSettings(
        server_ca_file=ca, client_cert_file=cert, client_key_file=key, server_name="t.example"
    )
    config = tls_config(TemporalSettings(tls=tls))
    assert config is not None
    assert config.server_root_ca_cert == b"CA"
    assert config.client_cert == b"CERT"
    assert config.client_private_key == b"KEY"
    assert config.domain == "t.example"


def test_enabled_tls_without_files_uses_system_roots() -> None:
    config = tls_config(TemporalSettings(tls=TemporalTlsSettings(enabled=True)))
    assert config is not None
    assert config.server_root_ca_cert is None


def test_certificate_and_key_go_together(tmp_path: Path) -> None:
    with pytest.raises(ValidationError):
        TemporalTlsSettings(client_cert_file=tmp_path / "c.pem")


def test_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    from core.settings import Settings

    monkeypatch.setenv("MOORAGE_TEMPORAL__TLS__SERVER_NAME", "temporal.internal")
    monkeypatch.setenv("MOORAGE_TEMPORAL__API_KEY", "secret")
    settings = Settings()
    assert settings.temporal.tls.server_name == "temporal.internal"
    assert settings.temporal.tls.active is False
    assert settings.temporal.api_key is not None
