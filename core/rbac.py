"""Project roles and what each may do: Harbor's project permission matrix, as data.

A permission is a ``(resource, action)`` pair inside one project. A caller's rights in
a project are the union of the rights of every role it holds there (its own
membership, its groups' memberships, a robot's membership), plus the public-project
policy when the project is public. System administrators hold everything.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Final


class Role(StrEnum):
    ADMIN = "admin"
    MAINTAINER = "maintainer"
    DEVELOPER = "developer"
    GUEST = "guest"
    LIMITED_GUEST = "limited-guest"


Permission = tuple[str, str]

_CRUD = ("create", "read", "update", "delete")
_CRUDL = (*_CRUD, "list")


def _expand(table: dict[str, tuple[str, ...]]) -> frozenset[Permission]:
    return frozenset(
        (resource, action) for resource, actions in table.items() for action in actions
    )


#: Harbor's ``rbac_role.go`` matrix (harbor.md 3.2); ``project`` is Harbor's ``self``.
MATRIX: Final[dict[Role, frozenset[Permission]]] = {
    Role.ADMIN: _expand(
        {
            "project": ("read", "update", "delete"),
            "member": _CRUDL,
            "metadata": _CRUD,
            "log": ("list",),
            "label": _CRUDL,
            "quota": ("read",),
            "repository": ("create", "read", "update", "delete", "list", "pull", "push"),
            "artifact": ("create", "read", "delete", "list"),
            "artifact-addition": ("read",),
            "artifact-label": ("create", "delete"),
            "tag": ("create", "delete", "list"),
            "accessory": ("list",),
            "tag-retention": (*_CRUDL, "operate"),
            "immutable-tag": ("create", "update", "delete", "list"),
            "configuration": ("read", "update"),
            "robot": _CRUDL,
            "notification-policy": _CRUDL,
            "scan": ("create", "read", "stop"),
            "sbom": ("create", "read", "stop"),
            "scanner": ("create", "read"),
            "preheat-policy": _CRUDL,
            "export-cve": ("create", "read", "list"),
            "promotion": ("create", "read", "list"),
            "promotion-rule": _CRUDL,
            "signing-key": ("create", "read", "list"),
        }
    ),
    Role.MAINTAINER: _expand(
        {
            "project": ("read",),
            "member": ("read", "list"),
            "metadata": ("read",),
            "label": _CRUDL,
            "quota": ("read",),
            "repository": ("create", "read", "update", "delete", "list", "pull", "push"),
            "artifact": ("create", "read", "delete", "list"),
            "artifact-addition": ("read",),
            "artifact-label": ("create", "delete"),
            "tag": ("create", "delete", "list"),
            "accessory": ("list",),
            "tag-retention": (*_CRUDL, "operate"),
            "immutable-tag": ("create", "update", "delete", "list"),
            "configuration": ("read",),
            "robot": ("read", "list"),
            "notification-policy": ("read", "list"),
            "scan": ("create", "read", "stop"),
            "sbom": ("create", "read", "stop"),
            "scanner": ("read",),
            "export-cve": ("create", "read", "list"),
            "promotion": ("create", "read", "list"),
            "promotion-rule": ("read", "list"),
        }
    ),
    Role.DEVELOPER: _expand(
        {
            "project": ("read",),
            "member": ("read", "list"),
            "label": ("read", "list"),
            "quota": ("read",),
            "repository": ("create", "read", "update", "list", "pull", "push"),
            "artifact": ("create", "read", "list"),
            "artifact-addition": ("read",),
            "artifact-label": ("create", "delete"),
            "tag": ("create", "list"),
            "accessory": ("list",),
            "tag-retention": (*_CRUDL, "operate"),
            "configuration": ("read",),
            "robot": ("read", "list"),
            "scan": ("read",),
            "sbom": ("read",),
            "scanner": ("read",),
            "export-cve": ("create", "read", "list"),
            "promotion": ("read", "list"),
        }
    ),
    Role.GUEST: _expand(
        {
            "project": ("read",),
            "member": ("read", "list"),
            "label": ("read", "list"),
            "quota": ("read",),
            "repository": ("read", "list", "pull"),
            "artifact": ("read", "list"),
            "artifact-addition": ("read",),
            "tag": ("list",),
            "accessory": ("list",),
            "configuration": ("read",),
            "robot": ("read", "list"),
            "scan": ("read",),
            "sbom": ("read",),
            "scanner": ("read",),
        }
    ),
    Role.LIMITED_GUEST: _expand(
        {
            "project": ("read",),
            "quota": ("read",),
            "repository": ("read", "list", "pull"),
            "artifact": ("read", "list"),
            "artifact-addition": ("read",),
            "tag": ("list",),
            "accessory": ("list",),
            "configuration": ("read",),
            "scan": ("read",),
            "sbom": ("read",),
            "scanner": ("read",),
        }
    ),
}

#: What anyone, anonymous included, may do in a public project.
PUBLIC_PROJECT: Final[frozenset[Permission]] = _expand(
    {
        "project": ("read",),
        "label": ("read", "list"),
        "repository": ("list", "pull"),
        "scan": ("read",),
        "scanner": ("read",),
        "tag": ("list",),
        "artifact": ("read", "list"),
        "artifact-addition": ("read",),
        "accessory": ("list",),
    }
)

#: Registry token actions and the repository permission each needs.
REGISTRY_ACTIONS: Final[dict[str, Permission]] = {
    "pull": ("repository", "pull"),
    "push": ("repository", "push"),
    "delete": ("repository", "delete"),
    #: A CI promotion into the repository (``core.services.promotions``); never a token action.
    "promote": ("promotion", "create"),
}


def permissions_of(roles: set[Role] | frozenset[Role], public: bool) -> frozenset[Permission]:
    """The union of the roles' permissions, plus the public policy for a public project."""
    held: set[Permission] = set(PUBLIC_PROJECT) if public else set()
    for role in roles:
        held |= MATRIX[role]
    return frozenset(held)


def registry_actions(permissions: frozenset[Permission]) -> frozenset[str]:
    """The registry token actions (``pull``/``push``/``delete``) these permissions allow."""
    return frozenset(action for action, need in REGISTRY_ACTIONS.items() if need in permissions)


#: The permission each policy operation of the management API needs (Harbor's
#: ``immutable-tag``, ``tag-retention`` and ``quota`` resources). Replacing a project's
#: quota is not here: like Harbor's ``quota:update`` it is for system administrators.
POLICY_PERMISSIONS: Final[dict[tuple[str, str], Permission]] = {
    ("immutability", "read"): ("immutable-tag", "list"),
    ("immutability", "write"): ("immutable-tag", "update"),
    ("retention", "read"): ("tag-retention", "read"),
    ("retention", "write"): ("tag-retention", "update"),
    ("retention", "run"): ("tag-retention", "operate"),
    ("retention", "history"): ("tag-retention", "list"),
    ("quota", "read"): ("quota", "read"),
}
