"""Settings of backups (``Settings.backup``): where they go, their key, their schedule."""

from __future__ import annotations

from pydantic import BaseModel, Field, SecretStr


class BackupS3Settings(BaseModel):
    """An S3 bucket holding backups; unset fields take the installation's ``s3`` values."""

    bucket: str
    key_prefix: str = ""
    endpoint_url: str | None = None
    region: str | None = None
    access_key_id: str | None = None
    secret_access_key: SecretStr | None = None


class BackupSettings(BaseModel):
    """Where backups are written and how.

    Exactly one location: ``path`` (a directory) or ``s3`` (a bucket, copied to
    server-side from the installation's bucket when both are on one S3 service and the
    backup is not encrypted). ``encryption_key`` (base64 of 32 bytes) turns on AES-256-GCM
    for the snapshot and every blob; restoring needs the same key.
    """

    path: str | None = None
    s3: BackupS3Settings | None = None
    encryption_key: SecretStr | None = None
    #: Seconds between scheduled whole-installation backups (0: no schedule).
    every_seconds: int = Field(default=0, ge=0)
    #: Backups a scheduled run keeps (older ones are pruned after it).
    keep_last: int = Field(default=7, ge=1)
    #: How long a running backup holds GC's object deletions (renewed while it copies).
    hold_seconds: int = Field(default=3600, ge=60)
