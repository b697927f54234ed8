"""Value records of identity and access control (members, robots, tokens, issuers)."""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True, slots=True)
class RepositoryPermission:
    """Registry actions on the repositories whose full name matches ``repository`` (a glob)."""

    repository: str
    actions: frozenset[str]

    def matches(self, name: str) -> bool:
        return fnmatch.fnmatchcase(name, self.repository)

    def as_dict(self) -> dict[str, object]:
        return {"repository": self.repository, "actions": sorted(self.actions)}


@dataclass(frozen=True, slots=True)
class OidcUser:
    """A user (or service account) of the OIDC provider, as Moorage sees it."""

    username: str
    subject: str
    groups: frozenset[str]
    is_admin: bool


@dataclass(frozen=True, slots=True)
class MemberRecord:
    id: int
    project_id: int
    kind: str
    name: str
    role: str


@dataclass(frozen=True, slots=True)
class RobotRecord:
    id: int
    name: str
    project_id: int | None
    secret_hash: str
    permissions: tuple[RepositoryPermission, ...]
    expires_at: datetime | None
    disabled: bool
    creator: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class PersonalTokenRecord:
    id: int
    key: str
    owner: str
    owner_kind: str
    name: str
    secret_hash: str
    scopes: frozenset[str]
    expires_at: datetime | None
    revoked: bool
    created_at: datetime


@dataclass(frozen=True, slots=True)
class TrustedIssuerRecord:
    id: int
    issuer: str
    jwks_url: str | None
    discovery_url: str | None
    audience: str
    subject_claim: str
    subject_pattern: str
    permissions: tuple[RepositoryPermission, ...]
    created_at: datetime


@dataclass(frozen=True, slots=True)
class LocalUser:
    """A local account as the management API shows it (never its hash)."""

    username: str
    is_admin: bool
    disabled: bool
    email: str | None = None
    full_name: str | None = None


#: The profile attributes of a local account (``email``, ``full_name``) an update may set;
#: a key that is present with ``None`` clears the attribute.
UserProfile = dict[str, str | None]
PROFILE_FIELDS = ("email", "full_name")
