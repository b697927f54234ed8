"""Project membership of users, groups and robots, with one of the five project roles.

Every operation first checks the caller's rights in the project named by the path
(``member:*`` permissions), then looks the member up *inside that project*: an id of
another project's member answers exactly like an id that does not exist.

A member names an identity that exists when it is added: a local account or a user of
the OIDC provider (Keycloak), a Keycloak group, a robot of the project or the system.
A grant never waits for whoever registers a name later. The check is made once, when the
member is added; deleting the identity later leaves a row that grants nothing until an
identity of that name exists again (local user deletion removes its rows).
"""

from __future__ import annotations

from typing import Protocol

from core.access import Identity
from core.errors import ConflictError, InvalidInputError, NotFoundError
from core.identity_ports import IdentityStore, OidcProvider
from core.identity_records import MemberRecord
from core.paging import window
from core.rbac import Role
from core.services.access_control import AccessControl
from core.services.auth import AuthService


def _member_id(member: MemberRecord) -> int:
    return member.id


KINDS = frozenset({"user", "group", "robot"})
_NAME_MAX = 255


def _role(value: str) -> str:
    if value not in Role.__members__.values():
        raise InvalidInputError(f"role must be one of {', '.join(r.value for r in Role)}")
    return value


class Directory(Protocol):
    """Which users and groups exist (blocking calls; may ask the identity provider)."""

    def has_user(self, name: str) -> bool: ...
    def has_group(self, path: str) -> bool: ...


class KnownIdentities:
    """Local accounts, then the OIDC provider's users and groups (when one is configured).

    Without an OIDC provider no group exists: local accounts carry no groups. A Keycloak
    that cannot be asked knows nobody (the member is refused, never added unchecked).
    """

    def __init__(self, local: AuthService, keycloak: OidcProvider | None) -> None:
        self._local, self._keycloak = local, keycloak

    def has_user(self, name: str) -> bool:
        if self._local.user(name) is not None:
            return True
        return self._keycloak is not None and self._keycloak.current_user(name) is not None

    def has_group(self, path: str) -> bool:
        return self._keycloak is not None and self._keycloak.group_exists(path)


class MemberService:
    def __init__(
        self, store: IdentityStore, access: AccessControl, directory: Directory | None = None
    ) -> None:
        self._store, self._access, self._directory = store, access, directory

    def list(
        self, caller: Identity, project: str, after: int | None = None, limit: int | None = None
    ) -> list[MemberRecord]:
        """The project's members by id: at most ``limit`` after id ``after`` (keyset)."""
        record = self._access.require(caller, project, "member", "list")
        return window(self._store.members(record.id), _member_id, after, limit)

    def add(self, caller: Identity, project: str, kind: str, name: str, role: str) -> MemberRecord:
        record = self._access.require(caller, project, "member", "create")
        if kind not in KINDS or not name or len(name) > _NAME_MAX:
            raise InvalidInputError("a member is one user, group or robot by name")
        self._require_exists(record.id, kind, name)
        added = self._store.add_member(record.id, kind, name, _role(role))
        if added is None:
            raise ConflictError(f"{kind} {name!r} is already a member")
        return added

    def _require_exists(self, project_id: int, kind: str, name: str) -> None:
        """Refuse (422, naming the field) a member whose identity does not exist."""
        if kind == "robot":
            robot = self._store.robot_by_name(name)
            if robot is None or robot.project_id not in (None, project_id):
                raise InvalidInputError(
                    f"no robot {name!r} in this project or the system", field="robot"
                )
            return
        if self._directory is None:
            return
        if kind == "user" and not self._directory.has_user(name):
            raise InvalidInputError(
                f"no user {name!r}: neither a local account nor a user of the identity provider",
                field="user",
            )
        if kind == "group" and not self._directory.has_group(name):
            raise InvalidInputError(
                f"no group {name!r} at the identity provider (groups come from OIDC)",
                field="group",
            )

    def update(self, caller: Identity, project: str, member_id: int, role: str) -> MemberRecord:
        record = self._access.require(caller, project, "member", "update")
        if not self._store.update_member(record.id, member_id, _role(role)):
            raise NotFoundError(f"member {member_id} not found")
        found = self._store.member(record.id, member_id)
        if found is None:  # pragma: no cover - deleted between the two statements
            raise NotFoundError(f"member {member_id} not found")
        return found

    def remove(self, caller: Identity, project: str, member_id: int) -> None:
        record = self._access.require(caller, project, "member", "delete")
        if not self._store.delete_member(record.id, member_id):
            raise NotFoundError(f"member {member_id} not found")
