"""The table of scanner registrations (``core.scanners``); credentials are stored sealed."""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Field, SQLModel


class ScannerRegistrationRow(SQLModel, table=True):
    """A registration (names unique; at most one ``is_default``, kept by the store)."""

    __tablename__ = "scanner_registration"
    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=63, unique=True)
    description: str = Field(default="", max_length=1024)
    url: str = Field(max_length=2048)
    auth: str = Field(max_length=32)
    #: ``core.sealing`` value of the access credential (never clear text).
    sealed_credential: str | None = Field(default=None, max_length=8192)
    skip_tls_verify: bool = False
    disabled: bool = False
    is_default: bool = False
    created_at: datetime
    updated_at: datetime
