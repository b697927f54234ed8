"""Projects: the tenants. Creating one prepares its storage; deleting one removes it."""

from __future__ import annotations

from core import events
from core.errors import ConflictError, NotFoundError
from core.names import validate_project_name
from core.ports import BlobStore, Metadata
from core.records import ProjectRecord


class ProjectService:
    """Create, list, read and delete projects.

    Deletion removes the metadata rows first, then the tenant's objects: if the
    storage step fails, what remains is garbage without rows, never rows without data.
    """

    def __init__(self, metadata: Metadata, store: BlobStore) -> None:
        self._metadata = metadata
        self._store = store

    def create(self, name: str, public: bool) -> ProjectRecord:
        validate_project_name(name)
        storage_id = self._store.new_tenant_id(name)
        self._store.create_tenant(storage_id)
        with self._metadata.write() as session:
            project = session.projects.add(name, public, storage_id)
            session.commit()
        if project is None:
            self._store.delete_tenant(storage_id)
            raise ConflictError(f"project {name!r} already exists")
        return project

    def ensure(self, name: str) -> ProjectRecord:
        """The project ``name``, created (private) if it does not exist yet."""
        with self._metadata.read() as session:
            existing = session.projects.get(name)
        if existing is not None:
            return existing
        try:
            return self.create(name, public=False)
        except ConflictError:
            return self.get(name)

    def get(self, name: str) -> ProjectRecord:
        with self._metadata.read() as session:
            project = session.projects.get(name)
        if project is None:
            raise NotFoundError(f"project {name!r} not found")
        return project

    def find(self, name: str) -> ProjectRecord | None:
        with self._metadata.read() as session:
            return session.projects.get(name)

    def list(self, last: str | None, limit: int) -> list[ProjectRecord]:
        with self._metadata.read() as session:
            return session.projects.page(last, limit, public_only=False)

    def delete(self, name: str) -> None:
        with self._metadata.write() as session:
            project = session.projects.get(name)
            if project is None:
                raise NotFoundError(f"project {name!r} not found")
            session.projects.delete(project.id)
            session.outbox.add(events.PROJECT_DELETED, project_id=project.id, data=project.name)
            session.commit()
        self._store.delete_tenant(project.storage_id)
