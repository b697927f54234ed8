"""Failures because the registry's own storage is full, answered as 507 instead of 500.

A write that finds no space left (the filesystem blob store or upload area: ``ENOSPC`` or
``EDQUOT``; SQLite: ``SQLITE_FULL``; PostgreSQL: SQLSTATE ``53100`` disk full) is not a bug
of the request and not a dependency that will answer again by itself: an operator has to
free space (``docs/runbooks/disk-full.md``). Such a request gets ``507 Insufficient
Storage`` with a message that says so (the OCI error body on ``/v2`` with code
``UNKNOWN``, a problem on ``/api/v1``). Nothing stored before is touched: the failed
request's own transaction is rolled back, and an upload keeps the offset it had committed,
so the client can resume it once space is free.
"""

from __future__ import annotations

import errno
import sqlite3
from typing import Final

from core.errors import OCIErrorCode, RegistryError

#: HTTP's status for "the server cannot store what the request needs" (RFC 4918, 11.5).
INSUFFICIENT_STORAGE: Final = 507
MESSAGE: Final = "the registry's storage is full; no space left to store this request"

_FULL_ERRNOS: Final = frozenset({errno.ENOSPC, errno.EDQUOT})
_SQLITE_FULL: Final = 13
_PG_DISK_FULL: Final = "53100"


def is_storage_full(exc: BaseException) -> bool:
    """Whether ``exc`` (or the driver error it wraps) says the storage has no space left."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, OSError) and current.errno in _FULL_ERRNOS:
            return True
        if isinstance(current, sqlite3.Error) and _sqlite_full(current):
            return True
        if getattr(current, "sqlstate", None) == _PG_DISK_FULL:
            return True
        wrapped = getattr(current, "orig", None)
        current = wrapped if isinstance(wrapped, BaseException) else current.__cause__
    return False


def _sqlite_full(exc: sqlite3.Error) -> bool:
    code = getattr(exc, "sqlite_errorcode", None)
    if isinstance(code, int):
        return code & 0xFF == _SQLITE_FULL
    return "database or disk is full" in str(exc)


def storage_full_error() -> RegistryError:
    """The OCI error a request gets when the registry's storage is full."""
    return RegistryError(OCIErrorCode.UNKNOWN, MESSAGE, status=INSUFFICIENT_STORAGE)
