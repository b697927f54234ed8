"""The SQL implementation of ``core.key_rotation.SigningKeyStore`` (table ``signing_key``)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from sqlalchemy import Table, delete, select
from sqlalchemy.dialects import postgresql, sqlite

from core.key_rotation import StoredKey
from storage.db.engine import Engines
from storage.db.tables import SigningKey

_TABLE: Table = SigningKey.__table__  # type: ignore[attr-defined]


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


class SqlSigningKeyStore:
    def __init__(self, engines: Engines) -> None:
        self._engines = engines

    def stored_keys(self) -> list[StoredKey]:
        query = select(_TABLE.c.kid, _TABLE.c.created_at).order_by(_TABLE.c.created_at)
        with self._engines.read.connect() as c:
            return [StoredKey(row.kid, _aware(row.created_at)) for row in c.execute(query)]

    def add_key(self, kid: str, private_pem: str) -> bool:
        with self._engines.writing() as c, c.begin():
            dialect = postgresql if c.dialect.name == "postgresql" else sqlite
            statement = dialect.insert(_TABLE).values(
                kid=kid, private_pem=private_pem, created_at=datetime.now(UTC)
            )
            result = c.execute(statement.on_conflict_do_nothing(index_elements=[_TABLE.c.kid]))
            return bool(result.rowcount)

    def remove_keys(self, kids: Sequence[str]) -> int:
        with self._engines.writing() as c, c.begin():
            return int(c.execute(delete(_TABLE).where(_TABLE.c.kid.in_(list(kids)))).rowcount)
