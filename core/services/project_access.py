"""Projects as callers see them: who may create, list, read, update and delete.

Any user (local or OIDC) may create a project and becomes its admin; robots and
workloads may not. Listing shows the projects the caller may read. Reading, updating
and deleting check the caller's role; a project the caller cannot read answers 404.
"""

from __future__ import annotations

from core.access import Identity, IdentityKind
from core.errors import ForbiddenError, InvalidInputError, RegistryError
from core.identity_ports import IdentityStore
from core.records import ProjectRecord
from core.services.access_control import AccessControl
from core.services.projects import ProjectService

_SCAN_MAX = 10_000


class ProjectAccess:
    def __init__(
        self, projects: ProjectService, access: AccessControl, store: IdentityStore
    ) -> None:
        self._projects, self._access, self._store = projects, access, store

    def create(self, caller: Identity, name: str, public: bool) -> ProjectRecord:
        if caller.kind not in (IdentityKind.USER, IdentityKind.OIDC_USER) and not caller.is_admin:
            raise ForbiddenError("only users create projects")
        try:
            project = self._projects.create(name, public)
        except RegistryError as exc:
            raise InvalidInputError(
                f"{exc.message}: lower-case letters and digits, single . _ - between them, "
                "at most 63 characters",
                field="name",
            ) from exc
        if not caller.is_admin:
            self._store.add_member(project.id, "user", caller.subject, "admin")
        return project

    def list(self, caller: Identity, last: str | None, limit: int) -> list[ProjectRecord]:
        if caller.is_admin:
            return self._projects.list(last, limit)
        visible = [
            project
            for project in self._projects.list(last, _SCAN_MAX)
            if ("project", "read") in self._access.permissions(caller, project)
        ]
        return visible[:limit]

    def read(self, caller: Identity, name: str) -> ProjectRecord:
        return self._access.require(caller, name, "project", "read")

    def update(self, caller: Identity, name: str, public: bool | None) -> ProjectRecord:
        self._access.require(caller, name, "project", "update")
        if public is not None:
            self._store.set_project_public(name, public)
        return self._projects.get(name)

    def delete(self, caller: Identity, name: str) -> None:
        self._access.require(caller, name, "project", "delete")
        self._projects.delete(name)
