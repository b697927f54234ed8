"""Local accounts (table ``user``): the login credentials and the management view."""

from __future__ import annotations

from typing import Any

from sqlalchemy import bindparam, delete, select, update

from core.identity_records import PROFILE_FIELDS, LocalUser, UserProfile
from core.records import UserRecord
from storage.db.identity_tables import PersonalToken, ProjectMember
from storage.db.repos.base import RecordMap, SqlRepository, now, table_of
from storage.db.tables import User

USER = table_of(User)
_MEMBER, _TOKEN = table_of(ProjectMember), table_of(PersonalToken)

_Q_USER = select(
    USER.c.id, USER.c.username, USER.c.password_hash, USER.c.is_admin, USER.c.disabled
).where(USER.c.username == bindparam("username"))
_USER_RECORD = RecordMap(UserRecord, _Q_USER)
_Q_REPLACE_PASSWORD_HASH = (
    update(USER)
    .where(
        USER.c.username == bindparam("rehash_user"), USER.c.password_hash == bindparam("old_hash")
    )
    .values(password_hash=bindparam("new_hash"))
)
_Q_LOCAL_USERS = select(
    USER.c.username, USER.c.is_admin, USER.c.disabled, USER.c.email, USER.c.full_name
)
_LOCAL_USER = RecordMap(LocalUser, _Q_LOCAL_USERS)


def _profile(profile: UserProfile | None) -> dict[str, str | None]:
    """The profile columns to write (only the known ones)."""
    return {key: value for key, value in (profile or {}).items() if key in PROFILE_FIELDS}


class SqlUsers(SqlRepository):
    """See ``core.ports.UserRepository``."""

    __slots__ = ()

    def get(self, username: str) -> UserRecord | None:
        row = self._c.execute(_Q_USER, {"username": username}).first()
        return _USER_RECORD(row) if row else None

    def upsert(self, username: str, password_hash: str, is_admin: bool) -> None:
        statement: Any = self._insert(USER).values(
            username=username,
            password_hash=password_hash,
            is_admin=is_admin,
            disabled=False,
            created_at=now(),
        )
        statement = statement.on_conflict_do_update(
            index_elements=[USER.c.username],
            set_={"password_hash": password_hash, "is_admin": is_admin},
        )
        self._c.execute(statement)

    def replace_password_hash(self, username: str, old_hash: str, new_hash: str) -> bool:
        params = {"rehash_user": username, "old_hash": old_hash, "new_hash": new_hash}
        return bool(self._c.execute(_Q_REPLACE_PASSWORD_HASH, params).rowcount)

    def local(self, username: str) -> LocalUser | None:
        row = self._c.execute(_Q_LOCAL_USERS.where(USER.c.username == username)).first()
        return None if row is None else _LOCAL_USER(row)

    def page(self, last: str | None, limit: int) -> list[LocalUser]:
        query = _Q_LOCAL_USERS.order_by(USER.c.username)
        if last is not None:
            query = query.where(USER.c.username > last)
        return [_LOCAL_USER(row) for row in self._c.execute(query.limit(limit))]

    def add(self, username: str, password_hash: str, profile: UserProfile | None = None) -> bool:
        values = {
            "username": username,
            "password_hash": password_hash,
            "is_admin": False,
            "disabled": False,
            "created_at": now(),
            **_profile(profile),
        }
        statement: Any = self._insert(USER).values(**values).on_conflict_do_nothing()
        return bool(self._c.execute(statement).rowcount)

    def update(
        self,
        username: str,
        *,
        password_hash: str | None = None,
        disabled: bool | None = None,
        profile: UserProfile | None = None,
    ) -> bool:
        given = {"password_hash": password_hash, "disabled": disabled}
        changes = {
            **{name: value for name, value in given.items() if value is not None},
            **_profile(profile),
        }
        if not changes:
            return self.local(username) is not None
        query = update(USER).where(USER.c.username == username).values(**changes)
        return bool(self._c.execute(query).rowcount)

    def delete(self, username: str) -> bool:
        self._c.execute(delete(_MEMBER).where(_MEMBER.c.kind == "user", _MEMBER.c.name == username))
        self._c.execute(
            delete(_TOKEN).where(_TOKEN.c.owner == username, _TOKEN.c.owner_kind == "local")
        )
        return bool(self._c.execute(delete(USER).where(USER.c.username == username)).rowcount)
