"""Copying one artifact between two registries by digest (what a good copier does).

Order and checks, per artifact:

1. The source manifest's exact bytes are fetched and their digest verified (by the
   client: ``core.upstream_ports``); nothing is ever re-serialized.
2. The destination is asked first (``HEAD`` of the tag): the same digest there means the
   task changes nothing (no write, so no event at a Moorage destination: two sites
   replicating both ways stop there); another digest is replaced only with ``override``.
3. An index's children are copied by digest first (every platform), an image's blobs
   before its manifest: a blob the destination has (``HEAD``) is not sent; one it has in
   another repository this worker wrote it to is mounted (``201``), or the mount's
   ``202`` session is used for the upload. Blobs larger than a chunk go as chunked
   uploads; after each acknowledged chunk the session's location and offset are
   reported (``progress``), so a retried attempt resumes from the offset the
   destination reports for that session instead of sending the blob again. Every
   blob's size is checked, and its bytes are hashed while streaming unless the
   destination checks them against the digest itself before anything is stored
   (:attr:`ReplicaRegistry.verifies_blob_digests`: this installation's own store);
   either way a digest or size mismatch fails the task and nothing is stored.
4. The manifest goes last, by tag (children by digest), and the digest the destination
   answers with must be the source's.
5. Referrers (OCI 1.1 API or its tag schema, and cosign's ``.sig``/``.att``/``.sbom``
   tags) follow their subject, to a bounded depth.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any, Protocol

from core.errors import OCIErrorCode
from core.replication import ArtifactKind, TaskResult, TaskStatus
from core.replication_bandwidth import SharedBandwidth
from core.upstream_ports import (
    BlobDownload,
    ManifestHead,
    UpstreamInvalidError,
    UpstreamManifest,
    UpstreamNotFoundError,
    UpstreamRefusedError,
)

INDEX_TYPES = frozenset(
    {
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
    }
)
IMAGE_CONFIGS = frozenset(
    {
        "application/vnd.oci.image.config.v1+json",
        "application/vnd.docker.container.image.v1+json",
    }
)
_LEGACY_SUFFIXES = (".sig", ".att", ".sbom")
#: Blobs of one image copied at the same time.
BLOB_PARALLELISM = 4


def _other_content(digest: str) -> UpstreamInvalidError:
    """The failure of a blob whose source sent bytes of another digest (final)."""
    return UpstreamInvalidError(f"blob {digest}: the source sent other content")


class ReplicaRegistry(Protocol):
    """The distribution API calls a copy makes.

    A remote registry's client (``adapters.upstream_registry``), or this installation as
    a pull's destination (``core.services.replication_local``): the same answers and
    the same errors (``core.upstream_ports``) either way.
    """

    @property
    def verifies_blob_digests(self) -> bool:
        """Whether :meth:`finish_upload` itself refuses bytes other than the digest's.

        ``True`` only where that is known, not merely promised: this installation's own
        store, which checks before the blob is stored and answers ``DIGEST_INVALID``. A
        copy into it does not hash the bytes a second time; into any other registry it
        does, whatever that registry checks.
        """
        ...

    async def head_manifest(self, repository: str, reference: str) -> ManifestHead: ...
    async def get_manifest(
        self, repository: str, reference: str, max_bytes: int
    ) -> UpstreamManifest: ...
    async def head_blob(self, repository: str, digest: str) -> int: ...
    def blob(
        self, repository: str, digest: str, start: int = 0
    ) -> AbstractAsyncContextManager[BlobDownload]: ...
    async def catalog(self) -> list[str]: ...
    async def tags(self, repository: str) -> list[str]: ...
    async def put_manifest(
        self, repository: str, reference: str, media_type: str, payload: bytes
    ) -> str: ...
    async def delete_manifest(self, repository: str, reference: str) -> bool: ...
    async def mount_blob(self, repository: str, digest: str, source: str | None) -> str | None: ...
    async def start_upload(self, repository: str) -> tuple[str, int]: ...
    async def upload_offset(self, repository: str, location: str) -> int | None: ...
    async def upload_chunk(
        self, repository: str, location: str, start: int, data: bytes
    ) -> str: ...
    async def finish_upload(
        self, repository: str, location: str, digest: str, data: bytes = b""
    ) -> None: ...
    async def referrers(
        self, repository: str, digest: str, tags: frozenset[str] | None = None
    ) -> list[dict[str, Any]]: ...


@dataclass(frozen=True, slots=True)
class CopyOptions:
    override: bool = True
    referrers: bool = True
    artifact_kind: ArtifactKind = ArtifactKind.ALL
    bandwidth_kbps: int = 0
    chunk_size: int = 8 * 1024 * 1024
    manifest_max_bytes: int = 4 * 1024 * 1024
    referrer_depth: int = 3


def artifact_kind(manifest: UpstreamManifest) -> ArtifactKind:
    """Whether a manifest is a container image (or an index) or another artifact."""
    if manifest.media_type in INDEX_TYPES:
        return ArtifactKind.IMAGE
    try:
        body = json.loads(manifest.payload)
    except ValueError:
        return ArtifactKind.ARTIFACT
    config = body.get("config") if isinstance(body, dict) else None
    config_type = config.get("mediaType") if isinstance(config, dict) else None
    artifact_type = body.get("artifactType") if isinstance(body, dict) else None
    if config_type in IMAGE_CONFIGS and not artifact_type:
        return ArtifactKind.IMAGE
    return ArtifactKind.ARTIFACT


class _Throttle:
    """Keeps the average rate of what is sent under ``kbps`` KiB/s (0: no cap)."""

    def __init__(
        self,
        kbps: int,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._rate = kbps * 1024
        self._clock, self._sleep = clock, sleep
        self._start = clock()
        self._sent = 0

    async def sent(self, count: int) -> None:
        if not self._rate:
            return
        self._sent += count
        ahead = self._sent / self._rate - (self._clock() - self._start)
        if ahead > 0:
            await self._sleep(ahead)


class ArtifactCopier:
    """Copies artifacts from ``source`` to ``destination`` (one task's attempt).

    Args:
        progress: Called with the resume state after each acknowledged chunk
            (``{"uploads": {digest: [location, offset]}, "bytes_sent": n}``: the open
            upload sessions); an activity heartbeats it.
        resume: The last resume state an earlier attempt reported (or ``None``).
        mounts: Destination repository each digest was last written to, shared by the
            copies of one process (a later copy mounts from there).
        shared: The worker's cap over all its copies (``core.replication_bandwidth``),
            waited for before the policy's own cap.
        source_tags: The source repository's complete tag list, read shortly before
            (by the plan): referrers kept under tags (the referrers tag schema, cosign's
            ``.sig``/``.att``/``.sbom``) are looked up in it instead of asked for one by
            one. ``None``: each is asked for. A referrer the source no longer has when it
            is fetched (deleted since it was listed) is left out, not an error.
    """

    def __init__(
        self,
        source: ReplicaRegistry,
        destination: ReplicaRegistry,
        options: CopyOptions,
        *,
        progress: Callable[[dict[str, Any]], None],
        resume: dict[str, Any] | None = None,
        mounts: MutableMapping[str, str] | None = None,
        shared: SharedBandwidth | None = None,
        source_tags: frozenset[str] | None = None,
    ) -> None:
        self._src, self._dst, self._options = source, destination, options
        self._source_tags = source_tags
        self._progress = progress
        state = resume or {}
        self._uploads: dict[str, list[Any]] = {
            str(k): list(v) for k, v in dict(state.get("uploads") or {}).items()
        }
        self._mounts: MutableMapping[str, str] = mounts if mounts is not None else {}
        self._throttle = _Throttle(options.bandwidth_kbps)
        self._shared = shared or SharedBandwidth(0)
        self._bytes = int(state.get("bytes_sent", 0))
        self._copied = 0
        self._skipped = 0
        self._lock = asyncio.Lock()

    def _result(
        self, status: TaskStatus, digest: str | None, error: str | None = None
    ) -> TaskResult:
        return TaskResult(status, digest, self._bytes, self._copied, self._skipped, error)

    async def copy(self, source: str, destination: str, reference: str) -> TaskResult:
        """Copy ``source:reference`` to ``destination`` (under the same tag or digest)."""
        manifest = await self._src.get_manifest(source, reference, self._options.manifest_max_bytes)
        wanted = self._options.artifact_kind
        if wanted is not ArtifactKind.ALL and artifact_kind(manifest) is not wanted:
            return self._result(TaskStatus.SKIPPED, manifest.digest, "artifact type filtered")
        present = await self._destination_digest(destination, reference)
        if present == manifest.digest:
            await self._referrers(source, destination, manifest.digest, 0)
            return self._result(TaskStatus.SKIPPED, manifest.digest, "already replicated")
        if present is not None and not self._options.override:
            return self._result(TaskStatus.SKIPPED, manifest.digest, "tag exists (no override)")
        await self._manifest(source, destination, manifest, reference)
        await self._referrers(source, destination, manifest.digest, 0)
        return self._result(TaskStatus.COPIED, manifest.digest)

    async def _destination_digest(self, repository: str, reference: str) -> str | None:
        try:
            return (await self._dst.head_manifest(repository, reference)).digest
        except UpstreamNotFoundError:
            return None

    async def _manifest(
        self, source: str, destination: str, manifest: UpstreamManifest, reference: str
    ) -> None:
        body = json.loads(manifest.payload)
        if manifest.media_type in INDEX_TYPES or "manifests" in body:
            for child in body.get("manifests") or []:
                digest = str(child.get("digest", ""))
                if await self._destination_digest(destination, digest) == digest:
                    continue
                fetched = await self._src.get_manifest(
                    source, digest, self._options.manifest_max_bytes
                )
                await self._manifest(source, destination, fetched, digest)
        else:
            descriptors = [body.get("config"), *(body.get("layers") or [])]
            blobs = [d for d in descriptors if isinstance(d, dict) and d.get("digest")]
            gate = asyncio.Semaphore(BLOB_PARALLELISM)

            async def one(descriptor: dict[str, Any]) -> None:
                if descriptor.get("urls"):  # non-distributable: it stays where it is
                    return
                async with gate:
                    await self._blob(
                        source, destination, str(descriptor["digest"]), int(descriptor["size"])
                    )

            await asyncio.gather(*(one(d) for d in blobs))
        answered = await self._dst.put_manifest(
            destination, reference, manifest.media_type, manifest.payload
        )
        if answered and answered != manifest.digest:
            raise UpstreamInvalidError(
                f"{destination}:{reference}: the destination stored {answered}, "
                f"not {manifest.digest}"
            )

    async def _referrers(self, source: str, destination: str, digest: str, depth: int) -> None:
        if not self._options.referrers or depth >= self._options.referrer_depth:
            return
        for reference in await referrer_references(self._src, source, digest, self._source_tags):
            try:
                manifest = await self._src.get_manifest(
                    source, reference, self._options.manifest_max_bytes
                )
            except UpstreamNotFoundError:
                continue  # gone from the source since it was listed: nothing to copy
            if await self._destination_digest(destination, reference) != manifest.digest:
                await self._manifest(source, destination, manifest, reference)
            await self._referrers(source, destination, manifest.digest, depth + 1)

    async def _blob(self, source: str, destination: str, digest: str, size: int) -> None:
        try:
            if await self._dst.head_blob(destination, digest) == size:
                self._skipped += 1
                return
        except UpstreamNotFoundError:
            pass
        location: str | None = None
        offset = 0
        if digest in self._uploads:
            location = str(self._uploads[digest][0])
            held = await self._dst.upload_offset(destination, location)
            if held is None:
                location = None
            else:
                offset = held
        if location is None:
            known = self._mounts.get(digest)
            location = await self._dst.mount_blob(
                destination, digest, known if known and known != destination else None
            )
            if location is None:
                self._skipped += 1
                self._mounts[digest] = destination
                return
        await self._upload(source, destination, digest, size, location, offset)
        self._mounts[digest] = destination
        self._copied += 1

    async def _upload(
        self, source: str, destination: str, digest: str, size: int, location: str, offset: int
    ) -> None:
        algorithm, _, expected = digest.partition(":")
        hasher = None if self._dst.verifies_blob_digests else hashlib.new(algorithm)
        chunk = self._options.chunk_size
        sent = offset  # bytes the destination holds
        pending = _Pending()
        # NOTE: a destination that verifies the digest itself needs only the bytes it
        # lacks; one that does not needs every byte hashed here, so it reads from the start
        start = offset if hasher is None and 0 < offset < size else 0
        async with self._src.blob(source, digest, start) as download:
            if download.size != size:
                raise UpstreamInvalidError(f"blob {digest}: source declares {download.size} bytes")
            position = download.offset  # bytes of the blob read from the source, or skipped
            async for data in _chunks(download):
                if hasher is not None:
                    hasher.update(data)
                start = position
                position += len(data)
                if position <= sent:
                    continue  # the destination has these bytes already
                pending.add(data if sent <= start else data[sent - start :])
                while pending.size >= chunk and position < size:
                    piece = pending.take(chunk)
                    location = await self._dst.upload_chunk(destination, location, sent, piece)
                    sent += len(piece)
                    await self._sent(len(piece), digest, location, sent)
        if position != size or (hasher is not None and hasher.hexdigest() != expected):
            raise _other_content(digest)
        last = pending.take(pending.size)
        try:
            await self._dst.finish_upload(destination, location, digest, last)
        except UpstreamRefusedError as refused:
            if hasher is None and refused.code == OCIErrorCode.DIGEST_INVALID.value:
                raise _other_content(digest) from refused
            raise
        await self._sent(len(last), digest, None, size)

    async def _sent(self, count: int, digest: str, location: str | None, offset: int) -> None:
        async with self._lock:
            self._bytes += count
            if location is None:
                self._uploads.pop(digest, None)
            else:
                self._uploads[digest] = [location, offset]
            self._progress({"uploads": dict(self._uploads), "bytes_sent": self._bytes})
        # NOTE: the worker's cap first: the policy's cap keeps an average since the
        # copy began, so the time spent waiting for the worker counts towards it
        await self._shared.sent(count)
        await self._throttle.sent(count)


class _Pending:
    """Bytes received and not sent yet, kept as the pieces they came in.

    Each byte is copied once, when a piece to send is taken (a growing ``bytearray`` copied
    every byte twice, and the one cut from its front moved the rest on every take).
    """

    __slots__ = ("_parts", "size")

    def __init__(self) -> None:
        self._parts: deque[bytes] = deque()
        self.size = 0

    def add(self, data: bytes) -> None:
        if data:
            self._parts.append(data)
            self.size += len(data)

    def take(self, count: int) -> bytes:
        """The first ``count`` bytes held (``count`` at most :attr:`size`)."""
        parts = self._parts
        if len(parts) == 1 and len(parts[0]) == count:
            self.size = 0
            return parts.popleft()
        taken: list[bytes] = []
        wanted = count
        while wanted:
            head = parts[0]
            if len(head) <= wanted:
                taken.append(parts.popleft())
                wanted -= len(head)
            else:
                view = memoryview(head)
                taken.append(view[:wanted].tobytes())
                parts[0] = view[wanted:].tobytes()
                wanted = 0
        self.size -= count
        return b"".join(taken)


async def referrer_references(
    registry: ReplicaRegistry,
    repository: str,
    digest: str,
    tags: frozenset[str] | None = None,
) -> list[str]:
    """The references of everything that refers to ``digest``.

    Digests from the referrers API (or its tag schema), then the cosign tags
    (``sha256-<hex>.sig``, ``.att``, ``.sbom``) that exist. With ``tags``, the
    repository's complete tag list read just before, tags are looked up in it instead of
    asked for one by one (so only the referrers API itself is called).
    """
    found = [str(d["digest"]) for d in await registry.referrers(repository, digest, tags)]
    for suffix in _LEGACY_SUFFIXES:
        tag = digest.replace(":", "-") + suffix
        if tags is not None:
            if tag in tags:
                found.append(tag)
            continue
        try:
            await registry.head_manifest(repository, tag)
        except UpstreamNotFoundError:
            continue
        found.append(tag)
    return found


async def has_referrers(
    registry: ReplicaRegistry,
    repository: str,
    digest: str,
    tags: frozenset[str] | None = None,
) -> bool:
    """Whether anything at ``registry`` refers to ``digest`` (``tags``: as above)."""
    return bool(await referrer_references(registry, repository, digest, tags))


async def _chunks(download: BlobDownload) -> AsyncIterator[bytes]:
    async for data in download.chunks():
        yield data
