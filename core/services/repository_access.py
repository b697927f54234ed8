"""A project's repositories and tags as management-API callers see and change them.

Listing a project's repositories needs ``repository:list`` in it (or, for robots and
workloads, ``pull`` on each listed repository). Tags need the rights the token service
grants on the same repository (``core.access.allowed_repository_actions``): listing
needs ``pull``, deleting needs ``delete`` (project admins and maintainers, robots and
workloads granted it). A project the caller cannot read answers exactly like one that
does not exist. Deleting a tag is the OCI ``DELETE /v2/<name>/manifests/<tag>``: the
same immutability check and the same ``tag.deleted`` outbox event, in the transaction
that removes the tag.
"""

from __future__ import annotations

from core.access import DELETE, PULL, Identity, allowed_repository_actions
from core.errors import (
    ForbiddenError,
    InvalidInputError,
    InvalidNameError,
    NotFoundError,
    OCIErrorCode,
    RegistryError,
)
from core.identity_ports import IdentityStore
from core.names import Reference, RepositoryName, is_valid_tag, validate_tag
from core.records import ManifestRecord, ProjectRecord, RepositoryRecord
from core.services.access_control import AccessControl
from core.services.manifests import ManifestService
from core.services.repositories import RepositoryService

_BATCH, _MAX_BATCHES = 500, 20


class RepositoryAccess:
    """List repositories and tags; delete tags; each after checking the caller's rights."""

    def __init__(
        self,
        access: AccessControl,
        store: IdentityStore,
        repositories: RepositoryService,
        manifests: ManifestService,
    ) -> None:
        self._access, self._store = access, store
        self._repositories, self._manifests = repositories, manifests

    def _actions(self, caller: Identity, project: ProjectRecord, name: str) -> frozenset[str]:
        return allowed_repository_actions(
            caller,
            project,
            create_on_push=False,
            rights=self._access.repository_rights,
            repository=name,
        )

    def names(self, caller: Identity, project: str, last: str | None, limit: int) -> list[str]:
        """Full names of the project's repositories the caller may pull, sorted, after ``last``.

        Callers whose rights depend on the repository (robots, workloads) get the
        readable names among at most ``_BATCH * _MAX_BATCHES`` scanned per page.
        """
        record = self._access.require(caller, project, "project", "read")
        if ("repository", "list") in self._access.permissions(caller, record):
            return self._store.repository_names({record.id}, last, limit)
        found: list[str] = []
        cursor = last
        for _ in range(_MAX_BATCHES):
            batch = self._store.repository_names({record.id}, cursor, _BATCH)
            found += [name for name in batch if PULL in self._actions(caller, record, name)]
            if len(found) >= limit or len(batch) < _BATCH:
                break
            cursor = batch[-1]
        return found[:limit]

    def _repository(
        self, caller: Identity, project: str, path: str, action: str
    ) -> RepositoryRecord:
        record = self._access.require(caller, project, "project", "read")
        try:
            name = RepositoryName.parse(f"{project}/{path}")
        except RegistryError as exc:
            raise InvalidNameError(
                "a repository path is lower-case components joined by single slashes",
                field="repository",
            ) from exc
        if action not in self._actions(caller, record, str(name)):
            raise ForbiddenError(f"{action} is not allowed on {str(name)!r}")
        repository = self._repositories.find(name)
        if repository is None:
            raise NotFoundError(f"repository {str(name)!r} not found")
        return repository

    def tags(
        self, caller: Identity, project: str, path: str, last: str | None, limit: int
    ) -> list[str]:
        """Tags of repository ``<project>/<path>``, sorted, after ``last``."""
        repository = self._repository(caller, project, path, PULL)
        return self._manifests.tags(repository, last, limit)

    def tag(self, caller: Identity, project: str, path: str, tag: str) -> ManifestRecord:
        """The manifest tag ``tag`` of ``<project>/<path>`` points to (needs ``pull``).

        Reading it does not count as a pull (retention's pull times stay as they were).
        """
        repository = self._repository(caller, project, path, PULL)
        if not is_valid_tag(tag):
            raise InvalidInputError("tags are 1 to 128 of letters, digits, _ . -", field="tag")
        try:
            return self._manifests.read(RepositoryName.parse(repository.name), Reference(tag=tag))
        except RegistryError as exc:
            if exc.code is OCIErrorCode.MANIFEST_UNKNOWN:
                raise NotFoundError(f"tag {tag!r} not found in {repository.name!r}") from exc
            raise

    def delete_tag(self, caller: Identity, project: str, path: str, tag: str) -> None:
        """Remove one tag (its manifest stays); immutable tags are refused.

        Raises ``RegistryError`` ``DENIED`` (403) naming the immutability rule, exactly
        as the OCI delete does, and ``NotFoundError`` for an unknown tag.
        """
        repository = self._repository(caller, project, path, DELETE)
        try:
            self._manifests.delete(repository, Reference(tag=validate_tag(tag)))
        except RegistryError as exc:
            if exc.code is OCIErrorCode.MANIFEST_UNKNOWN:
                raise NotFoundError(f"tag {tag!r} not found in {repository.name!r}") from exc
            raise
