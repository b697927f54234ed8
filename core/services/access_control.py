"""Who may do what in which project: roles, groups, explicit permissions, public projects.

The single place where a caller's rights in a project are computed; the token service
(registry actions) and the management API (resource/action pairs) both ask it.
Consistency: rights are read from the database on every call, so a membership change
or a removed robot takes effect for the next token or management request.
"""

from __future__ import annotations

import fnmatch
from datetime import UTC, datetime

from core.access import Identity, IdentityKind
from core.errors import ForbiddenError, NotFoundError
from core.identity_ports import IdentityStore
from core.rbac import MATRIX, Permission, Role, permissions_of, registry_actions
from core.records import ProjectRecord
from core.services.projects import ProjectService

_ALL = frozenset().union(*MATRIX.values())
_CATALOG_BATCH, _CATALOG_MAX_BATCHES = 500, 40


def _placeholder(name: str) -> ProjectRecord:
    """A private project that exists nowhere (no row has id 0)."""
    return ProjectRecord(0, name, False, "", datetime.min.replace(tzinfo=UTC))


class AccessControl:
    """Computes rights; raises ``NotFoundError`` for projects the caller may not see."""

    def __init__(self, store: IdentityStore, projects: ProjectService, group_prefix: str) -> None:
        self._store = store
        self._projects = projects
        self._group_prefix = group_prefix

    def member_entries(self, identity: Identity) -> list[tuple[str, str]]:
        """The ``(kind, name)`` membership keys that stand for ``identity``."""
        if identity.kind in (IdentityKind.USER, IdentityKind.OIDC_USER):
            entries = [("user", identity.subject)]
            return entries + [("group", group) for group in sorted(identity.groups)]
        if identity.kind is IdentityKind.ROBOT:
            return [("robot", identity.subject)]
        return []

    def roles(self, identity: Identity, project: ProjectRecord) -> set[Role]:
        """Roles from memberships and from ``<prefix><project>/<role>`` group paths."""
        found = {Role(r) for r in self._store.roles(project.id, self.member_entries(identity))}
        for group in identity.groups:
            if not group.startswith(self._group_prefix):
                continue
            name, _, role = group[len(self._group_prefix) :].partition("/")
            if name == project.name and role in Role.__members__.values():
                found.add(Role(role))
        return found

    def permissions(self, identity: Identity, project: ProjectRecord) -> frozenset[Permission]:
        if identity.is_admin:
            return _ALL
        held = permissions_of(self.roles(identity, project), project.public)
        if identity.permissions:
            # NOTE: explicit registry permissions let their holder see the project.
            held |= {("project", "read")}
        return held

    def repository_rights(
        self, identity: Identity, project: ProjectRecord, repository: str
    ) -> frozenset[str]:
        """Registry actions on ``repository``: roles plus matching explicit permissions."""
        actions = set(registry_actions(self.permissions(identity, project)))
        for pattern, granted in identity.permissions:
            if fnmatch.fnmatchcase(repository, pattern):
                actions |= granted
        return frozenset(actions)

    def require(
        self, identity: Identity, project_name: str, resource: str, action: str
    ) -> ProjectRecord:
        """The project, if ``identity`` may perform ``action`` on ``resource`` in it.

        Raises ``NotFoundError`` when the project does not exist or the caller may not
        even read it (the two answer alike), ``ForbiddenError`` when the caller sees
        the project but its role does not allow the action.
        """
        project = self._projects.find(project_name)
        # NOTE: a missing project is judged like a hidden one (the same membership
        # query), so neither the answer nor its cost tells whether the project exists.
        held = self.permissions(identity, project or _placeholder(project_name))
        if project is None or ("project", "read") not in held:
            raise NotFoundError(f"project {project_name!r} not found")
        if (resource, action) not in held:
            raise ForbiddenError(f"{resource}:{action} is not allowed in {project_name!r}")
        return project

    def readable_repositories(self, identity: Identity, last: str | None, limit: int) -> list[str]:
        """The catalog page of repositories ``identity`` may pull, sorted by name.

        Non-admins get the repositories the same rule as the token service lets them
        pull; at most ``_CATALOG_BATCH * _CATALOG_MAX_BATCHES`` names are scanned per page.
        """
        if identity.is_admin:
            return self._store.repository_names(None, last, limit)
        result: list[str] = []
        verdicts: dict[str, bool] = {}
        cursor = last
        for _ in range(_CATALOG_MAX_BATCHES):
            batch = self._store.repository_names(None, cursor, _CATALOG_BATCH)
            for name in batch:
                if self._can_pull(identity, name, verdicts):
                    result.append(name)
                    if len(result) == limit:
                        return result
            if len(batch) < _CATALOG_BATCH:
                break
            cursor = batch[-1]
        return result

    def _can_pull(self, identity: Identity, name: str, verdicts: dict[str, bool]) -> bool:
        project_name = name.partition("/")[0]
        key = name if identity.permissions else project_name
        if key not in verdicts:
            project = self._projects.find(project_name)
            verdicts[key] = project is not None and (
                project.public or "pull" in self.repository_rights(identity, project, name)
            )
        return verdicts[key]


def require_system_admin(identity: Identity) -> None:
    """Refuse (``ForbiddenError``) anyone but a system administrator.

    Robots never administer the system, whatever their flag says.
    """
    if not identity.is_admin or identity.kind is IdentityKind.ROBOT:
        raise ForbiddenError("system administrator rights are required")
