"""Content trust for the management API: project policies, an image's results and verdict.

Permissions (Harbor's matrix, ``core.rbac``): reading a project's policy needs
``configuration:read`` (every member role), changing it ``configuration:update``
(project admins; Harbor keeps content trust in the project configuration); reading an
image's signatures, attestations and verdict needs ``accessory:list`` (as Harbor's
accessories: signatures and SBOMs of an artifact).

A policy change is stored with its outbox event in one transaction; the trust
subscriber then verifies the project's images again (``core.trust_verify``), and the
pull gate of this process reloads its policies at once (others within their cache time).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from core.access import Identity
from core.errors import NotFoundError
from core.ports import Metadata
from core.services.access_control import AccessControl
from core.trust_policy import Verdict, compile_policy, evaluate, parse_document
from core.trust_ports import ResultRecord, StoredPolicy, TrustStore


@dataclass(frozen=True, slots=True)
class ImageTrust:
    """An image's stored results and its verdict under the current policy."""

    repository: str
    digest: str
    results: list[ResultRecord]
    #: ``None`` when the project has no policy.
    verdict: Verdict | None
    policy_revision: int | None


class TrustService:
    """Policies and results, with the caller's rights checked on every call."""

    def __init__(
        self,
        store: TrustStore,
        access: AccessControl,
        metadata: Metadata,
        changed: Callable[[], None],
    ) -> None:
        self._store, self._access, self._metadata, self._changed = store, access, metadata, changed

    def policy(self, caller: Identity, project: str) -> StoredPolicy:
        record = self._access.require(caller, project, "configuration", "read")
        stored = self._store.policy(record.id)
        if stored is None:
            raise NotFoundError(f"project {project!r} has no trust policy")
        return stored

    def set_policy(self, caller: Identity, project: str, data: Any) -> StoredPolicy:
        """Check and store a policy document (replacing any); raises on a bad field."""
        record = self._access.require(caller, project, "configuration", "update")
        document = parse_document(data)
        saved = self._store.save_policy(
            record.id, document.model_dump(mode="json"), caller.subject or "anonymous"
        )
        self._changed()
        return saved

    def delete_policy(self, caller: Identity, project: str) -> None:
        record = self._access.require(caller, project, "configuration", "update")
        if not self._store.delete_policy(record.id, caller.subject or "anonymous"):
            raise NotFoundError(f"project {project!r} has no trust policy")
        self._changed()

    def image(self, caller: Identity, project: str, repository: str, reference: str) -> ImageTrust:
        """The results of ``repository`` (in ``project``) at a tag or digest."""
        record = self._access.require(caller, project, "accessory", "list")
        if repository.partition("/")[0] != project:
            raise NotFoundError(
                f"repository {repository!r} is not in {project!r}", field="repository"
            )
        digest = self._resolve(repository, reference)
        stored = self._store.policy(record.id)
        results = self._store.results(repository, digest)
        if stored is None:
            return ImageTrust(repository, digest, results, None, None)
        policy = compile_policy(record.id, project, stored.revision, stored.document)
        verified = self._store.verified(repository, digest)
        return ImageTrust(repository, digest, results, evaluate(policy, verified), stored.revision)

    def _resolve(self, repository: str, reference: str) -> str:
        with self._metadata.read() as session:
            repo = session.repositories.get(repository)
            if repo is None:
                raise NotFoundError(f"repository {repository!r} not found", field="repository")
            if reference.startswith("sha256:"):
                found = session.manifests.get(repo.id, reference)
                digest = None if found is None else found.digest
            else:
                digest = session.tags.target(repo.id, reference)
        if digest is None:
            raise NotFoundError(f"{repository}:{reference} not found", field="reference")
        return digest
