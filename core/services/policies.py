"""Reading and replacing a project's policy documents (immutability, quota, retention)."""

from __future__ import annotations

from datetime import UTC, datetime

from core.control_records import Usage
from core.errors import NotFoundError
from core.ports import Metadata, MetadataSession


class PolicyService:
    """Per-project JSON policy documents, validated by the caller's model."""

    def __init__(self, metadata: Metadata) -> None:
        self._metadata = metadata

    @staticmethod
    def _project_id(session: MetadataSession, name: str) -> int:
        project = session.project(name)
        if project is None:
            raise NotFoundError(f"project {name!r} not found")
        return project.id

    def get(self, project: str, kind: str) -> str | None:
        """The stored document, or ``None`` when the project has none."""
        with self._metadata.read() as session:
            return session.policy(self._project_id(session, project), kind)

    def put(self, project: str, kind: str, body: str) -> None:
        """Replace the document (takes effect for every later request)."""
        with self._metadata.write() as session:
            session.set_policy(self._project_id(session, project), kind, body, datetime.now(UTC))
            session.commit()

    def usage(self, project: str) -> Usage:
        """The project's exact current usage, derived from its rows."""
        with self._metadata.read() as session:
            return session.usage(self._project_id(session, project))
