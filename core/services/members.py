"""Project membership of users, groups and robots, with one of the five project roles.

Every operation first checks the caller's rights in the project named by the path
(``member:*`` permissions), then looks the member up *inside that project*: an id of
another project's member answers exactly like an id that does not exist.
"""

from __future__ import annotations

from core.access import Identity
from core.errors import ConflictError, InvalidInputError, NotFoundError
from core.identity_ports import IdentityStore
from core.identity_records import MemberRecord
from core.rbac import Role
from core.services.access_control import AccessControl

KINDS = frozenset({"user", "group", "robot"})
_NAME_MAX = 255


def _role(value: str) -> str:
    if value not in Role.__members__.values():
        raise InvalidInputError(f"role must be one of {', '.join(r.value for r in Role)}")
    return value


class MemberService:
    def __init__(self, store: IdentityStore, access: AccessControl) -> None:
        self._store, self._access = store, access

    def list(self, caller: Identity, project: str) -> list[MemberRecord]:
        record = self._access.require(caller, project, "member", "list")
        return self._store.members(record.id)

    def add(self, caller: Identity, project: str, kind: str, name: str, role: str) -> MemberRecord:
        record = self._access.require(caller, project, "member", "create")
        if kind not in KINDS or not name or len(name) > _NAME_MAX:
            raise InvalidInputError("a member is one user, group or robot by name")
        if kind == "robot":
            robot = self._store.robot_by_name(name)
            if robot is None or robot.project_id not in (None, record.id):
                raise InvalidInputError(f"no robot {name!r} in this project or the system")
        added = self._store.add_member(record.id, kind, name, _role(role))
        if added is None:
            raise ConflictError(f"{kind} {name!r} is already a member")
        return added

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
