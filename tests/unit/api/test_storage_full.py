"""Which failures mean "the registry's storage is full" (answered 507, not 500 or 503)."""

from __future__ import annotations

import errno
import sqlite3

import pytest
from sqlalchemy.exc import OperationalError

from api.storage_full import INSUFFICIENT_STORAGE, is_storage_full, storage_full_error
from core.errors import OCIErrorCode


def _sqlite_full() -> sqlite3.OperationalError:
    error = sqlite3.OperationalError("database or disk is full")
    error.sqlite_errorcode = 13  # type: ignore[attr-defined]
    return error


class _PgDiskFullError(Exception):
    sqlstate = "53100"


@pytest.mark.parametrize(
    "exc",
    [
        OSError(errno.ENOSPC, "No space left on device"),
        OSError(errno.EDQUOT, "Disk quota exceeded"),
        _sqlite_full(),
        OperationalError("INSERT", {}, _sqlite_full()),
        OperationalError("INSERT", {}, _PgDiskFullError()),
    ],
    ids=["enospc", "edquot", "sqlite", "sqlalchemy-sqlite", "sqlalchemy-postgres"],
)
def test_full_storage_is_recognised(exc: Exception) -> None:
    assert is_storage_full(exc)


def test_a_cause_chain_is_followed() -> None:
    outer = RuntimeError("write failed")
    outer.__cause__ = OSError(errno.ENOSPC, "No space left on device")
    assert is_storage_full(outer)


@pytest.mark.parametrize(
    "exc",
    [
        OSError(errno.EIO, "Input/output error"),
        sqlite3.OperationalError("database is locked"),
        OperationalError("SELECT", {}, sqlite3.OperationalError("database is locked")),
        ValueError("no space"),
    ],
    ids=["eio", "sqlite-locked", "sqlalchemy-locked", "other"],
)
def test_other_failures_are_not_full_storage(exc: Exception) -> None:
    assert not is_storage_full(exc)


def test_the_error_is_507_with_a_message_that_says_why() -> None:
    error = storage_full_error()
    assert error.status == INSUFFICIENT_STORAGE == 507
    assert error.code is OCIErrorCode.UNKNOWN
    assert "full" in error.message
