"""The SQL implementation of ``core.identity_ports.IdentityStore``.

Each method runs in its own transaction on the writer (writes) or reader (reads)
engine; unique-name collisions are resolved by ``ON CONFLICT DO NOTHING``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Table, delete, select, tuple_, update
from sqlalchemy.dialects import postgresql, sqlite

from core.identity_records import (
    PROFILE_FIELDS,
    LocalUser,
    MemberRecord,
    PersonalTokenRecord,
    RepositoryPermission,
    RobotRecord,
    TrustedIssuerRecord,
    UserProfile,
)
from storage.db.engine import Engines
from storage.db.identity_tables import (
    OidcLogin,
    PersonalToken,
    ProjectMember,
    Robot,
    TrustedIssuer,
)
from storage.db.tables import Project, Repository, User


def _t(model: Any) -> Table:
    table: Table = model.__table__
    return table


MEMBER, ROBOT, TOKEN, ISSUER, LOGIN = (
    _t(ProjectMember),
    _t(Robot),
    _t(PersonalToken),
    _t(TrustedIssuer),
    _t(OidcLogin),
)
PROJECT, REPOSITORY, USER = _t(Project), _t(Repository), _t(User)


def _given(**values: Any) -> dict[str, Any]:
    """The values that were given (not ``None``): the columns an update changes."""
    return {name: value for name, value in values.items() if value is not None}


_USER_COLUMNS = (
    USER.c.username,
    USER.c.is_admin,
    USER.c.disabled,
    USER.c.email,
    USER.c.full_name,
)


def _profile(profile: UserProfile | None) -> dict[str, str | None]:
    """The profile columns to write (only the known ones)."""
    return {key: value for key, value in (profile or {}).items() if key in PROFILE_FIELDS}


def _now() -> datetime:
    return datetime.now().astimezone()


def dump_permissions(permissions: tuple[RepositoryPermission, ...]) -> str:
    return json.dumps([p.as_dict() for p in permissions])


def load_permissions(text: str) -> tuple[RepositoryPermission, ...]:
    return tuple(
        RepositoryPermission(str(p["repository"]), frozenset(map(str, p["actions"])))
        for p in json.loads(text)
    )


def _robot(row: Any) -> RobotRecord:
    values = row._asdict()
    values["permissions"] = load_permissions(values["permissions"])
    return RobotRecord(**values)


def _token(row: Any) -> PersonalTokenRecord:
    values = row._asdict()
    values["scopes"] = frozenset(json.loads(values["scopes"]))
    return PersonalTokenRecord(**values)


def _issuer(row: Any) -> TrustedIssuerRecord:
    values = row._asdict()
    values["permissions"] = load_permissions(values["permissions"])
    return TrustedIssuerRecord(**values)


class SqlIdentityStore:
    """Users, members, robots, personal tokens, trusted issuers and pending logins."""

    def __init__(self, engines: Engines) -> None:
        self._engines = engines

    @contextmanager
    def _read(self) -> Iterator[Connection]:
        with self._engines.read.connect() as connection, connection.begin():
            yield connection

    def _update(self, query: Any, changes: dict[str, Any]) -> bool:
        """Apply ``changes`` to the rows ``query`` selects; whether any row matched."""
        with self._write() as c:
            return bool(c.execute(query.values(**changes)).rowcount)

    @contextmanager
    def _write(self) -> Iterator[Connection]:
        with self._engines.writing() as connection, connection.begin():
            yield connection

    def _insert_ignore(self, c: Connection, table: Table, **values: Any) -> bool:
        dialect = postgresql if c.dialect.name == "postgresql" else sqlite
        statement: Any = dialect.insert(table).values(**values).on_conflict_do_nothing()
        return bool(c.execute(statement).rowcount)

    # local users
    def users(self, last: str | None, limit: int) -> list[LocalUser]:
        query = select(*_USER_COLUMNS).order_by(USER.c.username)
        if last is not None:
            query = query.where(USER.c.username > last)
        with self._read() as c:
            return [LocalUser(*row) for row in c.execute(query.limit(limit))]

    def user(self, username: str) -> LocalUser | None:
        query = select(*_USER_COLUMNS).where(USER.c.username == username)
        with self._read() as c:
            row = c.execute(query).first()
        return None if row is None else LocalUser(*row)

    def add_user(
        self, username: str, password_hash: str, profile: UserProfile | None = None
    ) -> bool:
        with self._write() as c:
            return self._insert_ignore(
                c,
                USER,
                username=username,
                password_hash=password_hash,
                is_admin=False,
                disabled=False,
                created_at=_now(),
                **_profile(profile),
            )

    def update_user(
        self,
        username: str,
        *,
        password_hash: str | None = None,
        disabled: bool | None = None,
        profile: UserProfile | None = None,
    ) -> bool:
        changes = {**_given(password_hash=password_hash, disabled=disabled), **_profile(profile)}
        if not changes:
            return self.user(username) is not None
        return self._update(update(USER).where(USER.c.username == username), changes)

    def delete_user(self, username: str) -> bool:
        with self._write() as c:
            c.execute(delete(MEMBER).where(MEMBER.c.kind == "user", MEMBER.c.name == username))
            c.execute(delete(TOKEN).where(TOKEN.c.owner == username, TOKEN.c.owner_kind == "local"))
            return bool(c.execute(delete(USER).where(USER.c.username == username)).rowcount)

    # projects
    def set_project_public(self, name: str, public: bool) -> bool:
        with self._write() as c:
            query = update(PROJECT).where(PROJECT.c.name == name).values(public=public)
            return bool(c.execute(query).rowcount)

    # members
    def members(self, project_id: int) -> list[MemberRecord]:
        columns = (MEMBER.c.id, MEMBER.c.project_id, MEMBER.c.kind, MEMBER.c.name, MEMBER.c.role)
        query = select(*columns).where(MEMBER.c.project_id == project_id).order_by(MEMBER.c.id)
        with self._read() as c:
            return [MemberRecord(*row) for row in c.execute(query)]

    def member(self, project_id: int, member_id: int) -> MemberRecord | None:
        return next((m for m in self.members(project_id) if m.id == member_id), None)

    def add_member(self, project_id: int, kind: str, name: str, role: str) -> MemberRecord | None:
        with self._write() as c:
            added = self._insert_ignore(
                c,
                MEMBER,
                project_id=project_id,
                kind=kind,
                name=name,
                role=role,
                created_at=_now(),
            )
        if not added:
            return None
        found = [m for m in self.members(project_id) if (m.kind, m.name) == (kind, name)]
        return found[0] if found else None

    def update_member(self, project_id: int, member_id: int, role: str) -> bool:
        with self._write() as c:
            query = update(MEMBER).where(
                MEMBER.c.project_id == project_id, MEMBER.c.id == member_id
            )
            return bool(c.execute(query.values(role=role)).rowcount)

    def delete_member(self, project_id: int, member_id: int) -> bool:
        with self._write() as c:
            query = delete(MEMBER).where(
                MEMBER.c.project_id == project_id, MEMBER.c.id == member_id
            )
            return bool(c.execute(query).rowcount)

    def roles(self, project_id: int, entries: list[tuple[str, str]]) -> set[str]:
        if not entries:
            return set()
        query = select(MEMBER.c.role).where(
            MEMBER.c.project_id == project_id,
            tuple_(MEMBER.c.kind, MEMBER.c.name).in_(entries),
        )
        with self._read() as c:
            return set(c.execute(query).scalars())

    def project_ids(self, names: list[str]) -> set[int]:
        if not names:
            return set()
        with self._read() as c:
            return set(c.execute(select(PROJECT.c.id).where(PROJECT.c.name.in_(names))).scalars())

    def repository_names(
        self, project_ids: set[int] | None, last: str | None, limit: int
    ) -> list[str]:
        query = select(REPOSITORY.c.name).order_by(REPOSITORY.c.name)
        if project_ids is not None:
            query = query.where(REPOSITORY.c.project_id.in_(sorted(project_ids)))
        if last is not None:
            query = query.where(REPOSITORY.c.name > last)
        with self._read() as c:
            return list(c.execute(query.limit(limit)).scalars())

    # robots
    def add_robot(
        self,
        name: str,
        project_id: int | None,
        secret_hash: str,
        permissions: tuple[RepositoryPermission, ...],
        expires_at: datetime | None,
        creator: str,
    ) -> RobotRecord | None:
        with self._write() as c:
            added = self._insert_ignore(
                c,
                ROBOT,
                name=name,
                project_id=project_id,
                secret_hash=secret_hash,
                permissions=dump_permissions(permissions),
                expires_at=expires_at,
                disabled=False,
                creator=creator,
                created_at=_now(),
            )
        return self.robot_by_name(name) if added else None

    def robot_by_name(self, name: str) -> RobotRecord | None:
        with self._read() as c:
            row = c.execute(select(ROBOT).where(ROBOT.c.name == name)).first()
        return _robot(row) if row else None

    def robot(self, robot_id: int) -> RobotRecord | None:
        with self._read() as c:
            row = c.execute(select(ROBOT).where(ROBOT.c.id == robot_id)).first()
        return _robot(row) if row else None

    def robots(self, project_id: int | None) -> list[RobotRecord]:
        where = (
            ROBOT.c.project_id.is_(None) if project_id is None else ROBOT.c.project_id == project_id
        )
        with self._read() as c:
            return [
                _robot(row) for row in c.execute(select(ROBOT).where(where).order_by(ROBOT.c.id))
            ]

    def update_robot(
        self,
        robot_id: int,
        *,
        secret_hash: str | None = None,
        disabled: bool | None = None,
        expires_at: datetime | None = None,
    ) -> bool:
        changes = _given(secret_hash=secret_hash, disabled=disabled, expires_at=expires_at)
        return self._update(update(ROBOT).where(ROBOT.c.id == robot_id), changes)

    def delete_robot(self, robot_id: int) -> bool:
        with self._write() as c:
            robot = c.execute(select(ROBOT.c.name).where(ROBOT.c.id == robot_id)).scalar()
            if robot is None:
                return False
            c.execute(delete(MEMBER).where(MEMBER.c.kind == "robot", MEMBER.c.name == robot))
            return bool(c.execute(delete(ROBOT).where(ROBOT.c.id == robot_id)).rowcount)

    # personal access tokens
    def add_token(
        self,
        key: str,
        owner: str,
        owner_kind: str,
        name: str,
        secret_hash: str,
        scopes: frozenset[str],
        expires_at: datetime | None,
    ) -> PersonalTokenRecord | None:
        with self._write() as c:
            added = self._insert_ignore(
                c,
                TOKEN,
                key=key,
                owner=owner,
                owner_kind=owner_kind,
                name=name,
                secret_hash=secret_hash,
                scopes=json.dumps(sorted(scopes)),
                expires_at=expires_at,
                revoked=False,
                created_at=_now(),
            )
        return self.token_by_key(key) if added else None

    def token_by_key(self, key: str) -> PersonalTokenRecord | None:
        with self._read() as c:
            row = c.execute(select(TOKEN).where(TOKEN.c.key == key)).first()
        return _token(row) if row else None

    def tokens(self, owner: str) -> list[PersonalTokenRecord]:
        query = select(TOKEN).where(TOKEN.c.owner == owner).order_by(TOKEN.c.id)
        with self._read() as c:
            return [_token(row) for row in c.execute(query)]

    def revoke_token(self, owner: str, token_id: int) -> bool:
        with self._write() as c:
            query = update(TOKEN).where(TOKEN.c.owner == owner, TOKEN.c.id == token_id)
            return bool(c.execute(query.values(revoked=True)).rowcount)

    # trusted issuers
    def add_issuer(
        self,
        issuer: str,
        jwks_url: str | None,
        discovery_url: str | None,
        audience: str,
        subject_claim: str,
        subject_pattern: str,
        permissions: tuple[RepositoryPermission, ...],
    ) -> TrustedIssuerRecord | None:
        with self._write() as c:
            added = self._insert_ignore(
                c,
                ISSUER,
                issuer=issuer,
                jwks_url=jwks_url,
                discovery_url=discovery_url,
                audience=audience,
                subject_claim=subject_claim,
                subject_pattern=subject_pattern,
                permissions=dump_permissions(permissions),
                created_at=_now(),
            )
        return self.issuer_by_iss(issuer) if added else None

    def issuers(self) -> list[TrustedIssuerRecord]:
        with self._read() as c:
            return [_issuer(row) for row in c.execute(select(ISSUER).order_by(ISSUER.c.id))]

    def issuer_by_iss(self, issuer: str) -> TrustedIssuerRecord | None:
        with self._read() as c:
            row = c.execute(select(ISSUER).where(ISSUER.c.issuer == issuer)).first()
        return _issuer(row) if row else None

    def delete_issuer(self, issuer_id: int) -> bool:
        with self._write() as c:
            return bool(c.execute(delete(ISSUER).where(ISSUER.c.id == issuer_id)).rowcount)

    # browser logins in progress
    def add_login(self, state: str, verifier: str, nonce: str) -> None:
        with self._write() as c:
            self._insert_ignore(
                c, LOGIN, state=state, verifier=verifier, nonce=nonce, created_at=_now()
            )

    def take_login(self, state: str, not_before: datetime) -> tuple[str, str] | None:
        with self._write() as c:
            c.execute(delete(LOGIN).where(LOGIN.c.created_at < not_before))
            row = c.execute(select(LOGIN).where(LOGIN.c.state == state)).first()
            if row is None:
                return None
            c.execute(delete(LOGIN).where(LOGIN.c.state == state))
            return str(row.verifier), str(row.nonce)
