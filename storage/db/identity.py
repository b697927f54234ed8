"""``core.identity_ports.IdentityStore`` on the metadata's units of work.

Identity lives in the same persistence model as the rest of the metadata: users,
members, robots, tokens, issuers and logins are repositories of
:class:`storage.db.metadata.SqlUnitOfWork` (``storage.db.repos``), so a service may change
them together with any other aggregate in one transaction. This adapter offers the
store's one-call-one-transaction contract on top: each method opens one unit of work
(a read on the reader engine, a write under the writer lock) and commits it.
"""

from __future__ import annotations

from datetime import datetime

from core.identity_records import (
    LocalUser,
    MemberRecord,
    PersonalTokenRecord,
    RepositoryPermission,
    RobotRecord,
    TrustedIssuerRecord,
    UserProfile,
)
from core.ports import Metadata


class SqlIdentityStore:
    """Users, members, robots, personal tokens, trusted issuers and pending logins."""

    def __init__(self, metadata: Metadata) -> None:
        self._metadata = metadata

    # local users
    def users(self, last: str | None, limit: int) -> list[LocalUser]:
        with self._metadata.read() as uow:
            return uow.users.page(last, limit)

    def user(self, username: str) -> LocalUser | None:
        with self._metadata.read() as uow:
            return uow.users.local(username)

    def add_user(
        self, username: str, password_hash: str, profile: UserProfile | None = None
    ) -> bool:
        with self._metadata.write() as uow:
            added = uow.users.add(username, password_hash, profile)
            uow.commit()
            return added

    def update_user(
        self,
        username: str,
        *,
        password_hash: str | None = None,
        disabled: bool | None = None,
        profile: UserProfile | None = None,
    ) -> bool:
        with self._metadata.write() as uow:
            changed = uow.users.update(
                username, password_hash=password_hash, disabled=disabled, profile=profile
            )
            uow.commit()
            return changed

    def delete_user(self, username: str) -> bool:
        with self._metadata.write() as uow:
            deleted = uow.users.delete(username)
            uow.commit()
            return deleted

    # projects
    def set_project_public(self, name: str, public: bool) -> bool:
        with self._metadata.write() as uow:
            changed = uow.projects.set_public(name, public)
            uow.commit()
            return changed

    # members
    def members(self, project_id: int) -> list[MemberRecord]:
        with self._metadata.read() as uow:
            return uow.members.of_project(project_id)

    def member(self, project_id: int, member_id: int) -> MemberRecord | None:
        with self._metadata.read() as uow:
            return uow.members.get(project_id, member_id)

    def add_member(self, project_id: int, kind: str, name: str, role: str) -> MemberRecord | None:
        with self._metadata.write() as uow:
            member = uow.members.add(project_id, kind, name, role)
            uow.commit()
            return member

    def update_member(self, project_id: int, member_id: int, role: str) -> bool:
        with self._metadata.write() as uow:
            changed = uow.members.update(project_id, member_id, role)
            uow.commit()
            return changed

    def delete_member(self, project_id: int, member_id: int) -> bool:
        with self._metadata.write() as uow:
            deleted = uow.members.delete(project_id, member_id)
            uow.commit()
            return deleted

    def roles(self, project_id: int, entries: list[tuple[str, str]]) -> set[str]:
        if not entries:
            return set()
        with self._metadata.read() as uow:
            return uow.members.roles(project_id, entries)

    def project_ids(self, names: list[str]) -> set[int]:
        if not names:
            return set()
        with self._metadata.read() as uow:
            return uow.projects.ids(names)

    def repository_names(
        self, project_ids: set[int] | None, last: str | None, limit: int
    ) -> list[str]:
        with self._metadata.read() as uow:
            return uow.repositories.names(project_ids, last, limit)

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
        with self._metadata.write() as uow:
            robot = uow.robots.add(name, project_id, secret_hash, permissions, expires_at, creator)
            uow.commit()
            return robot

    def robot_by_name(self, name: str) -> RobotRecord | None:
        with self._metadata.read() as uow:
            return uow.robots.by_name(name)

    def robot(self, robot_id: int) -> RobotRecord | None:
        with self._metadata.read() as uow:
            return uow.robots.get(robot_id)

    def robots(self, project_id: int | None) -> list[RobotRecord]:
        with self._metadata.read() as uow:
            return uow.robots.of_project(project_id)

    def update_robot(
        self,
        robot_id: int,
        *,
        secret_hash: str | None = None,
        disabled: bool | None = None,
        expires_at: datetime | None = None,
    ) -> bool:
        with self._metadata.write() as uow:
            changed = uow.robots.update(
                robot_id, secret_hash=secret_hash, disabled=disabled, expires_at=expires_at
            )
            uow.commit()
            return changed

    def delete_robot(self, robot_id: int) -> bool:
        with self._metadata.write() as uow:
            deleted = uow.robots.delete(robot_id)
            uow.commit()
            return deleted

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
        with self._metadata.write() as uow:
            token = uow.tokens.add(key, owner, owner_kind, name, secret_hash, scopes, expires_at)
            uow.commit()
            return token

    def token_by_key(self, key: str) -> PersonalTokenRecord | None:
        with self._metadata.read() as uow:
            return uow.tokens.by_key(key)

    def tokens(self, owner: str) -> list[PersonalTokenRecord]:
        with self._metadata.read() as uow:
            return uow.tokens.of_owner(owner)

    def revoke_token(self, owner: str, token_id: int) -> bool:
        with self._metadata.write() as uow:
            revoked = uow.tokens.revoke(owner, token_id)
            uow.commit()
            return revoked

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
        with self._metadata.write() as uow:
            added = uow.issuers.add(
                issuer,
                jwks_url,
                discovery_url,
                audience,
                subject_claim,
                subject_pattern,
                permissions,
            )
            uow.commit()
            return added

    def issuers(self) -> list[TrustedIssuerRecord]:
        with self._metadata.read() as uow:
            return uow.issuers.all()

    def issuer_by_iss(self, issuer: str) -> TrustedIssuerRecord | None:
        with self._metadata.read() as uow:
            return uow.issuers.by_iss(issuer)

    def delete_issuer(self, issuer_id: int) -> bool:
        with self._metadata.write() as uow:
            deleted = uow.issuers.delete(issuer_id)
            uow.commit()
            return deleted

    # browser logins in progress
    def add_login(self, state: str, verifier: str, nonce: str) -> None:
        with self._metadata.write() as uow:
            uow.logins.add(state, verifier, nonce)
            uow.commit()

    def take_login(self, state: str, not_before: datetime) -> tuple[str, str] | None:
        with self._metadata.write() as uow:
            taken = uow.logins.take(state, not_before)
            uow.commit()
            return taken
