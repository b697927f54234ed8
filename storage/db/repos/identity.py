"""Access control: project members, robots, personal tokens, issuers, browser logins.

Tables ``project_member``, ``robot``, ``personal_token``, ``trusted_issuer`` and
``oidc_login``.

Unique-name collisions are resolved by ``ON CONFLICT DO NOTHING``: an insert that
collides returns ``None`` (or ``False``) instead of raising.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from sqlalchemy import Table, delete, select, tuple_, update

from core.identity_records import (
    MemberRecord,
    PersonalTokenRecord,
    RepositoryPermission,
    RobotRecord,
    TrustedIssuerRecord,
)
from storage.db.identity_tables import (
    OidcLogin,
    PersonalToken,
    ProjectMember,
    Robot,
    TrustedIssuer,
)
from storage.db.repos.base import RecordMap, SqlRepository, now, table_of

MEMBER, ROBOT, TOKEN = table_of(ProjectMember), table_of(Robot), table_of(PersonalToken)
ISSUER, LOGIN = table_of(TrustedIssuer), table_of(OidcLogin)

_Q_MEMBERS = select(MEMBER.c.id, MEMBER.c.project_id, MEMBER.c.kind, MEMBER.c.name, MEMBER.c.role)
_MEMBER = RecordMap(MemberRecord, _Q_MEMBERS)


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


def _given(**values: Any) -> dict[str, Any]:
    """The values that were given (not ``None``): the columns an update changes."""
    return {name: value for name, value in values.items() if value is not None}


class _IdentityRepository(SqlRepository):
    __slots__ = ()

    def _insert_ignore(self, table: Table, **values: Any) -> bool:
        statement = self._insert(table).values(**values).on_conflict_do_nothing()
        return bool(self._c.execute(statement).rowcount)


class SqlMembers(_IdentityRepository):
    """See ``core.identity_ports.MemberRepository``."""

    __slots__ = ()

    def of_project(self, project_id: int) -> list[MemberRecord]:
        query = _Q_MEMBERS.where(MEMBER.c.project_id == project_id).order_by(MEMBER.c.id)
        return [_MEMBER(row) for row in self._c.execute(query)]

    def get(self, project_id: int, member_id: int) -> MemberRecord | None:
        query = _Q_MEMBERS.where(MEMBER.c.project_id == project_id, MEMBER.c.id == member_id)
        row = self._c.execute(query).first()
        return None if row is None else _MEMBER(row)

    def add(self, project_id: int, kind: str, name: str, role: str) -> MemberRecord | None:
        added = self._insert_ignore(
            MEMBER, project_id=project_id, kind=kind, name=name, role=role, created_at=now()
        )
        if not added:
            return None
        query = _Q_MEMBERS.where(
            MEMBER.c.project_id == project_id, MEMBER.c.kind == kind, MEMBER.c.name == name
        )
        row = self._c.execute(query).first()
        return None if row is None else _MEMBER(row)

    def update(self, project_id: int, member_id: int, role: str) -> bool:
        query = update(MEMBER).where(MEMBER.c.project_id == project_id, MEMBER.c.id == member_id)
        return bool(self._c.execute(query.values(role=role)).rowcount)

    def delete(self, project_id: int, member_id: int) -> bool:
        query = delete(MEMBER).where(MEMBER.c.project_id == project_id, MEMBER.c.id == member_id)
        return bool(self._c.execute(query).rowcount)

    def roles(self, project_id: int, entries: list[tuple[str, str]]) -> set[str]:
        if not entries:
            return set()
        query = select(MEMBER.c.role).where(
            MEMBER.c.project_id == project_id,
            tuple_(MEMBER.c.kind, MEMBER.c.name).in_(entries),
        )
        return set(self._c.execute(query).scalars())


class SqlRobots(_IdentityRepository):
    """See ``core.identity_ports.RobotRepository``."""

    __slots__ = ()

    def add(
        self,
        name: str,
        project_id: int | None,
        secret_hash: str,
        permissions: tuple[RepositoryPermission, ...],
        expires_at: datetime | None,
        creator: str,
    ) -> RobotRecord | None:
        added = self._insert_ignore(
            ROBOT,
            name=name,
            project_id=project_id,
            secret_hash=secret_hash,
            permissions=dump_permissions(permissions),
            expires_at=expires_at,
            disabled=False,
            creator=creator,
            created_at=now(),
        )
        return self.by_name(name) if added else None

    def by_name(self, name: str) -> RobotRecord | None:
        row = self._c.execute(select(ROBOT).where(ROBOT.c.name == name)).first()
        return _robot(row) if row else None

    def get(self, robot_id: int) -> RobotRecord | None:
        row = self._c.execute(select(ROBOT).where(ROBOT.c.id == robot_id)).first()
        return _robot(row) if row else None

    def of_project(self, project_id: int | None) -> list[RobotRecord]:
        where = (
            ROBOT.c.project_id.is_(None) if project_id is None else ROBOT.c.project_id == project_id
        )
        query = select(ROBOT).where(where).order_by(ROBOT.c.id)
        return [_robot(row) for row in self._c.execute(query)]

    def update(
        self,
        robot_id: int,
        *,
        secret_hash: str | None = None,
        disabled: bool | None = None,
        expires_at: datetime | None = None,
    ) -> bool:
        changes = _given(secret_hash=secret_hash, disabled=disabled, expires_at=expires_at)
        query = update(ROBOT).where(ROBOT.c.id == robot_id).values(**changes)
        return bool(self._c.execute(query).rowcount)

    def delete(self, robot_id: int) -> bool:
        robot = self._c.execute(select(ROBOT.c.name).where(ROBOT.c.id == robot_id)).scalar()
        if robot is None:
            return False
        self._c.execute(delete(MEMBER).where(MEMBER.c.kind == "robot", MEMBER.c.name == robot))
        return bool(self._c.execute(delete(ROBOT).where(ROBOT.c.id == robot_id)).rowcount)


class SqlTokens(_IdentityRepository):
    """See ``core.identity_ports.TokenRepository``."""

    __slots__ = ()

    def add(
        self,
        key: str,
        owner: str,
        owner_kind: str,
        name: str,
        secret_hash: str,
        scopes: frozenset[str],
        expires_at: datetime | None,
    ) -> PersonalTokenRecord | None:
        added = self._insert_ignore(
            TOKEN,
            key=key,
            owner=owner,
            owner_kind=owner_kind,
            name=name,
            secret_hash=secret_hash,
            scopes=json.dumps(sorted(scopes)),
            expires_at=expires_at,
            revoked=False,
            created_at=now(),
        )
        return self.by_key(key) if added else None

    def by_key(self, key: str) -> PersonalTokenRecord | None:
        row = self._c.execute(select(TOKEN).where(TOKEN.c.key == key)).first()
        return _token(row) if row else None

    def of_owner(self, owner: str) -> list[PersonalTokenRecord]:
        query = select(TOKEN).where(TOKEN.c.owner == owner).order_by(TOKEN.c.id)
        return [_token(row) for row in self._c.execute(query)]

    def revoke(self, owner: str, token_id: int) -> bool:
        query = update(TOKEN).where(TOKEN.c.owner == owner, TOKEN.c.id == token_id)
        return bool(self._c.execute(query.values(revoked=True)).rowcount)


class SqlIssuers(_IdentityRepository):
    """See ``core.identity_ports.IssuerRepository``."""

    __slots__ = ()

    def add(
        self,
        issuer: str,
        jwks_url: str | None,
        discovery_url: str | None,
        audience: str,
        subject_claim: str,
        subject_pattern: str,
        permissions: tuple[RepositoryPermission, ...],
    ) -> TrustedIssuerRecord | None:
        added = self._insert_ignore(
            ISSUER,
            issuer=issuer,
            jwks_url=jwks_url,
            discovery_url=discovery_url,
            audience=audience,
            subject_claim=subject_claim,
            subject_pattern=subject_pattern,
            permissions=dump_permissions(permissions),
            created_at=now(),
        )
        return self.by_iss(issuer) if added else None

    def all(self) -> list[TrustedIssuerRecord]:
        return [_issuer(row) for row in self._c.execute(select(ISSUER).order_by(ISSUER.c.id))]

    def by_iss(self, issuer: str) -> TrustedIssuerRecord | None:
        row = self._c.execute(select(ISSUER).where(ISSUER.c.issuer == issuer)).first()
        return _issuer(row) if row else None

    def delete(self, issuer_id: int) -> bool:
        return bool(self._c.execute(delete(ISSUER).where(ISSUER.c.id == issuer_id)).rowcount)


class SqlLogins(_IdentityRepository):
    """See ``core.identity_ports.LoginRepository``."""

    __slots__ = ()

    def add(self, state: str, verifier: str, nonce: str) -> None:
        self._insert_ignore(LOGIN, state=state, verifier=verifier, nonce=nonce, created_at=now())

    def take(self, state: str, not_before: datetime) -> tuple[str, str] | None:
        self._c.execute(delete(LOGIN).where(LOGIN.c.created_at < not_before))
        row = self._c.execute(select(LOGIN).where(LOGIN.c.state == state)).first()
        if row is None:
            return None
        self._c.execute(delete(LOGIN).where(LOGIN.c.state == state))
        return str(row.verifier), str(row.nonce)
