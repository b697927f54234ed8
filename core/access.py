"""Who may do what: scopes, identities and the grant decision.

Moorage alone decides access. A token request names scopes; the token grants the
intersection of what was asked and what the caller may do, never more.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from core.records import ProjectRecord

PULL, PUSH, DELETE = "pull", "push", "delete"
REPOSITORY_ACTIONS = frozenset({PULL, PUSH, DELETE})


class AuthMethod(StrEnum):
    ANONYMOUS = "anonymous"
    PASSWORD = "password"  # noqa: S105 - a method name, not a secret
    TOKEN = "token"  # noqa: S105
    PERSONAL_TOKEN = "personal_token"  # noqa: S105
    ROBOT_SECRET = "robot_secret"  # noqa: S105
    OIDC = "oidc"
    CLIENT_CREDENTIALS = "client_credentials"
    TRUSTED_ISSUER = "trusted_issuer"


class IdentityKind(StrEnum):
    ANONYMOUS = "anonymous"
    USER = "user"  # a local account
    OIDC_USER = "oidc_user"  # a user (or service account) of the OIDC provider
    ROBOT = "robot"
    ISSUER = "issuer"  # a workload with a JWT from a trusted issuer
    #: An external scanner pulling with the token a delegated scan handed it (exempt
    #: from the vulnerability pull policy, as Harbor's ``scanner-pull``).
    SCANNER = "scanner"


@dataclass(frozen=True, slots=True)
class Identity:
    """The acting identity of a request."""

    subject: str
    is_admin: bool = False
    method: AuthMethod = AuthMethod.ANONYMOUS
    kind: IdentityKind = IdentityKind.USER
    #: Group paths from the identity provider (group memberships grant project roles).
    groups: frozenset[str] = frozenset()
    #: Explicit registry permissions (robots, trusted issuers): ``(pattern, actions)``.
    permissions: tuple[tuple[str, frozenset[str]], ...] = ()
    #: A personal access token's limit on actions (``None``: no limit beyond the owner's).
    scopes: frozenset[str] | None = None

    @property
    def anonymous(self) -> bool:
        return self.method is AuthMethod.ANONYMOUS


ANONYMOUS = Identity(subject="", kind=IdentityKind.ANONYMOUS)


@dataclass(frozen=True, slots=True)
class Scope:
    """One ``type:name:actions`` entry of a token request or grant."""

    type: str
    name: str
    actions: frozenset[str] = field(default_factory=frozenset)

    def __str__(self) -> str:
        return f"{self.type}:{self.name}:{','.join(sorted(self.actions))}"

    def as_claim(self) -> dict[str, object]:
        return {"type": self.type, "name": self.name, "actions": sorted(self.actions)}


def parse_scope(text: str) -> Scope | None:
    """Parse ``repository:<name>:pull,push``; ``None`` when malformed.

    The name may itself hold a ``:`` (a registry host with a port), so the actions
    are taken after the last colon and the type before the first.
    """
    head, sep, actions = text.rpartition(":")
    kind, sep2, name = head.partition(":")
    if not sep or not sep2 or not kind or not name:
        return None
    kind = kind.split("(", 1)[0]
    return Scope(kind, name, frozenset(a for a in actions.split(",") if a))


def held_actions(access: Iterable[Scope], kind: str, name: str) -> frozenset[str]:
    """Every action ``access`` grants on ``kind:name``; ``*`` on a repository holds them all.

    The one reading of a grant list: the token check of every ``/v2`` request (whichever
    way the API answers it) and the check of Basic callers go through it.
    """
    held: frozenset[str] = frozenset()
    for entry in access:
        if entry.type == kind and entry.name == name:
            held |= entry.actions
    if "*" in held and kind == "repository":
        held |= REPOSITORY_ACTIONS
    return held


def missing_actions(access: Iterable[Scope], wanted: Scope) -> frozenset[str]:
    """The actions of ``wanted`` that ``access`` does not grant (empty: all granted)."""
    return wanted.actions - held_actions(access, wanted.type, wanted.name)


def grants(access: Iterable[Scope], kind: str, name: str, action: str) -> bool:
    """Whether ``access`` grants ``action`` on ``kind:name`` (see :func:`held_actions`)."""
    return action in held_actions(access, kind, name)


ProjectLookup = Callable[[str], ProjectRecord | None]
#: The registry actions ``identity`` holds on repository ``name`` of an existing project
#: through its roles and explicit permissions (see ``core.services.access_control``).
RightsLookup = Callable[[Identity, ProjectRecord, str], frozenset[str]]


def allowed_repository_actions(
    identity: Identity,
    project: ProjectRecord | None,
    *,
    create_on_push: bool,
    rights: RightsLookup | None = None,
    repository: str = "",
) -> frozenset[str]:
    """What ``identity`` may do on repository ``repository`` of ``project``.

    ``project`` is ``None`` when it does not exist: then only an admin may push,
    and only when projects are created on push. Otherwise a non-admin holds what
    ``rights`` finds (roles, robot or issuer permissions), plus pull on public projects.
    """
    allowed: frozenset[str]
    if identity.is_admin:
        if project is None:
            allowed = frozenset({PUSH, PULL}) if create_on_push else frozenset()
        else:
            allowed = REPOSITORY_ACTIONS | {"*"}
    elif project is None:
        allowed = frozenset()
    else:
        allowed = frozenset({PULL}) if project.public else frozenset()
        if rights is not None:
            allowed |= rights(identity, project, repository)
    if identity.scopes is not None:
        allowed &= identity.scopes
    return allowed


def grant(
    identity: Identity,
    requested: list[Scope],
    lookup: ProjectLookup,
    *,
    create_on_push: bool,
    rights: RightsLookup | None = None,
) -> list[Scope]:
    """The part of ``requested`` that ``identity`` may hold; a partial grant is no error.

    ``rights`` looks up the caller's roles and permissions in the named project.
    """
    granted: list[Scope] = []
    for scope in requested:
        if scope.type == "repository":
            project = lookup(scope.name.partition("/")[0])
            allowed = allowed_repository_actions(
                identity,
                project,
                create_on_push=create_on_push,
                rights=rights,
                repository=scope.name,
            )
            wanted = scope.actions
            if "*" in wanted:
                wanted = (wanted - {"*"}) | (allowed & REPOSITORY_ACTIONS)
            actions = wanted & allowed
        elif scope.type == "registry" and scope.name == "catalog":
            # NOTE: only admins get the scope; the catalog shows anyone what they may read.
            actions = scope.actions & {"*"} if identity.is_admin else frozenset()
        else:
            actions = frozenset()
        if actions:
            granted.append(Scope(scope.type, scope.name, frozenset(actions)))
    return granted


def describe(identity: Identity) -> dict[str, object]:
    """A JSON form of what an identity is (kind, groups, permissions, scopes)."""
    return {
        "kind": str(identity.kind),
        "method": str(identity.method),
        "groups": sorted(identity.groups),
        "perms": [[pattern, sorted(actions)] for pattern, actions in identity.permissions],
        "scopes": None if identity.scopes is None else sorted(identity.scopes),
    }


#: Built once: iterating an enum on every request showed in profiles.
_KIND_VALUES = frozenset(kind.value for kind in IdentityKind)


def from_description(
    subject: str, is_admin: bool, method: AuthMethod, described: dict[str, Any]
) -> Identity:
    """Rebuild the identity :func:`describe` described (from a token we signed)."""
    kind = str(described.get("kind", IdentityKind.USER))
    scopes = described.get("scopes")
    return Identity(
        subject=subject,
        is_admin=is_admin,
        method=method,
        kind=IdentityKind(kind) if kind in _KIND_VALUES else IdentityKind.USER,
        groups=frozenset(map(str, described.get("groups") or [])),
        permissions=tuple(
            (str(entry[0]), frozenset(map(str, entry[1]))) for entry in described.get("perms") or []
        ),
        scopes=None if scopes is None else frozenset(map(str, scopes)),
    )
