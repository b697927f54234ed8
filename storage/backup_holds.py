"""GC holds of running backups, as rows of ``backup_hold`` (see ``core.backup_ports``)."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import Table, delete, exists, select
from sqlalchemy.dialects import postgresql, sqlite

from core.ports import Clock
from storage.db.backup_tables import BackupHold
from storage.db.engine import Engines

HOLD: Table = BackupHold.__table__  # type: ignore[attr-defined]


class SqlBackupHolds:
    """:class:`core.backup_ports.BackupHolds` on the metadata database.

    A hold is committed before the backup's snapshot begins, and GC asks :meth:`held`
    in the transaction that would delete an object, so a snapshot never references an
    object GC deleted after it (a tombstone is committed before GC deletes its object).
    """

    def __init__(self, engines: Engines, clock: Clock) -> None:
        self._engines = engines
        self._clock = clock

    def take(self, hold_id: str, seconds: int) -> None:
        now = self._clock.now()
        until = now + timedelta(seconds=seconds)
        with self._engines.writing() as c, c.begin():
            dialect = postgresql if c.dialect.name == "postgresql" else sqlite
            statement = dialect.insert(HOLD).values(id=hold_id, created_at=now, expires_at=until)
            c.execute(
                statement.on_conflict_do_update(
                    index_elements=[HOLD.c.id], set_={"expires_at": until}
                )
            )

    def release(self, hold_id: str) -> None:
        with self._engines.writing() as c, c.begin():
            c.execute(delete(HOLD).where(HOLD.c.id == hold_id))

    def held(self) -> bool:
        query = select(exists().where(HOLD.c.expires_at > self._clock.now()))
        with self._engines.read.connect() as c, c.begin():
            return bool(c.execute(query).scalar())
