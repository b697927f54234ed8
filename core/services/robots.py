"""Robot accounts with explicit registry permissions.

Robot accounts: project robots (``robot$<project>+<name>``) and system robots
(``robot$<name>``) with explicit registry permissions down to repository patterns.

Secrets are generated here, returned once, and stored as scrypt hashes. A robot never
holds more than its creator: a project robot's actions must be within the creator's
registry actions in that project (robots and tokens cannot create robots); system
robots are created by system administrators only. Project-level operations look the
robot up inside the path's project, so another project's robot id answers 404.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from datetime import datetime

from core.access import Identity, IdentityKind
from core.errors import (
    ConflictError,
    ForbiddenError,
    InvalidInputError,
    InvalidNameError,
    NotFoundError,
)
from core.identity_ports import IdentityStore
from core.identity_records import RepositoryPermission, RobotRecord
from core.names import is_repository_pattern
from core.paging import window
from core.passwords import hash_password
from core.rbac import registry_actions
from core.services.access_control import AccessControl, require_system_admin
from core.services.authenticator import REGISTRY_SCOPES, ROBOT_PREFIX

_NAME = re.compile(r"^[a-z0-9]+(?:[._-][a-z0-9]+)*$")
_NAME_MAX, _PATTERN_MAX = 128, 255
#: What a robot may hold: the registry actions and ``promote`` (CI promotions into the
#: matching repositories, ``core.services.promotions``).
ROBOT_ACTIONS = REGISTRY_SCOPES | {"promote"}


def _robot_id(robot: RobotRecord) -> int:
    return robot.id


@dataclass(frozen=True)
class NewRobot:
    robot: RobotRecord
    secret: str


def _validate(name: str, permissions: list[RepositoryPermission], prefix: str = "") -> None:
    """Refuse a bad robot name or permission, naming the field.

    Each permission's pattern, after ``prefix`` (``<project>/`` for project robots), must be
    a repository name in which ``*`` and ``?`` may stand for parts: ``../p2/app`` or
    ``a//b`` never reach the store.
    """
    if not _NAME.match(name) or len(name) > _NAME_MAX:
        raise InvalidInputError(
            "robot names are lower-case letters, digits and . _ -", field="name"
        )
    if not permissions:
        raise InvalidInputError("a robot needs at least one permission", field="permissions")
    for index, permission in enumerate(permissions):
        if not permission.actions or not permission.actions <= ROBOT_ACTIONS:
            raise InvalidInputError(
                "robot actions are pull, push, delete and promote",
                field=f"permissions.{index}.actions",
            )
        pattern = prefix + permission.repository
        if len(pattern) > _PATTERN_MAX or not is_repository_pattern(pattern):
            raise InvalidNameError(
                "a repository pattern follows the repository name grammar (lower-case "
                "components joined by single slashes; * and ? as wildcards)",
                field=f"permissions.{index}.repository",
            )


class RobotService:
    def __init__(self, store: IdentityStore, access: AccessControl) -> None:
        self._store, self._access = store, access

    def create_in_project(
        self,
        caller: Identity,
        project: str,
        name: str,
        permissions: list[RepositoryPermission],
        expires_at: datetime | None,
    ) -> NewRobot:
        record = self._access.require(caller, project, "robot", "create")
        _validate(name, permissions, f"{record.name}/")
        if caller.kind is IdentityKind.ROBOT or caller.kind is IdentityKind.ISSUER:
            raise ForbiddenError("robots and workloads cannot create robots")
        held = registry_actions(self._access.permissions(caller, record))
        if caller.scopes is not None:
            held &= caller.scopes
        scoped = []
        for permission in permissions:
            if not permission.actions <= held:
                raise ForbiddenError("a robot cannot get more than its creator holds")
            pattern = f"{record.name}/{permission.repository}"
            scoped.append(RepositoryPermission(pattern, permission.actions))
        return self._create(
            f"{ROBOT_PREFIX}{record.name}+{name}", record.id, scoped, expires_at, caller
        )

    def create_system(
        self,
        caller: Identity,
        name: str,
        permissions: list[RepositoryPermission],
        expires_at: datetime | None,
    ) -> NewRobot:
        self._require_system_admin(caller)
        _validate(name, permissions)
        return self._create(f"{ROBOT_PREFIX}{name}", None, permissions, expires_at, caller)

    def _create(
        self,
        name: str,
        project_id: int | None,
        permissions: list[RepositoryPermission],
        expires_at: datetime | None,
        caller: Identity,
    ) -> NewRobot:
        secret = secrets.token_urlsafe(32)
        robot = self._store.add_robot(
            name, project_id, hash_password(secret), tuple(permissions), expires_at, caller.subject
        )
        if robot is None:
            raise ConflictError(f"robot {name!r} already exists")
        return NewRobot(robot, secret)

    @staticmethod
    def _require_system_admin(caller: Identity) -> None:
        require_system_admin(caller)

    def list(
        self,
        caller: Identity,
        project: str | None,
        after: int | None = None,
        limit: int | None = None,
    ) -> list[RobotRecord]:
        """The robots of ``project`` (system robots: ``None``) by id, keyset-paged."""
        if project is None:
            self._require_system_admin(caller)
            project_id = None
        else:
            project_id = self._access.require(caller, project, "robot", "list").id
        return window(self._store.robots(project_id), _robot_id, after, limit)

    def get(self, caller: Identity, project: str | None, robot_id: int, action: str) -> RobotRecord:
        """The robot ``robot_id`` of ``project`` (or a system robot), if ``action`` is allowed."""
        if project is None:
            self._require_system_admin(caller)
            project_id = None
        else:
            project_id = self._access.require(caller, project, "robot", action).id
        robot = self._store.robot(robot_id)
        if robot is None or robot.project_id != project_id:
            raise NotFoundError(f"robot {robot_id} not found")
        return robot

    def update(
        self,
        caller: Identity,
        project: str | None,
        robot_id: int,
        *,
        disabled: bool | None,
        expires_at: datetime | None,
        rotate: bool,
    ) -> tuple[RobotRecord, str | None]:
        """Disable/enable, change expiry, or rotate the secret (returned once)."""
        self.get(caller, project, robot_id, "update")
        secret = secrets.token_urlsafe(32) if rotate else None
        hashed = hash_password(secret) if secret else None
        self._store.update_robot(
            robot_id, secret_hash=hashed, disabled=disabled, expires_at=expires_at
        )
        return self.get(caller, project, robot_id, "read"), secret

    def delete(self, caller: Identity, project: str | None, robot_id: int) -> None:
        self.get(caller, project, robot_id, "delete")
        self._store.delete_robot(robot_id)
