"""How a Moorage process reaches a Temporal cluster securely (``TemporalSettings.tls``)."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, model_validator


class TemporalTlsSettings(BaseModel):
    """TLS to the Temporal frontend, and mutual TLS with a client certificate.

    TLS is on when ``enabled`` is set or any file is named. Without ``server_ca_file`` the
    server certificate is checked against the system's trusted roots (Temporal Cloud).
    ``client_cert_file`` and ``client_key_file`` (PEM) go together: with them the
    process authenticates by certificate (mTLS).
    """

    model_config = ConfigDict(extra="forbid")

    enabled: bool = False
    server_ca_file: Path | None = None
    client_cert_file: Path | None = None
    client_key_file: Path | None = None
    #: The name the server certificate must carry, when it is not the address's host.
    server_name: str | None = None

    @model_validator(mode="after")
    def _pair(self) -> TemporalTlsSettings:
        if (self.client_cert_file is None) != (self.client_key_file is None):
            raise ValueError("temporal.tls: client_cert_file and client_key_file go together")
        return self

    @property
    def active(self) -> bool:
        """Whether connections use TLS."""
        return self.enabled or any(
            path is not None
            for path in (self.server_ca_file, self.client_cert_file, self.client_key_file)
        )
