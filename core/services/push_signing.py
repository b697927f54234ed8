"""Signing what a project accepts: images tagged by a push, when its trust policy asks.

A project whose trust policy has ``sign_pushes`` gets the registry's signature
(:class:`core.services.registry_signing.RegistrySigner`: cosign's and notation's formats,
the project's key) on every image or index pushed into it by tag. Run by the trust
subscriber's activity for the ``tag.created`` and ``tag.moved`` events of its batch (a
push by tag writes one, naming the digest), after the batch's verification. Not signed:
manifests pushed by digest only (an index's platform images, which the index's signature
covers), signatures, attestations, SBOMs and other referrers (anything with a
``subject`` or a cosign or referrers-schema tag), and a manifest gone or re-tagged
elsewhere since. Idempotent: the signer adds a signature of the project's active key
only where there is none, so a retried batch signs nothing twice.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable

from core import events
from core.errors import InvalidInputError
from core.event_batches import EventValue
from core.names import RepositoryName
from core.ports import Clock, Metadata
from core.services.registry_signing import RegistrySigner
from core.services.repositories import RepositoryService
from core.trust_gate import is_trust_artifact
from core.trust_policy import parse_document
from core.trust_ports import TrustStore

logger = logging.getLogger(__name__)

#: The events of a tag set to a manifest (by a push, or a tag ``PUT``).
_TAG_SET = frozenset({events.TAG_CREATED, events.TAG_MOVED})
#: Tags of cosign's attachments and of the referrers tag schema: ``sha256-<hex>[.sig]``.
_DIGEST_TAG_PREFIX = "sha256-"


class PushSigner:
    """Signs the images a batch's push events name (see the module docstring)."""

    def __init__(
        self,
        metadata: Metadata,
        repositories: RepositoryService,
        store: TrustStore,
        signer: RegistrySigner,
        clock: Clock,
    ) -> None:
        self._metadata, self._repositories = metadata, repositories
        self._store, self._signer, self._clock = store, signer, clock

    def handle(self, batch: Iterable[EventValue], progress: Callable[[], None]) -> int:
        """Sign every pushed image the events name in a signing project; how many."""
        pushes = [e for e in batch if _candidate(e)]
        if not pushes:
            return 0
        signing = self._signing_projects()
        signed = 0
        for event in pushes:
            if event.project_id in signing and self._sign(event):
                signed += 1
                progress()
        return signed

    def _signing_projects(self) -> set[int]:
        projects = set()
        for stored in self._store.policies():
            try:
                if parse_document(stored.document).sign_pushes:
                    projects.add(stored.project_id)
            except InvalidInputError:
                logger.warning("trust policy of %s cannot be read", stored.project)
        return projects

    def _sign(self, event: EventValue) -> bool:
        repository, digest = str(event.repository), str(event.digest)
        with self._metadata.read() as session:
            repo = session.repositories.get(repository)
            manifest = None if repo is None else session.manifests.get(repo.id, digest)
            current = None if repo is None else session.tags.target(repo.id, str(event.tag))
        if repo is None or manifest is None or current != digest:
            return False  # deleted or re-tagged since: the newer push has its own event
        if is_trust_artifact(manifest):
            return False
        push_target = self._repositories.push_target(
            RepositoryName.parse(repository), create_project=False
        )
        self._signer.sign(repo, push_target, manifest, self._clock.now())
        return True


def _candidate(event: EventValue) -> bool:
    return (
        event.kind in _TAG_SET
        and event.project_id is not None
        and event.repository is not None
        and event.digest is not None
        and event.tag is not None
        and not event.tag.startswith(_DIGEST_TAG_PREFIX)
    )
