"""Copying one image with its referrers to another repository of this registry, by digest.

No byte is uploaded again: blobs are mounted with ``UploadService.mount`` (a link inside
one project, a server-side storage copy across projects), manifests are stored from
their exact stored bytes (so every digest is identical), children before their index,
the image before its referrers (OCI 1.1 ``subject`` referrers and cosign's
``sha256-<hex>.sig``/``.att``/``.sbom`` tags, to :data:`REFERRER_DEPTH`), the target tag
last.

Nothing partial on a refusal we can foresee: a target project that is a proxy cache
(refused as a push into it is), the target tag's immutability and the project's quota
(bytes of the blobs and manifests the target lacks, and their count) are checked before
anything is written. Every step is idempotent (a link or manifest that
exists is left alone), so a retried copy after a crash ends in the same state.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from core.digests import Digest
from core.errors import OCIErrorCode, RegistryError
from core.manifests import parse_manifest
from core.mediatypes import OCI_MANIFEST
from core.names import Reference, RepositoryName
from core.ports import Metadata, UnitOfWork
from core.promotion import CopyInput, CopyResult
from core.promotion_record import PromotionRecord, build_record
from core.proxy import push_refused
from core.records import ManifestRecord, PushTarget, RepositoryRecord
from core.services.immutability import check_mutable
from core.services.manifests import ManifestService
from core.services.quota import reserve
from core.services.registry_signing import RegistrySigner, put_small_blobs
from core.services.repositories import RepositoryService
from core.services.uploads import UploadService

#: Bytes the quota check reserves for the registry's signatures (cosign's payload, config
#: and manifest; notation's envelope with its certificate, and manifest).
_SIGNATURE_ALLOWANCE = 8192
#: How deep referrers of referrers are followed.
REFERRER_DEPTH = 3
_LEGACY_SUFFIXES = (".sig", ".att", ".sbom")


@dataclass(slots=True)
class _Plan:
    """Manifests in the order they are stored, their blobs, and cosign tags to set."""

    manifests: list[ManifestRecord] = field(default_factory=list)
    blobs: dict[str, int] = field(default_factory=dict)
    legacy_tags: dict[str, str] = field(default_factory=dict)
    referrers: int = 0


class PromotionCopier:
    """Copies a promotion's image inside the registry (see the module docstring)."""

    def __init__(
        self,
        metadata: Metadata,
        repositories: RepositoryService,
        manifests: ManifestService,
        uploads: UploadService,
        signer: RegistrySigner | None,
        is_proxy: Callable[[str], bool],
    ) -> None:
        """``signer``: the registry's signatures (``None``: signed promotions fail).

        ``is_proxy``: whether a project is a proxy cache now (``core.proxy.is_proxy_project``).
        """
        self._signer = signer
        self._is_proxy = is_proxy
        self._metadata = metadata
        self._repositories = repositories
        self._manifests = manifests
        self._uploads = uploads

    def resolve(self, repository: str, reference: Reference) -> str:
        """The digest ``reference`` names now (``MANIFEST_UNKNOWN``/``NAME_UNKNOWN``)."""
        return self._manifests.read(RepositoryName.parse(repository), reference).digest

    def copy(self, params: CopyInput) -> CopyResult:
        """Copy the image and its referrers, attach the promotion record, set the tag."""
        request = params.request
        source = self._repositories.require(RepositoryName.parse(request.source_repository))
        plan = self._plan(source, request.source_digest)
        image = next(m for m in plan.manifests if m.digest == request.source_digest)
        summary = build_record(
            request, image.media_type, image.size, params.gates, params.decided_at
        )
        target_name = RepositoryName.parse(request.target_repository)
        extra = len(summary.manifest) + sum(len(b) for b in summary.blobs.values())
        extra += _SIGNATURE_ALLOWANCE if request.sign else 0
        self._preflight(target_name, request.target_tag, request.source_digest, plan, extra)
        target = self._repositories.ensure(target_name, create_project=False)
        push_target = self._repositories.push_target(target_name, create_project=False)
        added_blobs = 0
        for digest in plan.blobs:
            with self._metadata.read() as session:
                linked = session.blobs.linked(target.id, digest) is not None
            if linked:
                continue
            if self._uploads.mount(push_target, Digest.parse(digest), source) is None:
                raise RegistryError(OCIErrorCode.BLOB_UNKNOWN).with_detail({"digest": digest})
            added_blobs += 1
        added_manifests = 0
        for record in plan.manifests:
            with self._metadata.read() as session:
                known = session.manifests.refs(target.id, [record.digest])
            if record.digest not in known:
                added_manifests += 1
            self._manifests.put(
                target,
                Reference(digest=Digest.parse(record.digest)),
                record.payload,
                record.media_type,
            )
        for tag, digest in plan.legacy_tags.items():
            payload = next(m for m in plan.manifests if m.digest == digest)
            self._manifests.put(target, Reference(tag=tag), payload.payload, payload.media_type)
        self._attach(target, push_target, summary)
        if request.sign:
            if self._signer is None:
                raise RegistryError(OCIErrorCode.UNSUPPORTED, "promotion signing is not configured")
            self._signer.sign(target, push_target, image, datetime.fromisoformat(params.decided_at))
        self._manifests.put(
            target, Reference(tag=request.target_tag), image.payload, image.media_type
        )
        return CopyResult(request.source_digest, added_manifests, added_blobs, plan.referrers)

    def _attach(
        self, target: RepositoryRecord, push_target: PushTarget, record: PromotionRecord
    ) -> None:
        """Store the record's blobs (small uploads) and its manifest as a referrer."""
        put_small_blobs(self._metadata, self._uploads, target, push_target, record.blobs)
        reference = Reference(digest=Digest.of(record.manifest))
        self._manifests.put(target, reference, record.manifest, OCI_MANIFEST)

    def _plan(self, source: RepositoryRecord, digest: str) -> _Plan:
        plan = _Plan()
        seen: set[str] = set()
        with self._metadata.read() as session:
            self._add_tree(session, source, digest, plan, seen)
            frontier = [digest]
            for _ in range(REFERRER_DEPTH):
                following: list[str] = []
                for subject in frontier:
                    found = list(session.manifests.referrers(source.id, subject, None))
                    algorithm, _, hex_ = subject.partition(":")
                    for suffix in _LEGACY_SUFFIXES:
                        tag = f"{algorithm}-{hex_}{suffix}"
                        target = session.tags.target(source.id, tag)
                        if target is not None:
                            plan.legacy_tags[tag] = target
                            record = session.manifests.get(source.id, target)
                            if record is not None:
                                found.append(record)
                    for record in found:
                        if record.digest not in seen:
                            plan.referrers += 1
                            self._add_tree(session, source, record.digest, plan, seen)
                            following.append(record.digest)
                frontier = following
        return plan

    def _add_tree(
        self,
        session: UnitOfWork,
        source: RepositoryRecord,
        digest: str,
        plan: _Plan,
        seen: set[str],
    ) -> None:
        """Add ``digest`` after its children (depth first), with its blobs."""
        if digest in seen:
            return
        seen.add(digest)
        record = session.manifests.get(source.id, digest)
        if record is None:
            raise RegistryError(OCIErrorCode.MANIFEST_UNKNOWN).with_detail({"digest": digest})
        parsed = parse_manifest(record.payload, record.media_type)
        for child in parsed.children:
            self._add_tree(session, source, str(child.digest), plan, seen)
        for blob in parsed.blobs:
            plan.blobs.setdefault(str(blob.digest), blob.size)
        plan.manifests.append(record)

    def _preflight(
        self, name: RepositoryName, tag: str, digest: str, plan: _Plan, extra_bytes: int
    ) -> None:
        """Refuse before any write: a proxy project, an immutable target tag, a full quota."""
        if self._is_proxy(name.project):
            raise push_refused(str(name))
        target = self._repositories.find(name)
        push_target = self._repositories.push_target(name, create_project=False)
        with self._metadata.write() as session:
            missing_blobs = dict(plan.blobs)
            missing = list(plan.manifests)
            if target is not None:
                found = session.manifests.push_lookup(
                    target.id, sorted(plan.blobs), [m.digest for m in plan.manifests], tag
                )
                previous = found.tag_target
                if previous is not None and previous != digest:
                    check_mutable(session, target, [tag])
                missing_blobs = {d: s for d, s in plan.blobs.items() if d not in found.blobs}
                missing = [m for m in plan.manifests if m.digest not in found.manifests]
            project_blobs = {
                d
                for d in missing_blobs
                if session.blobs.in_project(push_target.project_id, d) is not None
            }
            add_bytes = sum(s for d, s in missing_blobs.items() if d not in project_blobs)
            add_bytes += sum(len(m.payload) for m in missing) + extra_bytes
            # NOTE: checked in a transaction that is never committed: nothing is written.
            reserve(
                session,
                push_target,
                add_bytes=add_bytes,
                add_artifacts=len(missing) + 1,
                warning_ratio=2.0,
            )


def describe(result: CopyResult) -> str:
    """One line for logs and audit details."""
    return json.dumps(
        {
            "digest": result.digest,
            "manifests": result.manifests,
            "blobs": result.blobs,
            "referrers": result.referrers,
        }
    )
