"""Repositories and their blobs, as seen through the name a client uses."""

from __future__ import annotations

from core import events
from core.digests import Digest
from core.errors import OCIErrorCode, RegistryError
from core.names import RepositoryName
from core.ports import Metadata, NowaitReads, ReadWouldWait
from core.records import BlobRecord, ProjectRecord, PushTarget, RepositoryRecord
from core.services.changes import ChangeRecorder
from core.services.projects import ProjectService


class RepositoryService:
    """Resolve repositories by name; read and unlink their blobs; list the catalog.

    A digest resolves in a repository only through that repository's own link rows:
    holding a blob in one repository never makes it readable from another.
    """

    def __init__(
        self,
        metadata: Metadata,
        projects: ProjectService,
        changes: ChangeRecorder,
        *,
        nowait: NowaitReads | None,
    ) -> None:
        """``nowait`` (reads that never wait, SQLite only) is optional: ``None`` leaves it out."""
        self._metadata = metadata
        self._changes = changes
        self._projects = projects
        #: Reads that never wait (SQLite), for :meth:`find_nowait`.
        self._nowait = nowait

    def find(self, name: RepositoryName) -> RepositoryRecord | None:
        with self._metadata.read() as session:
            return session.repositories.get(str(name))

    def find_nowait(self, name: RepositoryName) -> RepositoryRecord | None:
        """:meth:`find` for a caller on an event loop thread, if it can run without waiting.

        ``None`` when there is no such repository, when the database offers no such reads,
        or when this one would wait: the caller then uses :meth:`ensure` or :meth:`find`
        on a worker thread.
        """
        if self._nowait is None:
            return None
        try:
            return self._nowait.repository_nowait(str(name))
        except ReadWouldWait:
            return None

    def require(self, name: RepositoryName) -> RepositoryRecord:
        repository = self.find(name)
        if repository is None:
            raise RegistryError(OCIErrorCode.NAME_UNKNOWN).with_detail({"name": str(name)})
        return repository

    def push_target(self, name: RepositoryName, create_project: bool) -> PushTarget:
        """Where blobs for ``name`` are uploaded; creates no repository row.

        The project must exist unless ``create_project`` allows creating it. The
        repository's row appears with its first linked blob (``UploadService``) or
        manifest (:meth:`ensure`).
        """
        project = self._project_for_push(name, create_project)
        return PushTarget(project.id, str(name), project.storage_id)

    def ensure(self, name: RepositoryName, create_project: bool) -> RepositoryRecord:
        """The repository ``name`` for a push, created on first use.

        The project must exist unless ``create_project`` allows creating it.
        """
        existing = self.find(name)
        if existing is not None:
            return existing
        project = self._project_for_push(name, create_project)
        with self._metadata.write() as session:
            repository = session.repositories.ensure(project.id, str(name))
            session.commit()
        return RepositoryRecord(repository.id, project.id, str(name), project.storage_id)

    def _project_for_push(self, name: RepositoryName, create_project: bool) -> ProjectRecord:
        if create_project:
            return self._projects.ensure(name.project)
        project = self._projects.find(name.project)
        if project is None:
            raise RegistryError(
                OCIErrorCode.NAME_UNKNOWN, f"project {name.project!r} does not exist"
            ).with_detail({"name": str(name)})
        return project

    def blob(self, repository: RepositoryRecord, digest: Digest) -> BlobRecord:
        with self._metadata.read() as session:
            blob = session.blobs.linked(repository.id, str(digest))
        if blob is None:
            raise RegistryError(OCIErrorCode.BLOB_UNKNOWN).with_detail({"digest": str(digest)})
        return blob

    def blob_nowait(
        self, name: RepositoryName, digest: Digest
    ) -> tuple[RepositoryRecord, BlobRecord] | None:
        """:meth:`require` and :meth:`blob` for a caller on an event loop thread.

        ``None`` when the read would wait, when the database offers no such reads, or when
        it does not find the blob linked in the repository: the caller then runs
        :meth:`require` and :meth:`blob` on a worker thread, which answer every case
        (including a missing repository or blob) as they always do.
        """
        if self._nowait is None:
            return None
        try:
            found = self._nowait.named_blob_nowait(str(name), str(digest))
        except ReadWouldWait:
            return None
        if found is None:
            return None
        repository, blob = found
        return None if blob is None else (repository, blob)

    def unlink_blob(self, repository: RepositoryRecord, digest: Digest) -> None:
        """Remove the blob from the repository; the object stays until GC decides."""
        with self._metadata.write() as session:
            removed = session.blobs.unlink(repository.id, str(digest))
            if removed:
                self._changes.blob_may_be_unreferenced(
                    session, repository, str(digest), events.LAYER_DELETE
                )
                self._changes.event(session, events.BLOB_UNLINKED, repository, digest=str(digest))
            session.commit()
        if not removed:
            raise RegistryError(OCIErrorCode.BLOB_UNKNOWN).with_detail({"digest": str(digest)})

    def catalog(self, last: str | None, limit: int, public_only: bool) -> list[str]:
        with self._metadata.read() as session:
            return session.repositories.catalog(last, limit, public_only)
