"""The port of identity and access-control state; ``storage.db.identity`` implements it.

Every method is one database transaction: a write is durable and visible to every
process when the method returns. Inserts that collide with an existing unique name
return ``None`` (or ``False``) instead of raising.
"""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from core.identity_records import (
    LocalUser,
    MemberRecord,
    PersonalTokenRecord,
    RepositoryPermission,
    RobotRecord,
    TrustedIssuerRecord,
    UserProfile,
)


class IdentityStore(Protocol):
    # local users
    def users(self, last: str | None, limit: int) -> list[LocalUser]: ...
    def user(self, username: str) -> LocalUser | None: ...
    def add_user(
        self, username: str, password_hash: str, profile: UserProfile | None = None
    ) -> bool: ...
    def update_user(
        self,
        username: str,
        *,
        password_hash: str | None = None,
        disabled: bool | None = None,
        profile: UserProfile | None = None,
    ) -> bool:
        """Change the given columns; ``profile`` sets (or, with ``None``, clears) its keys."""

    def delete_user(self, username: str) -> bool: ...

    # projects
    def set_project_public(self, name: str, public: bool) -> bool: ...

    # members
    def members(self, project_id: int) -> list[MemberRecord]: ...
    def member(self, project_id: int, member_id: int) -> MemberRecord | None: ...
    def add_member(
        self, project_id: int, kind: str, name: str, role: str
    ) -> MemberRecord | None: ...
    def update_member(self, project_id: int, member_id: int, role: str) -> bool: ...
    def delete_member(self, project_id: int, member_id: int) -> bool: ...
    def roles(self, project_id: int, entries: list[tuple[str, str]]) -> set[str]:
        """Roles held in the project by any of the ``(kind, name)`` entries."""

    def member_project_ids(self, entries: list[tuple[str, str]]) -> set[int]:
        """Projects in which any of the ``(kind, name)`` entries is a member."""

    def project_ids(self, names: list[str]) -> set[int]: ...
    def repository_names(
        self, project_ids: set[int] | None, last: str | None, limit: int
    ) -> list[str]:
        """Repository names of the given projects (all when ``None``), sorted, paginated."""

    # robots
    def add_robot(
        self,
        name: str,
        project_id: int | None,
        secret_hash: str,
        permissions: tuple[RepositoryPermission, ...],
        expires_at: datetime | None,
        creator: str,
    ) -> RobotRecord | None: ...
    def robot_by_name(self, name: str) -> RobotRecord | None: ...
    def robot(self, robot_id: int) -> RobotRecord | None: ...
    def robots(self, project_id: int | None) -> list[RobotRecord]:
        """Robots of a project; system robots when ``project_id`` is ``None``."""

    def update_robot(
        self,
        robot_id: int,
        *,
        secret_hash: str | None = None,
        disabled: bool | None = None,
        expires_at: datetime | None = None,
    ) -> bool: ...
    def delete_robot(self, robot_id: int) -> bool: ...

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
    ) -> PersonalTokenRecord | None: ...
    def token_by_key(self, key: str) -> PersonalTokenRecord | None: ...
    def tokens(self, owner: str) -> list[PersonalTokenRecord]: ...
    def revoke_token(self, owner: str, token_id: int) -> bool: ...

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
    ) -> TrustedIssuerRecord | None: ...
    def issuers(self) -> list[TrustedIssuerRecord]: ...
    def issuer_by_iss(self, issuer: str) -> TrustedIssuerRecord | None: ...
    def delete_issuer(self, issuer_id: int) -> bool: ...

    # browser logins in progress
    def add_login(self, state: str, verifier: str, nonce: str) -> None: ...
    def take_login(self, state: str, not_before: datetime) -> tuple[str, str] | None:
        """Remove and return ``(verifier, nonce)`` of a login started after ``not_before``."""
