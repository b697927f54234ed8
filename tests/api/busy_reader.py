"""Every connection of SQLite's event loop reader held, so its reads must decline."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager

from core.ports import ReadWouldWait
from storage.db.nowait import NowaitReader

#: More than the event loop reader's pool could ever hold.
_MAX_HELD = 16


@contextmanager
def busy(reader: NowaitReader) -> Iterator[None]:
    """Check out every pooled connection of ``reader`` until the block ends."""
    held: list[sqlite3.Connection] = []
    try:
        for _ in range(_MAX_HELD):
            try:
                held.append(reader.checkout())
            except ReadWouldWait:
                break
        assert held
        assert len(held) < _MAX_HELD
        yield
    finally:
        for connection in held:
            reader.checkin(connection)
