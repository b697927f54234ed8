"""The ports of identity: its stored state, the OIDC provider and issuers' signing keys.

Identity's stored state is a set of repositories of the metadata's unit of work
(``core.ports.UnitOfWork``: users, members, robots, tokens, issuers, logins), so identity
changes can commit together with any other aggregate. :class:`IdentityStore` offers the
same operations one transaction per call; ``storage.db.identity`` implements it on the
units of work. ``adapters.keycloak`` implements :class:`OidcProvider` and
``adapters.jwks`` :class:`SigningKeys`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Protocol

from core.identity_records import (
    LocalUser,
    MemberRecord,
    OidcUser,
    PersonalTokenRecord,
    RepositoryPermission,
    RobotRecord,
    TrustedIssuerRecord,
    UserProfile,
)
from core.records import UserRecord


class UserRepository(Protocol):
    """Local accounts: their credentials (login) and their management view."""

    def get(self, username: str) -> UserRecord | None:
        """The account with its password hash (for logins)."""

    def upsert(self, username: str, password_hash: str, is_admin: bool) -> None: ...
    def replace_password_hash(self, username: str, old_hash: str, new_hash: str) -> bool:
        """Store ``new_hash`` if the user's hash is still ``old_hash`` (false otherwise)."""

    def local(self, username: str) -> LocalUser | None:
        """The account as the management API shows it (never its hash)."""

    def page(self, last: str | None, limit: int) -> list[LocalUser]: ...
    def add(
        self, username: str, password_hash: str, profile: UserProfile | None = None
    ) -> bool: ...
    def update(
        self,
        username: str,
        *,
        password_hash: str | None = None,
        disabled: bool | None = None,
        profile: UserProfile | None = None,
    ) -> bool:
        """Change the given columns; ``profile`` sets (or, with ``None``, clears) its keys."""

    def delete(self, username: str) -> bool:
        """Remove the account with its memberships and personal tokens."""


class MemberRepository(Protocol):
    def of_project(self, project_id: int) -> list[MemberRecord]: ...
    def get(self, project_id: int, member_id: int) -> MemberRecord | None: ...
    def add(self, project_id: int, kind: str, name: str, role: str) -> MemberRecord | None: ...
    def update(self, project_id: int, member_id: int, role: str) -> bool: ...
    def delete(self, project_id: int, member_id: int) -> bool: ...
    def roles(self, project_id: int, entries: list[tuple[str, str]]) -> set[str]:
        """Roles held in the project by any of the ``(kind, name)`` entries."""


class RobotRepository(Protocol):
    def add(
        self,
        name: str,
        project_id: int | None,
        secret_hash: str,
        permissions: tuple[RepositoryPermission, ...],
        expires_at: datetime | None,
        creator: str,
    ) -> RobotRecord | None: ...
    def by_name(self, name: str) -> RobotRecord | None: ...
    def get(self, robot_id: int) -> RobotRecord | None: ...
    def of_project(self, project_id: int | None) -> list[RobotRecord]:
        """Robots of a project; system robots when ``project_id`` is ``None``."""

    def update(
        self,
        robot_id: int,
        *,
        secret_hash: str | None = None,
        disabled: bool | None = None,
        expires_at: datetime | None = None,
    ) -> bool: ...
    def delete(self, robot_id: int) -> bool:
        """Remove the robot with its memberships."""


class TokenRepository(Protocol):
    def add(
        self,
        key: str,
        owner: str,
        owner_kind: str,
        name: str,
        secret_hash: str,
        scopes: frozenset[str],
        expires_at: datetime | None,
    ) -> PersonalTokenRecord | None: ...
    def by_key(self, key: str) -> PersonalTokenRecord | None: ...
    def of_owner(self, owner: str) -> list[PersonalTokenRecord]: ...
    def revoke(self, owner: str, token_id: int) -> bool: ...


class IssuerRepository(Protocol):
    def add(
        self,
        issuer: str,
        jwks_url: str | None,
        discovery_url: str | None,
        audience: str,
        subject_claim: str,
        subject_pattern: str,
        permissions: tuple[RepositoryPermission, ...],
    ) -> TrustedIssuerRecord | None: ...
    def all(self) -> list[TrustedIssuerRecord]: ...
    def by_iss(self, issuer: str) -> TrustedIssuerRecord | None: ...
    def delete(self, issuer_id: int) -> bool: ...


class LoginRepository(Protocol):
    """Browser logins in progress (their PKCE verifier and nonce)."""

    def add(self, state: str, verifier: str, nonce: str) -> None: ...
    def take(self, state: str, not_before: datetime) -> tuple[str, str] | None:
        """Remove and return ``(verifier, nonce)`` of a login started after ``not_before``."""


class IdentityStore(Protocol):
    """Identity and access-control state.

    Every method is one database transaction: a write is durable and visible to every
    process when the method returns. Inserts that collide with an existing unique name
    return ``None`` (or ``False``) instead of raising.
    """

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


class SigningKeys(Protocol):
    """The public keys one issuer signs its JWTs with (its JWKS), fetched and cached.

    ``key_for`` answers the key named by the token's ``kid`` header, a key object PyJWT
    verifies with. It never takes a key from the token itself and raises
    :class:`core.oidc.ExternalTokenError` when the key is unknown or the issuer's keys
    cannot be fetched. Keys may be cached for minutes: a key the issuer withdrew keeps
    verifying until the cache expires. Calls block (network); safe from many threads.
    """

    def key_for(self, token: str) -> Any: ...


class SigningKeysSource(Protocol):
    """Makes the :class:`SigningKeys` of an issuer from its JWKS URL or discovery URL.

    With a discovery URL the JWKS URL is read from the issuer's OpenID configuration,
    whose ``issuer`` must equal ``issuer``. One of the two URLs is given.
    """

    def __call__(
        self, issuer: str, *, jwks_url: str | None, discovery_url: str | None
    ) -> SigningKeys: ...


class OidcProvider(Protocol):
    """The OIDC provider (Keycloak) whose users and service accounts Moorage trusts.

    It authenticates; Moorage alone decides access. Every call blocks (network), so
    callers run it in a worker thread. A provider that cannot be reached means "not
    authenticated" (``None``), never a silent pass.
    """

    @property
    def issuer(self) -> str:
        """The provider's issuer URL, as tokens carry it in ``iss``."""

    def verify(self, token: str, *, check_active: bool) -> OidcUser | None:
        """The user an access token stands for, if valid (and still active, if asked).

        With ``check_active`` (when the installation enables it) the provider is asked
        on every call and the groups are the ones it holds *now*, not the copy signed
        into the token: a user disabled or removed from a group loses the matching
        rights at once.
        """

    def client_credentials(self, client_id: str, secret: str) -> OidcUser | None:
        """Log a service account in with its client id and secret."""

    def current_user(self, username: str) -> OidcUser | None:
        """The user's live state: ``None`` if gone or disabled."""

    def group_exists(self, path: str) -> bool:
        """Whether the provider has a group at ``path``; ``False`` when it cannot tell."""

    def authorization_url(self, redirect_uri: str, state: str, nonce: str, challenge: str) -> str:
        """Where a browser starts an authorization code login (PKCE, ``S256``)."""

    def exchange_code(self, code: str, redirect_uri: str, verifier: str) -> OidcUser | None:
        """Redeem an authorization code (with its PKCE verifier) for the user's identity."""
