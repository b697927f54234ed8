"""Who may do what: scopes, identities and the grant decision.

Moorage alone decides access. A token request names scopes; the token grants the
intersection of what was asked and what the caller may do, never more.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum

from core.records import ProjectRecord

PULL, PUSH, DELETE = "pull", "push", "delete"
REPOSITORY_ACTIONS = frozenset({PULL, PUSH, DELETE})


class AuthMethod(StrEnum):
    ANONYMOUS = "anonymous"
    PASSWORD = "password"  # noqa: S105 - a method name, not a secret
    TOKEN = "token"  # noqa: S105


@dataclass(frozen=True, slots=True)
class Identity:
    """The acting identity of a request."""

    subject: str
    is_admin: bool = False
    method: AuthMethod = AuthMethod.ANONYMOUS

    @property
    def anonymous(self) -> bool:
        return self.method is AuthMethod.ANONYMOUS


ANONYMOUS = Identity(subject="")


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


ProjectLookup = Callable[[str], ProjectRecord | None]


def allowed_repository_actions(
    identity: Identity,
    project: ProjectRecord | None,
    *,
    create_on_push: bool,
) -> frozenset[str]:
    """What ``identity`` may do on repositories of ``project``.

    ``project`` is ``None`` when it does not exist: then only an admin may push,
    and only when projects are created on push.
    """
    if identity.is_admin:
        if project is None:
            return frozenset({PUSH, PULL}) if create_on_push else frozenset()
        return REPOSITORY_ACTIONS | {"*"}
    if project is not None and project.public:
        return frozenset({PULL})
    return frozenset()


def grant(
    identity: Identity,
    requested: list[Scope],
    lookup: ProjectLookup,
    *,
    create_on_push: bool,
) -> list[Scope]:
    """The part of ``requested`` that ``identity`` may hold; a partial grant is no error."""
    granted: list[Scope] = []
    for scope in requested:
        if scope.type == "repository":
            project = lookup(scope.name.partition("/")[0])
            allowed = allowed_repository_actions(identity, project, create_on_push=create_on_push)
            wanted = scope.actions
            if "*" in wanted:
                wanted = (wanted - {"*"}) | (allowed & REPOSITORY_ACTIONS)
            actions = wanted & allowed
        elif scope.type == "registry" and scope.name == "catalog":
            # NOTE: everyone may list; the catalog shows only what the caller may read.
            actions = scope.actions & {"*"}
        else:
            actions = frozenset()
        if actions:
            granted.append(Scope(scope.type, scope.name, frozenset(actions)))
    return granted
