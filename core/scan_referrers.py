"""Attach an image's SBOMs as OCI referrers, through the same services a client push uses.

For every image of a scanned artifact (each platform of an index) with an inventory, one
CycloneDX and one SPDX document are pushed into the image's repository as artifacts.
An index whose every platform image has an inventory also gets one document of each
kind of its own (``subject`` = the index; ``core.scan_sbom.cyclonedx_index`` and
``spdx_index``: each platform image with its platform, digest and packages). Each is:
``artifactType`` = the document's media type, the empty config, one layer holding the
document (titled with its file name) and ``subject`` = the image. They are ordinary
manifests and blobs of the repository, so GC, retention, quotas, replication and project
deletion treat them as every referrer of their subject (see ``core.services.manifests``).

Idempotent: a document type already attached to the image is not attached again, and the
documents of one stored inventory are byte for byte the same (ids and times derive from
the image digest and the inventory's time), so even two scans attaching at once push the
same manifests: one document of each type per image.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Final

from core.digests import Digest
from core.mediatypes import OCI_MANIFEST
from core.names import Reference, RepositoryName
from core.ports import Clock
from core.records import RepositoryRecord
from core.sbom_formats import FILE_NAMES, SbomSubject
from core.scan_records import Inventory, ScanStore, ScanTarget, StoredArtifact
from core.scan_service import Artifacts, members_of
from core.services.manifests import ManifestService
from core.services.repositories import RepositoryService
from core.services.uploads import UploadService

EMPTY_CONFIG: Final = "application/vnd.oci.empty.v1+json"
EMPTY: Final = b"{}"


class SbomPublisher:
    """Pushes SBOM referrers of scanned images."""

    def __init__(
        self,
        artifacts: Artifacts,
        store: ScanStore,
        repositories: RepositoryService,
        uploads: UploadService,
        manifests: ManifestService,
        clock: Clock,
    ) -> None:
        self._artifacts, self._store = artifacts, store
        self._repositories, self._uploads, self._manifests = repositories, uploads, manifests
        self._clock = clock

    def _located(
        self, target: ScanTarget
    ) -> tuple[tuple[StoredArtifact, str], RepositoryName, RepositoryRecord] | None:
        """``target``'s stored manifest, name and repository (``None``: gone since)."""
        stored = self._artifacts.manifest(target.repository, target.digest)
        if stored is None:
            return None
        name = RepositoryName.parse(target.repository)
        repository = self._repositories.find(name)
        if repository is None:
            return None
        return stored, name, repository

    def attach(self, target: ScanTarget, beat: Callable[[], None] = lambda: None) -> int:
        """Attach the missing documents of ``target``'s images; returns how many."""
        # NOTE: the builders' libraries load with the first document made (core.sbom_formats)
        from core.scan_sbom import IMAGE_BUILDERS, INDEX_BUILDERS  # noqa: PLC0415

        found = self._located(target)
        if found is None:
            return 0
        stored, name, repository = found
        attached = 0
        members = members_of(stored[0])
        images: list[Inventory] = []
        for member in members:
            inventory = self._store.inventory(target.project_id, member.digest)
            image = self._artifacts.manifest(target.repository, member.digest)
            if inventory is None or inventory.failure is not None or image is None:
                continue
            # NOTE: the platform is the index's word; an image scanned alone has none stored
            images.append(replace(inventory, platform=member.platform or inventory.platform))
            subject = {
                "mediaType": image[0].media_type,
                "digest": member.digest,
                "size": len(image[0].payload),
            }
            for media_type, build in IMAGE_BUILDERS.items():
                if self._attached(repository, member.digest, media_type):
                    continue
                when = inventory.analyzed_at or self._clock.now()
                document = build(SbomSubject(target.repository, member.digest, when), inventory)
                self._push(name, media_type, document, subject, when.isoformat())
                attached += 1
                beat()
        is_index = [m.digest for m in members] != [target.digest]
        if is_index and images and len(images) == len(members):
            index = {
                "mediaType": stored[0].media_type,
                "digest": target.digest,
                "size": len(stored[0].payload),
            }
            times = [i.analyzed_at for i in images if i.analyzed_at is not None]
            when = max(times) if times else self._clock.now()
            for media_type, build_index in INDEX_BUILDERS.items():
                if self._attached(repository, target.digest, media_type):
                    continue
                document = build_index(SbomSubject(target.repository, target.digest, when), images)
                self._push(name, media_type, document, index, when.isoformat())
                attached += 1
                beat()
        return attached

    def attach_documents(self, target: ScanTarget, documents: Mapping[str, bytes]) -> int:
        """Attach SBOM documents made elsewhere (a delegated scan's scanner) to ``target``.

        ``documents``: media type (``FILE_NAMES``' keys) to the document; a type already
        attached is skipped. Returns how many were attached.
        """
        found = self._located(target)
        if found is None:
            return 0
        stored, name, repository = found
        subject = {
            "mediaType": stored[0].media_type,
            "digest": target.digest,
            "size": len(stored[0].payload),
        }
        attached = 0
        for media_type, document in documents.items():
            if media_type not in FILE_NAMES or self._attached(
                repository, target.digest, media_type
            ):
                continue
            self._push(name, media_type, document, subject, self._clock.now().isoformat())
            attached += 1
        return attached

    def _attached(self, repository: RepositoryRecord, digest: str, media_type: str) -> bool:
        found = self._manifests.referrers(repository, Digest.parse(digest), media_type)
        return bool(found["manifests"])

    def _push_blob(self, name: RepositoryName, data: bytes) -> str:
        digest = Digest.of(data, "sha256")
        target = self._repositories.push_target(name, False)
        upload = self._uploads.start(target)
        chunk = self._uploads.open_chunk(target, upload.id, 0)
        try:
            chunk.write(data)
            committed = self._uploads.commit_chunk(chunk)
        except BaseException:
            self._uploads.abort_chunk(chunk)
            self._uploads.cancel(target, upload.id)
            raise
        self._uploads.finish(target, committed, digest)
        return str(digest)

    def _push(
        self,
        name: RepositoryName,
        media_type: str,
        document: bytes,
        subject: dict[str, object],
        created: str,
    ) -> None:
        config = self._push_blob(name, EMPTY)
        layer = self._push_blob(name, document)
        manifest = {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "artifactType": media_type,
            "config": {"mediaType": EMPTY_CONFIG, "digest": config, "size": len(EMPTY)},
            "layers": [
                {
                    "mediaType": media_type,
                    "digest": layer,
                    "size": len(document),
                    "annotations": {"org.opencontainers.image.title": FILE_NAMES[media_type]},
                }
            ],
            "subject": subject,
            "annotations": {
                "org.opencontainers.image.created": created,
                "org.opencontainers.image.description": f"SBOM ({media_type}) made by Moorage",
            },
        }
        payload = json.dumps(manifest, separators=(",", ":")).encode()
        repository = self._repositories.ensure(name, create_project=False)
        reference = Reference(digest=Digest.of(payload, "sha256"))
        self._manifests.put(repository, reference, payload, OCI_MANIFEST)
