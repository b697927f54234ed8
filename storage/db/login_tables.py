"""The table behind failed-login throttling (``core.login_limit``)."""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Field, SQLModel


class LoginAttempt(SQLModel, table=True):
    """Failures of one key (SHA-256 of username and client address, or of a username)."""

    __tablename__ = "login_attempt"
    key: str = Field(primary_key=True, max_length=64)
    failures: int
    window_start: datetime = Field(index=True)
    locked_until: datetime | None = None
