"""The registry's own signatures of an image, with its project's key, in two formats.

:class:`RegistrySigner` signs what a signed promotion copies and what a project that
asks for it accepts on push (``core.services.push_signing``): cosign's tag format (a
layer of the ``sha256-<hex>.sig`` manifest, ``core.promotion_signing``) and notation's
(a JWS referrer, ``core.notation_signing``). Each is made once per key: a signature of
the project's active key already there is left alone, so a retried call adds nothing.
The key is made on its first use (``core.services.promotion_keys``).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

from core.digests import Digest
from core.errors import OCIErrorCode, RegistryError
from core.mediatypes import OCI_MANIFEST
from core.names import Reference
from core.notation_signing import EMPTY_CONFIG, jws_envelope, signed_by
from core.notation_signing import signature_manifest as notation_manifest
from core.ports import Metadata
from core.promotion_signing import (
    fingerprint,
    has_signature_of,
    sign,
    signature_manifest,
    signature_tag,
    simple_signing_payload,
)
from core.records import ManifestRecord, PushTarget, RepositoryRecord
from core.services.manifests import ManifestService
from core.services.promotion_keys import PromotionKeys
from core.services.uploads import UploadService


def put_small_blobs(
    metadata: Metadata,
    uploads: UploadService,
    target: RepositoryRecord,
    push_target: PushTarget,
    blobs: dict[str, bytes],
) -> None:
    """Upload small blobs the repository does not link yet (a new upload each)."""
    for digest, data in blobs.items():
        with metadata.read() as session:
            if session.blobs.linked(target.id, digest) is not None:
                continue
        upload = uploads.start(push_target)
        chunk = uploads.open_chunk(push_target, upload.id, 0)
        try:
            chunk.write(data)
        except BaseException:
            uploads.abort_chunk(chunk)
            uploads.cancel(push_target, upload.id)
            raise
        upload = uploads.commit_chunk(chunk)
        uploads.finish(push_target, upload, Digest.parse(digest))


class RegistrySigner:
    """Signs images with their project's key (see the module docstring)."""

    def __init__(
        self,
        metadata: Metadata,
        manifests: ManifestService,
        uploads: UploadService,
        keys: PromotionKeys | None,
    ) -> None:
        """``keys``: the projects' signing keys (``None``: signing is refused)."""
        self._metadata, self._manifests, self._uploads = metadata, manifests, uploads
        self._keys = keys

    def sign(
        self,
        target: RepositoryRecord,
        push_target: PushTarget,
        image: ManifestRecord,
        signed_at: datetime,
    ) -> None:
        """Sign ``image`` of ``target`` in cosign's and notation's formats (each once)."""
        if self._keys is None:
            raise RegistryError(OCIErrorCode.UNSUPPORTED, "registry signing is not configured")
        private, public = self._keys.ensure(target.project_id)
        key_id = fingerprint(public)
        self._sign_cosign(target, push_target, image.digest, private, key_id)
        moment = signed_at if signed_at.tzinfo else signed_at.replace(tzinfo=UTC)
        self._sign_notation(target, push_target, image, private, key_id, moment)

    def _sign_cosign(
        self,
        target: RepositoryRecord,
        push_target: PushTarget,
        digest: str,
        private: bytes,
        key_id: str,
    ) -> None:
        """Add the project's signature of ``digest`` to its ``.sig`` manifest (once)."""
        tag = signature_tag(digest)
        with self._metadata.read() as session:
            current = session.tags.target(target.id, tag)
            stored = None if current is None else session.manifests.get(target.id, current)
        existing = None if stored is None else json.loads(stored.payload)
        if has_signature_of(existing, key_id):
            return
        payload = simple_signing_payload(target.name, digest)
        config, manifest = signature_manifest(existing, payload, sign(private, payload), key_id)
        blobs = {str(Digest.of(b)): b for b in (payload, config)}
        put_small_blobs(self._metadata, self._uploads, target, push_target, blobs)
        self._manifests.put(target, Reference(tag=tag), manifest, OCI_MANIFEST)

    def _sign_notation(
        self,
        target: RepositoryRecord,
        push_target: PushTarget,
        image: ManifestRecord,
        private: bytes,
        key_id: str,
        signed_at: datetime,
    ) -> None:
        """Attach the project's notation signature of ``image`` as a referrer (once)."""
        assert self._keys is not None  # noqa: S101 - checked by sign()
        with self._metadata.read() as session:
            referrers = list(session.manifests.referrers(target.id, image.digest, None))
        if any(signed_by(json.loads(r.payload), key_id) for r in referrers):
            return
        certificate = self._keys.certificate(target.project_id)
        assert certificate is not None  # noqa: S101 - ensure() made the key
        subject = {"mediaType": image.media_type, "digest": image.digest, "size": image.size}
        envelope = jws_envelope(private, certificate, subject, signed_at)
        manifest = notation_manifest(envelope, subject, certificate, key_id, signed_at)
        blobs = {str(Digest.of(b)): b for b in (EMPTY_CONFIG, envelope)}
        put_small_blobs(self._metadata, self._uploads, target, push_target, blobs)
        self._manifests.put(target, Reference(digest=Digest.of(manifest)), manifest, OCI_MANIFEST)
