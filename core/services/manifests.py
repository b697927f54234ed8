"""Manifests, tags and referrers of one repository.

A manifest is accepted only when every blob it references is linked in the same
repository and every manifest an index lists is stored in it; the subject of an
artifact may be absent. The stored bytes are exactly the bytes pushed. A manifest, its
reference rows and its tag change in one transaction; concurrent tag updates leave the
tag on exactly one of the pushed manifests (the last committed).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from core import mediatypes
from core.digests import Digest
from core.errors import OCIErrorCode, RegistryError
from core.manifests import ParsedManifest, parse_manifest
from core.names import Reference
from core.ports import Metadata
from core.records import ManifestRecord, NewManifest, RepositoryRecord


@dataclass(frozen=True, slots=True)
class PushedManifest:
    digest: Digest
    subject: Digest | None


def _manifest_unknown(reference: Reference) -> RegistryError:
    return RegistryError(OCIErrorCode.MANIFEST_UNKNOWN).with_detail({"reference": str(reference)})


class ManifestService:
    """Store, read and delete manifests; list tags and referrers."""

    def __init__(self, metadata: Metadata) -> None:
        self._metadata = metadata

    def get(self, repository: RepositoryRecord, reference: Reference) -> ManifestRecord:
        with self._metadata.read() as session:
            if reference.digest is not None:
                found = session.manifest(repository.id, str(reference.digest))
            else:
                found = session.tagged_manifest(repository.id, str(reference.tag))
        if found is None:
            raise _manifest_unknown(reference)
        return found

    def put(
        self,
        repository: RepositoryRecord,
        reference: Reference,
        payload: bytes,
        content_type: str | None,
    ) -> PushedManifest:
        algorithm = reference.digest.algorithm if reference.digest else "sha256"
        digest = Digest.of(payload, algorithm)
        if reference.digest is not None and reference.digest != digest:
            raise RegistryError(OCIErrorCode.DIGEST_INVALID).with_detail(
                {"expected": str(reference.digest), "actual": str(digest)}
            )
        parsed = parse_manifest(payload, content_type)
        with self._metadata.write() as session:
            blob_ids = self._blob_ids(session.linked_blob_ids, repository, parsed)
            child_ids = self._child_ids(session.manifest_ids, repository, parsed)
            manifest_id = session.add_manifest(
                repository.id,
                NewManifest(
                    digest=str(digest),
                    media_type=parsed.media_type,
                    artifact_type=parsed.artifact_type,
                    subject_digest=str(parsed.subject) if parsed.subject else None,
                    annotations=json.dumps(parsed.annotations) if parsed.annotations else None,
                    payload=payload,
                    blob_ids=blob_ids,
                    child_ids=child_ids,
                ),
            )
            if reference.tag is not None:
                session.set_tag(repository.id, reference.tag, manifest_id)
            session.commit()
        return PushedManifest(digest, parsed.subject)

    @staticmethod
    def _blob_ids(
        lookup: Any, repository: RepositoryRecord, parsed: ParsedManifest
    ) -> tuple[int, ...]:
        wanted = sorted({str(d.digest) for d in parsed.blobs})
        found: dict[str, int] = lookup(repository.id, wanted) if wanted else {}
        missing = [digest for digest in wanted if digest not in found]
        if missing:
            raise RegistryError(OCIErrorCode.MANIFEST_BLOB_UNKNOWN).with_detail(
                {"digests": missing[:20]}
            )
        return tuple(found.values())

    @staticmethod
    def _child_ids(
        lookup: Any, repository: RepositoryRecord, parsed: ParsedManifest
    ) -> tuple[int, ...]:
        wanted = sorted({str(d.digest) for d in parsed.children})
        found: dict[str, int] = lookup(repository.id, wanted) if wanted else {}
        missing = [digest for digest in wanted if digest not in found]
        if missing:
            raise RegistryError(
                OCIErrorCode.MANIFEST_BLOB_UNKNOWN, "index references unknown manifests"
            ).with_detail({"digests": missing[:20]})
        return tuple(found.values())

    def delete(self, repository: RepositoryRecord, reference: Reference) -> None:
        with self._metadata.write() as session:
            if reference.digest is not None:
                deleted = session.delete_manifest(repository.id, str(reference.digest))
            else:
                deleted = session.delete_tag(repository.id, str(reference.tag))
            session.commit()
        if not deleted:
            raise _manifest_unknown(reference)

    def tags(self, repository: RepositoryRecord, last: str | None, limit: int) -> list[str]:
        with self._metadata.read() as session:
            return session.tags(repository.id, last, limit)

    def referrers(
        self, repository: RepositoryRecord | None, digest: Digest, artifact_type: str | None
    ) -> dict[str, Any]:
        """The referrers of ``digest`` as an image index (empty when there are none)."""
        records: list[ManifestRecord] = []
        if repository is not None:
            with self._metadata.read() as session:
                records = session.referrers(repository.id, str(digest), artifact_type)
        return {
            "schemaVersion": 2,
            "mediaType": mediatypes.OCI_INDEX,
            "manifests": [_descriptor(record) for record in records],
        }


def _descriptor(record: ManifestRecord) -> dict[str, Any]:
    descriptor: dict[str, Any] = {
        "mediaType": record.media_type,
        "digest": record.digest,
        "size": record.size,
    }
    if record.artifact_type:
        descriptor["artifactType"] = record.artifact_type
    if record.annotations:
        descriptor["annotations"] = json.loads(record.annotations)
    return descriptor
