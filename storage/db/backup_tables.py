"""The table of GC holds taken by running backups (``core.backup_ports.BackupHolds``)."""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Field, SQLModel


class BackupHold(SQLModel, table=True):
    """A backup in progress: GC deletes no blob object until ``expires_at``."""

    __tablename__ = "backup_hold"
    id: str = Field(primary_key=True, max_length=64)
    created_at: datetime
    expires_at: datetime = Field(index=True)
