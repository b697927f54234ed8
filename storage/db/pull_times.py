"""SQL of manifest pull times (``core.pulls.PullTimeStore``)."""

from __future__ import annotations

from datetime import datetime
from typing import Final

from sqlalchemy import bindparam, or_, update
from sqlalchemy.exc import OperationalError

from core.pulls import WriteContentionError
from storage.db.engine import Engines
from storage.db.repos.base import table_of
from storage.db.tables import Manifest

_MANIFEST = table_of(Manifest)

#: Longest wait of a pull-time write for each lock it needs.
LOCK_WAIT_SECONDS: Final = 1.0

_RECORD_PULL = (
    update(_MANIFEST)
    .where(
        _MANIFEST.c.id == bindparam("manifest_id"),
        or_(_MANIFEST.c.pulled_at.is_(None), _MANIFEST.c.pulled_at <= bindparam("stale_before")),
    )
    .values(pulled_at=bindparam("now"))
)


class SqlPullTimes:
    """Pull-time writes on the writer engine, each in its own brief transaction.

    The ``UPDATE`` re-tests the stored time under the row's write lock, so racing
    writers (threads or processes) change a row at most once per granularity.
    """

    def __init__(self, engines: Engines, lock_wait_seconds: float = LOCK_WAIT_SECONDS) -> None:
        self._engines = engines
        self._wait = lock_wait_seconds

    def record_pull(self, manifest_id: int, now: datetime, stale_before: datetime) -> bool:
        params = {"manifest_id": manifest_id, "now": now, "stale_before": stale_before}
        try:
            with self._engines.writing_briefly(self._wait) as connection:
                return bool(connection.execute(_RECORD_PULL, params).rowcount)
        except (TimeoutError, OperationalError) as error:
            raise WriteContentionError(str(error).splitlines()[0]) from error
