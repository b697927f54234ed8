"""The installation's token signing keys (table ``signing_key``): the one adapter of it."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from sqlalchemy import delete, select

from core.key_rotation import StoredKey
from storage.db.repos.base import SqlRepository, insert_ignore, table_of
from storage.db.tables import SigningKey

SIGNING_KEY = table_of(SigningKey)
_INSERT_IGNORE = insert_ignore(SIGNING_KEY)
_Q_KEYS = select(SIGNING_KEY.c.kid, SIGNING_KEY.c.private_pem, SIGNING_KEY.c.created_at).order_by(
    SIGNING_KEY.c.created_at, SIGNING_KEY.c.kid
)


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


class SqlSigningKeys(SqlRepository):
    """See ``core.ports.SigningKeyRepository``."""

    __slots__ = ()

    def all(self) -> list[tuple[str, str, datetime]]:
        return [(row.kid, row.private_pem, row.created_at) for row in self._c.execute(_Q_KEYS)]

    def stored(self) -> list[StoredKey]:
        return [StoredKey(row.kid, _aware(row.created_at)) for row in self._c.execute(_Q_KEYS)]

    def add(self, kid: str, private_pem: str) -> bool:
        values = {"kid": kid, "private_pem": private_pem, "created_at": datetime.now(UTC)}
        return bool(self._c.execute(_INSERT_IGNORE[self._dialect], values).rowcount)

    def remove(self, kids: Sequence[str]) -> int:
        query = delete(SIGNING_KEY).where(SIGNING_KEY.c.kid.in_(list(kids)))
        return int(self._c.execute(query).rowcount)
