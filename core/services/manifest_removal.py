"""Deleting a stored manifest by digest inside the caller's transaction.

The one rule for every deletion by digest (``ManifestService.delete`` and retention):
an immutable tag on the manifest forbids it; what it referenced is queued for GC
review; a ``manifest.deleted`` event is written. The caller commits, so it may commit
something else together with the deletion, such as a retention run's progress.
"""

from __future__ import annotations

from core.ports import UnitOfWork
from core.records import RepositoryRecord
from core.services.changes import ChangeRecorder
from core.services.immutability import check_mutable


def remove_manifest(
    session: UnitOfWork,
    changes: ChangeRecorder,
    repository: RepositoryRecord,
    digest: str,
    *,
    by: str = "api",
) -> bool:
    """Delete the manifest in ``session``; ``False`` if the repository holds none.

    Raises:
        RegistryError: ``DENIED`` when one of its tags is immutable (nothing written).
    """
    check_mutable(session, repository, session.tags.of_manifest(repository.id, digest))
    references = session.manifests.references(repository.id, digest)
    if not session.manifests.delete(repository.id, digest):
        return False
    changes.manifest_deleted(session, repository, digest, references, by=by)
    return True
