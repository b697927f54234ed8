"""Manifests, tags and referrers of one repository.

A manifest is accepted only when it satisfies its media type's schema
(``core.manifests``), every blob it references is linked in the same repository with the
size its descriptor states (a non-distributable layer with allowed ``urls`` may be
absent, see ``ManifestRules``) and every manifest an index lists is stored in it with the
size stated; the subject of an artifact may be absent. One lookup per kind (blobs,
manifests) finds what a push references. The stored bytes are exactly the bytes pushed.
A manifest, its reference rows and its tag change in one transaction; concurrent tag
updates leave the tag on exactly one of the pushed manifests (the last committed).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Any

from core import events, mediatypes
from core.access import Identity
from core.digests import Digest
from core.errors import OCIErrorCode, RegistryError
from core.manifests import ManifestRules, check_blobs, check_children, parse_manifest
from core.names import Reference, RepositoryName, is_valid_tag
from core.ports import AsyncReads, Metadata, NowaitReads, ReadWouldWait, UnitOfWork
from core.pulls import PullRecorder
from core.records import ManifestRecord, NewManifest, RepositoryRecord
from core.services.changes import ChangeRecorder
from core.services.immutability import check_mutable
from core.services.manifest_removal import remove_manifest
from core.services.quota import QuotaExceededError, reserve


@dataclass(frozen=True, slots=True)
class PushedManifest:
    digest: Digest
    subject: Digest | None


def operator_data(pusher: Identity | None) -> str | None:
    """The data of a push's events: who pushed (``None`` when nobody is known)."""
    if pusher is None or not pusher.subject:
        return None
    return json.dumps(
        {"operator": pusher.subject, "operator_kind": str(pusher.kind)}, separators=(",", ":")
    )


def _manifest_unknown(reference: Reference) -> RegistryError:
    return RegistryError(OCIErrorCode.MANIFEST_UNKNOWN).with_detail({"reference": str(reference)})


class ManifestService:
    """Store, read and delete manifests; list tags and referrers."""

    def __init__(
        self,
        metadata: Metadata,
        changes: ChangeRecorder,
        *,
        pulls: PullRecorder | None,
        nowait: NowaitReads | None,
        rules: ManifestRules,
        awaited: AsyncReads | None = None,
    ) -> None:
        """``pulls`` (pull-time recording), ``nowait`` and ``awaited`` are optional.

        ``None`` leaves them out.
        """
        self._metadata = metadata
        self._rules = rules
        self._changes = changes
        self._pulls = pulls
        #: Reads that never wait (SQLite), for :meth:`read_nowait`.
        self._nowait = nowait
        #: Reads awaited on the event loop (PostgreSQL), for :meth:`read_async`.
        self._awaited = awaited

    def pull_recording(self, manifest: ManifestRecord) -> Callable[[], None] | None:
        """The write recording a pull of ``manifest``, if one is due (see ``core.pulls``).

        Call it once the pull's response is computed and run the returned callable after
        the response (it blocks briefly on the database, swallows and logs failures).
        ``None`` when pull times are not recorded or the stored one is recent enough.
        """
        if self._pulls is None:
            return None
        return self._pulls.deferred(manifest.id, manifest.pulled_at)

    def read(self, name: RepositoryName, reference: Reference) -> ManifestRecord:
        """The manifest ``reference`` names in the repository ``name`` (a pull's lookup).

        The repository and the manifest are read with one statement in one read
        transaction, so the answer reflects a single committed state of the database.

        Raises:
            RegistryError: ``NAME_UNKNOWN`` without such a repository,
                ``MANIFEST_UNKNOWN`` without such a manifest or tag in it.
        """
        with self._metadata.read() as session:
            found = session.manifests.named(str(name), *_digest_or_tag(reference))
        return _found(name, reference, found)

    def tag_digests(self, repository: str, tags: Collection[str]) -> dict[str, str]:
        """The digest each of ``tags`` names in ``repository``; tags naming none are left out.

        What a ``HEAD`` of each tag's manifest would answer, read from the store for many
        tags of one repository at once (replication planning a pull into this
        installation asks it instead of its own ``/v2``, once per repository): one
        statement in one read transaction, so the answers reflect a single committed
        state. A repository or tag name that is not valid names nothing; ``tags`` are tag
        names only (a digest among them names nothing here).
        """
        try:
            name = str(RepositoryName.parse(repository))
        except RegistryError:
            return {}
        wanted = sorted({t for t in tags if is_valid_tag(t)})
        if not wanted:
            return {}
        with self._metadata.read() as session:
            return session.tags.named_targets(name, wanted)

    @property
    def reads_nowait(self) -> bool:
        """Whether :meth:`read_nowait` can answer here (the database has such reads)."""
        return self._nowait is not None

    def read_nowait(self, name: RepositoryName, reference: Reference) -> ManifestRecord | None:
        """:meth:`read` if it can run without waiting, else ``None`` (nothing was read).

        For a caller on an event loop thread: a local read that never waits (SQLite)
        costs less than handing it to a worker thread. ``None`` when the database offers
        no such reads or would make this one wait; call :meth:`read` on a worker thread.
        """
        if self._nowait is None:
            return None
        try:
            found = self._nowait.named_manifest_nowait(str(name), *_digest_or_tag(reference))
        except ReadWouldWait:
            return None
        return _found(name, reference, found)

    @property
    def reads_async(self) -> bool:
        """Whether :meth:`read_async` can answer here (the database has awaited reads)."""
        return self._awaited is not None

    async def read_async(self, name: RepositoryName, reference: Reference) -> ManifestRecord:
        """:meth:`read`, awaited on the running event loop (a database over the network).

        The same statement and answer as :meth:`read`. Any other exception than a
        ``RegistryError`` means the read did not happen here (no awaited reads, the
        database could not be reached); :meth:`read` on a worker thread then answers.

        Raises:
            RegistryError: As :meth:`read`.
        """
        if self._awaited is None:
            raise ReadWouldWait("this database has no awaited reads")
        found = await self._awaited.named_manifest_async(str(name), *_digest_or_tag(reference))
        return _found(name, reference, found)

    async def close_reads(self) -> None:
        """Release the running event loop's connections for :meth:`read_async`."""
        if self._awaited is not None:
            await self._awaited.close_async_reads()

    def put(
        self,
        repository: RepositoryRecord,
        reference: Reference,
        payload: bytes,
        content_type: str | None,
        pusher: Identity | None = None,
    ) -> PushedManifest:
        """Store a pushed manifest (and its tag), writing the push's events.

        ``pusher`` (the request's identity) is written into the events' data as
        ``operator`` and ``operator_kind`` (webhooks and promotion rules read them).
        """
        data = operator_data(pusher)
        algorithm = reference.digest.algorithm if reference.digest else "sha256"
        digest = Digest.of(payload, algorithm)
        if reference.digest is not None and reference.digest != digest:
            raise RegistryError(OCIErrorCode.DIGEST_INVALID).with_detail(
                {"expected": str(reference.digest), "actual": str(digest)}
            )
        parsed = parse_manifest(payload, content_type)

        def store(session: UnitOfWork) -> None:
            # NOTE: a tag makes the manifest referenced; by digest alone it is not, so
            # its review is postponed (after the shared locks: no cycle, see reviews).
            wanted_blobs = sorted({str(d.digest) for d in parsed.blobs})
            children = {str(d.digest) for d in parsed.children}
            wanted = sorted(children | {str(digest)})
            referenced = wanted if reference.tag is not None else sorted(children)
            self._changes.hold_references(session, repository, wanted_blobs, referenced)
            if reference.tag is None:
                self._changes.postpone_review(session, repository, str(digest))
            # NOTE: one lookup finds the linked blobs, the listed children, whether this
            # manifest is stored and what the tag names now.
            found = session.manifests.push_lookup(
                repository.id, wanted_blobs, wanted, reference.tag
            )
            blob_ids = check_blobs(parsed, found.blobs, self._rules)
            child_ids = check_children(parsed, found.manifests)
            stored = found.manifests.get(str(digest))
            manifest_id = stored.id if stored is not None else None
            if manifest_id is None:
                manifest_id = self._add(
                    session,
                    data,
                    repository,
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
                tagged = (reference.tag, data, found.tag_target)
                self._set_tag(session, repository, tagged, manifest_id, str(digest))

        # NOTE: concurrent pushes of this process may share one transaction (group
        # commit); every check and event above stays in the transaction that stores it.
        try:
            self._metadata.write_grouped(store)
        except QuotaExceededError as denied:
            # The refused push rolled back; its event is written on its own.
            with self._metadata.write() as session:
                self._changes.quota_exceeded(session, repository, denied)
                session.commit()
            raise
        return PushedManifest(digest, parsed.subject)

    def _add(
        self,
        session: UnitOfWork,
        data: str | None,
        repository: RepositoryRecord,
        manifest: NewManifest,
    ) -> int:
        """Store a manifest the repository does not hold yet (quota, GC review, event)."""
        reserve(
            session,
            repository,
            add_bytes=len(manifest.payload),
            add_artifacts=1,
            warning_ratio=self._changes.quota_warning_ratio,
        )
        manifest_id = session.manifests.add(repository.id, manifest)
        self._changes.manifest_may_be_unreferenced(
            session, repository, manifest.digest, events.MANIFEST_UPLOAD
        )
        self._changes.event(
            session, events.MANIFEST_PUSHED, repository, digest=manifest.digest, data=data
        )
        return manifest_id

    def _set_tag(
        self,
        session: UnitOfWork,
        repository: RepositoryRecord,
        tagged: tuple[str, str | None, str | None],
        manifest_id: int,
        digest: str,
    ) -> None:
        """Point the tag at the manifest; ``tagged``: tag, event data, its digest before."""
        tag, data, previous = tagged
        if previous == digest:
            return
        if previous is not None:
            check_mutable(session, repository, [tag])
        session.tags.set(repository.id, tag, manifest_id)
        kind = events.TAG_CREATED if previous is None else events.TAG_MOVED
        self._changes.event(session, kind, repository, digest=digest, tag=tag, data=data)
        if previous is not None:
            self._changes.manifest_may_be_unreferenced(
                session, repository, previous, events.TAG_SWITCH
            )

    def delete(self, repository: RepositoryRecord, reference: Reference) -> None:
        with self._metadata.write() as session:
            if reference.digest is not None:
                deleted = self._delete_manifest(session, repository, str(reference.digest))
            else:
                deleted = self._delete_tag(session, repository, str(reference.tag))
            session.commit()
        if not deleted:
            raise _manifest_unknown(reference)

    def _delete_manifest(
        self, session: UnitOfWork, repository: RepositoryRecord, digest: str
    ) -> bool:
        return remove_manifest(session, self._changes, repository, digest)

    def _delete_tag(self, session: UnitOfWork, repository: RepositoryRecord, tag: str) -> bool:
        target = session.tags.target(repository.id, tag)
        if target is not None:
            check_mutable(session, repository, [tag])
        if target is None or not session.tags.delete(repository.id, tag):
            return False
        self._changes.manifest_may_be_unreferenced(session, repository, target, events.TAG_DELETE)
        self._changes.event(session, events.TAG_DELETED, repository, digest=target, tag=tag)
        return True

    def tags(self, repository: RepositoryRecord, last: str | None, limit: int) -> list[str]:
        with self._metadata.read() as session:
            return session.tags.page(repository.id, last, limit)

    def referrers(
        self, repository: RepositoryRecord | None, digest: Digest, artifact_type: str | None
    ) -> dict[str, Any]:
        """The referrers of ``digest`` as an image index (empty when there are none)."""
        records: list[ManifestRecord] = []
        if repository is not None:
            with self._metadata.read() as session:
                records = session.manifests.referrers(repository.id, str(digest), artifact_type)
        return {
            "schemaVersion": 2,
            "mediaType": mediatypes.OCI_INDEX,
            "manifests": [_descriptor(record) for record in records],
        }


def _digest_or_tag(reference: Reference) -> tuple[str | None, str | None]:
    if reference.digest is not None:
        return str(reference.digest), None
    return None, reference.tag


def _found(
    name: RepositoryName,
    reference: Reference,
    found: tuple[RepositoryRecord, ManifestRecord | None] | None,
) -> ManifestRecord:
    if found is None:
        raise RegistryError(OCIErrorCode.NAME_UNKNOWN).with_detail({"name": str(name)})
    if found[1] is None:
        raise _manifest_unknown(reference)
    return found[1]


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
