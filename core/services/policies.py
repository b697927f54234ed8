"""Reading and replacing a project's policy documents (immutability, quota, retention)."""

from __future__ import annotations

from datetime import UTC, datetime

from core.access import Identity
from core.control_records import GcRunRecord, Usage
from core.errors import ForbiddenError, NotFoundError
from core.ports import Metadata, UnitOfWork
from core.rbac import POLICY_PERMISSIONS
from core.records import ProjectRecord
from core.services.access_control import AccessControl
from core.services.gc_runs import GcRunService, RunKey
from core.services.quota import QUOTA


class PolicyService:
    """Per-project JSON policy documents, validated by the caller's model."""

    def __init__(self, metadata: Metadata) -> None:
        self._metadata = metadata

    @staticmethod
    def _project_id(session: UnitOfWork, name: str) -> int:
        project = session.projects.get(name)
        if project is None:
            raise NotFoundError(f"project {name!r} not found")
        return project.id

    def get(self, project: str, kind: str) -> str | None:
        """The stored document, or ``None`` when the project has none."""
        with self._metadata.read() as session:
            return session.policies.get(self._project_id(session, project), kind)

    def put(self, project: str, kind: str, body: str) -> None:
        """Replace the document (takes effect for every later request)."""
        with self._metadata.write() as session:
            session.policies.set(self._project_id(session, project), kind, body, datetime.now(UTC))
            session.commit()

    def projects_with(self, kind: str) -> dict[str, str]:
        """Each project that holds a document of ``kind``, with the document."""
        found: dict[str, str] = {}
        with self._metadata.read() as session:
            for name in session.policies.policy_projects(kind):
                project = session.projects.get(name)
                body = None if project is None else session.policies.get(project.id, kind)
                if body is not None:
                    found[name] = body
        return found

    def usage(self, project: str) -> Usage:
        """The project's exact current usage, derived from its rows."""
        with self._metadata.read() as session:
            return session.policies.usage(self._project_id(session, project))


class ProjectPolicies:
    """A project's policy documents and retention runs, as one caller may use them.

    Every operation first checks the caller's rights in the named project with
    ``AccessControl.require`` and the permission ``core.rbac.POLICY_PERMISSIONS`` names
    (system administrators hold all): a project the caller cannot read answers exactly
    like one that does not exist (``NotFoundError``); a readable project whose roles do
    not allow the operation answers ``ForbiddenError``. Only system administrators
    replace a quota. Reads and writes are those of :class:`PolicyService` (a write takes
    effect for every later request).
    """

    def __init__(self, policies: PolicyService, runs: GcRunService, access: AccessControl) -> None:
        self._policies, self._runs, self._access = policies, runs, access

    def _require(self, caller: Identity, project: str, kind: str, operation: str) -> ProjectRecord:
        resource, action = POLICY_PERMISSIONS[(kind, operation)]
        return self._access.require(caller, project, resource, action)

    def read(self, caller: Identity, project: str, kind: str) -> str | None:
        """The stored document of ``kind`` (``immutability``, ``retention``, ``quota``)."""
        self._require(caller, project, kind, "read")
        return self._policies.get(project, kind)

    def write(self, caller: Identity, project: str, kind: str, body: str) -> None:
        """Replace the document of ``kind`` (``immutability`` or ``retention``)."""
        self._require(caller, project, kind, "write")
        self._policies.put(project, kind, body)

    def usage(self, caller: Identity, project: str) -> Usage:
        """The project's exact usage, for anyone who may read its quota."""
        self._require(caller, project, "quota", "read")
        return self._policies.usage(project)

    def write_quota(self, caller: Identity, project: str, body: str) -> None:
        """Replace the quota document: system administrators only."""
        self._access.require(caller, project, "project", "read")
        if not caller.is_admin:
            raise ForbiddenError("only system administrators set quotas")
        self._policies.put(project, QUOTA, body)

    def request_retention(self, caller: Identity, project: str, *, dry_run: bool) -> GcRunRecord:
        """Queue a retention run (or a dry run) of the project."""
        self._require(caller, project, "retention", "run")
        return self._runs.request_retention(project, dry_run=dry_run)

    def retention_runs(
        self, caller: Identity, project: str, before: RunKey | None, limit: int
    ) -> list[GcRunRecord]:
        """The project's retention runs, newest first, keyset-paged (``GcRunService.page``)."""
        self._require(caller, project, "retention", "history")
        return self._runs.page("retention", project, before, limit)

    def retention_run_to_run(self, caller: Identity, project: str, run_id: str) -> GcRunRecord:
        """One retention run of the project, for a caller who may run retention (cancel)."""
        self._require(caller, project, "retention", "run")
        return self.retention_run(caller, project, run_id)

    def retention_run(self, caller: Identity, project: str, run_id: str) -> GcRunRecord:
        """One retention run of the project; a run of another project answers 404."""
        self._require(caller, project, "retention", "read")
        try:
            run = self._runs.get(run_id)
        except NotFoundError:
            run = None
        if run is None or run.kind != "retention" or run.project != project:
            raise NotFoundError(f"retention run {run_id!r} not found")
        return run
