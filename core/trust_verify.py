"""Finding an image's signatures and attestations, verifying them, storing the results.

Where cosign writes them, both read for every image:

- **referrers**: manifests of the repository whose ``subject`` is the image (cosign's
  OCI 1.1 mode and its bundle format), every layer of a signature format;
- **tags**: ``sha256-<hex>.sig`` and ``sha256-<hex>.att`` in the image's repository
  (cosign's default), one signature or attestation per layer.

:meth:`TrustVerifier.verify` verifies everything found for one image with its project's
policy keys (certificates, keyless trusted roots) and replaces the image's stored
results in one transaction, with the event announcing its verdict
(``core.trust_events``); it reads only stored data and is idempotent (the trust
subscriber's activity may run it again after a crash). :meth:`TrustVerifier.handle`
maps outbox events to the images they concern.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Iterable
from typing import Any, Final

from core import events
from core.digests import Digest
from core.errors import RegistryError
from core.event_batches import EventValue
from core.ports import BlobNotFoundError, BlobStore, Clock, Metadata, UnitOfWork
from core.records import ManifestRecord, RepositoryRecord
from core.signature_formats import Entry, Finding, Limits, Target, entry_format, verify_entry
from core.subscribers import Subscriber
from core.trust_events import signature_event
from core.trust_policy import TrustPolicy, compile_policy
from core.trust_ports import TRUST_POLICY_CHANGED, Subject, TrustStore
from core.trust_settings import TrustSettings

logger = logging.getLogger(__name__)

#: The cosign tag suffixes read (signatures, attestations).
TAG_SUFFIXES = (".sig", ".att")
#: The events the trust subscriber receives.
TRUST_EVENTS = frozenset(
    {
        events.MANIFEST_PUSHED,
        events.MANIFEST_DELETED,
        events.TAG_CREATED,
        events.TAG_MOVED,
        events.TAG_DELETED,
        TRUST_POLICY_CHANGED,
    }
)


def subject_of_tag(tag: str | None) -> str | None:
    """The image digest a cosign tag (``sha256-<hex>.sig``/``.att``) belongs to."""
    if not tag or not tag.startswith("sha256-") or not tag.endswith(TAG_SUFFIXES):
        return None
    hex_part = tag[len("sha256-") : -len(".sig")]
    try:
        return str(Digest.parse(f"sha256:{hex_part}"))
    except RegistryError:
        return None


class TrustVerifier:
    """Verifies images' signatures and attestations and stores the results."""

    def __init__(
        self,
        metadata: Metadata,
        blobs: BlobStore,
        store: TrustStore,
        settings: TrustSettings,
        clock: Clock,
    ) -> None:
        self._metadata, self._blobs, self._store = metadata, blobs, store
        self._settings, self._clock = settings, clock
        self._limits = Limits(settings.envelope_max_bytes, settings.json_max_depth)

    def handle(self, batch: Iterable[EventValue], progress: Callable[[], None]) -> int:
        """Verify every image the events concern (each once per batch); return the count."""
        done: set[tuple[str, str]] = set()
        for event in batch:
            for subject in self._subjects_of(event):
                key = (subject.repository, subject.digest)
                if key not in done:
                    done.add(key)
                    self.verify(subject.repository, subject.digest)
                    progress()
        return len(done)

    def _subjects_of(self, event: EventValue) -> list[Subject]:
        if event.kind == TRUST_POLICY_CHANGED:
            if event.project_id is None:
                return []
            return self._store.subjects(event.project_id, self._settings.reverify_max)
        repository, digest = event.repository, event.digest
        tagged = subject_of_tag(event.tag)
        if repository is not None and tagged is not None:
            return [Subject(repository, tagged)]
        if repository is None or digest is None:
            return []
        return self._subjects_of_manifest(event.kind, repository, digest)

    def _subjects_of_manifest(self, kind: str, repository: str, digest: str) -> list[Subject]:
        if kind == events.MANIFEST_DELETED:
            # The deleted manifest: an image (its results go) or a signature (its
            # subjects lose it).
            known = self._store.subjects_with_artifact(repository, digest)
            return [Subject(repository, digest), *known]
        if kind == events.MANIFEST_PUSHED:
            with self._metadata.read() as session:
                repo = session.repositories.get(repository)
                manifest = None if repo is None else session.manifests.get(repo.id, digest)
            if manifest is not None and manifest.subject_digest is not None:
                return [Subject(repository, manifest.subject_digest)]
        return []

    def verify(self, repository: str, digest: str) -> list[Finding]:
        """Verify what is stored for the image ``digest`` of ``repository`` now."""
        with self._metadata.read() as session:
            repo = session.repositories.get(repository)
            image = None if repo is None else session.manifests.get(repo.id, digest)
            found = [] if repo is None or image is None else self._discover(session, repo, digest)
        subject = Subject(repository, digest)
        if repo is None or image is None:
            self._store.replace_results(0, subject, [], 0, self._clock.now())
            return []
        policy = self._policy(repo.project_id)
        keys = list(policy.keys) if policy is not None else []
        bind = policy.document.bind_repository if policy is not None else True
        anchors = list(policy.anchors) if policy is not None else []
        keyless = list(policy.keyless) if policy is not None else []
        target = Target(digest, repository, bind, image.media_type, image.size)
        findings: list[Finding] = []
        budget = self._settings.entries_max
        for manifest, location in found:
            for entry in self._entries(repo, manifest, location, budget):
                budget -= 1
                findings.extend(verify_entry(entry, target, keys, self._limits, anchors, keyless))
        revision = policy.revision if policy is not None else 0
        announce = signature_event(findings, policy)
        self._store.replace_results(
            repo.project_id, subject, findings, revision, self._clock.now(), announce
        )
        return findings

    def _policy(self, project_id: int) -> TrustPolicy | None:
        stored = self._store.policy(project_id)
        if stored is None:
            return None
        return compile_policy(project_id, stored.project, stored.revision, stored.document)

    def _discover(
        self, session: UnitOfWork, repo: RepositoryRecord, digest: str
    ) -> list[tuple[ManifestRecord, str]]:
        found = [(m, "referrer") for m in session.manifests.referrers(repo.id, digest, None)]
        hex_part = digest.partition(":")[2]
        for suffix in TAG_SUFFIXES:
            target = session.tags.target(repo.id, f"sha256-{hex_part}{suffix}")
            manifest = None if target is None else session.manifests.get(repo.id, target)
            if manifest is not None:
                found.append((manifest, "tag"))
        return found

    def _entries(
        self, repo: RepositoryRecord, manifest: ManifestRecord, location: str, limit: int
    ) -> list[Entry]:
        """Up to ``limit`` signature entries of the manifest (their blobs read if small)."""
        try:
            layers = json.loads(manifest.payload).get("layers") or []
        except (ValueError, AttributeError):
            return []
        entries: list[Entry] = []
        for index, layer in enumerate(layers[: self._settings.entries_max]):
            if len(entries) >= limit:
                break
            media_type = layer.get("mediaType") if isinstance(layer, dict) else None
            if not isinstance(media_type, str) or entry_format(media_type) is None:
                continue
            size = layer.get("size")
            size = size if isinstance(size, int) and size >= 0 else 0
            annotations = layer.get("annotations")
            entries.append(
                Entry(
                    manifest.digest,
                    index,
                    location,
                    media_type,
                    size,
                    self._read(repo, str(layer.get("digest")), size),
                    annotations if isinstance(annotations, dict) else {},
                )
            )
        return entries

    def _read(self, repo: RepositoryRecord, digest: str, size: int) -> bytes | None:
        """The blob when it is within the limit and matches its digest (else ``None``)."""
        if size > self._settings.envelope_max_bytes:
            return None
        if size == 0:
            return b""
        try:
            parsed = Digest.parse(digest)
            data = b"".join(self._blobs.read_blob(repo.storage_id, parsed, 0, size - 1))
        except (RegistryError, BlobNotFoundError):
            logger.warning("signature blob %s of %s is missing", digest, repo.name)
            return b""
        if hashlib.new(parsed.algorithm, data).hexdigest() != parsed.hex:
            return b""
        return data


def describe(finding: Finding) -> dict[str, Any]:
    """A finding as plain JSON values (API answers, activity logs)."""
    return {
        "artifact_digest": finding.artifact_digest,
        "entry": finding.index,
        "location": finding.location,
        "kind": str(finding.kind),
        "format": str(finding.format),
        "predicate_type": finding.predicate_type,
        "signer": finding.signer,
        "key_fingerprint": finding.fingerprint,
        "verified": finding.verified,
        "reason": finding.reason,
        "facts": finding.facts,
    }


#: Activity of the trust subscriber (``activities.trust``).
VERIFY_TRUST: Final = "deliver_events_trust"
#: The trust subscriber: verifies images when signatures arrive or go, and when a
#: project's policy changes (one batch workflow per batch of events, ``core.subscribers``).
TRUST_SUBSCRIBER: Final = Subscriber("trust", TRUST_EVENTS, VERIFY_TRUST)
