"""The table of registry endpoints (``core.endpoints``); secrets are stored sealed."""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Field, SQLModel


class RegistryEndpoint(SQLModel, table=True):
    __tablename__ = "registry_endpoint"
    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=63, unique=True)
    url: str = Field(max_length=2048)
    type: str = Field(max_length=32)
    credential: str = Field(max_length=16)
    username: str = Field(default="", max_length=255)
    #: ``core.sealing`` value of the password, robot secret or token (never clear text).
    sealed_secret: str | None = None
    ca_bundle: str | None = None
    insecure: bool = False
    #: JSON list of token realm hosts allowed besides the endpoint's own host.
    realm_hosts: str = "[]"
    created_at: datetime
    updated_at: datetime
