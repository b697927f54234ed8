"""A pull replication's writes into this installation, made in-process, on each backend.

The copier (``core.replication_copy``) writes through ``LocalReplica`` as it would through
``/v2``: what it stores is read back through ``/v2``; the refusals a push gets (proxy
project, immutable tag) come back as final client errors with nothing written; a copy
interrupted mid-blob continues from the offset the upload session holds; every write is
in the audit log under the replication identity.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from cli.composition import Composition, compose
from core.audit import AuditQuery
from core.mediatypes import OCI_MANIFEST
from core.replication import TaskStatus
from core.replication_copy import ArtifactCopier, CopyOptions, ReplicaRegistry
from core.services.replication_local import LocalReplica
from core.settings import Settings
from core.upstream_ports import (
    ManifestHead,
    UpstreamInvalidError,
    UpstreamManifest,
    UpstreamNotFoundError,
    UpstreamRefusedError,
    UpstreamUnavailableError,
)
from tests.api.oci import OCIClient, digest_of, unique_project

CHUNK = 256 * 1024
_PIECE = 100_000


def _sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


class _Download:
    def __init__(self, data: bytes, offset: int) -> None:
        self._data = data
        self._offset = offset

    @property
    def size(self) -> int:
        return len(self._data)

    @property
    def offset(self) -> int:
        return self._offset

    async def chunks(self) -> AsyncIterator[bytes]:
        # NOTE: pieces that do not divide a chunk, so chunks are cut from inside pieces
        for start in range(self._offset, len(self._data), _PIECE):
            yield self._data[start : start + _PIECE]


@dataclass
class _Source:
    """A source registry in memory: one repository's manifests (by tag and digest) and blobs."""

    manifests: dict[str, tuple[str, bytes]] = field(default_factory=dict)
    blobs: dict[str, bytes] = field(default_factory=dict)
    #: The start of each blob download asked for, by digest (a range's first byte, or 0).
    starts: dict[str, list[int]] = field(default_factory=dict)
    #: Every reference asked for with a ``HEAD``, in order.
    heads: list[str] = field(default_factory=list)

    def image(self, tag: str, layers: list[bytes]) -> str:
        config = json.dumps({"architecture": "amd64", "os": "linux", "n": tag}).encode()
        for blob in (config, *layers):
            self.blobs[_sha(blob)] = blob
        payload = json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": OCI_MANIFEST,
                "config": {
                    "mediaType": "application/vnd.oci.image.config.v1+json",
                    "digest": _sha(config),
                    "size": len(config),
                },
                "layers": [
                    {
                        "mediaType": "application/vnd.oci.image.layer.v1.tar",
                        "digest": _sha(layer),
                        "size": len(layer),
                    }
                    for layer in layers
                ],
            }
        ).encode()
        self.manifests[tag] = self.manifests[_sha(payload)] = (OCI_MANIFEST, payload)
        return _sha(payload)

    async def get_manifest(self, repository: str, reference: str, max_bytes: int) -> Any:
        del repository, max_bytes
        if reference not in self.manifests:
            raise UpstreamNotFoundError(reference)
        media_type, payload = self.manifests[reference]
        return UpstreamManifest(_sha(payload), media_type, payload)

    async def head_manifest(self, repository: str, reference: str) -> ManifestHead:
        self.heads.append(reference)
        found = await self.get_manifest(repository, reference, 0)
        return ManifestHead(found.digest, found.media_type, len(found.payload))

    @asynccontextmanager
    async def blob(self, repository: str, digest: str, start: int = 0) -> AsyncIterator[_Download]:
        del repository
        self.starts.setdefault(digest, []).append(start)
        yield _Download(self.blobs[digest], start)

    async def referrers(self, *_: Any, **__: Any) -> list[dict[str, Any]]:
        return []


class _FailingAfter:
    """The local side, failing (as an unreachable destination) after ``chunks`` chunks."""

    def __init__(self, inner: LocalReplica, chunks: int) -> None:
        self._inner = inner
        self._left = chunks
        self.written = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    async def upload_chunk(self, repository: str, location: str, start: int, data: bytes) -> str:
        if self._left == 0:
            raise UpstreamUnavailableError("the destination went away")
        self._left -= 1
        self.written += len(data)
        return await self._inner.upload_chunk(repository, location, start, data)

    async def finish_upload(
        self, repository: str, location: str, digest: str, data: bytes = b""
    ) -> None:
        self.written += len(data)
        await self._inner.finish_upload(repository, location, digest, data)


@pytest.fixture(scope="module")
def root(app_settings: Settings) -> Iterator[Composition]:
    composition = compose(app_settings)
    try:
        yield composition
    finally:
        composition.close()


def _local(root: Composition) -> LocalReplica:
    def no_reads() -> ReplicaRegistry:
        raise AssertionError("a pull's destination reads nothing through /v2")

    return root.replication_local(no_reads)


def _project(oci: OCIClient) -> str:
    project = unique_project()
    made = oci.client.post("/api/v1/projects", json={"name": project}, auth=("admin", oci.password))
    assert made.status_code == 201, made.text
    return project


def _copy(
    source: _Source,
    destination: Any,
    repository: str,
    tag: str,
    resume: Any = None,
    reported: list[dict[str, Any]] | None = None,
    source_tags: frozenset[str] | None = None,
) -> tuple[Any, list[dict[str, Any]]]:
    """Copy ``src/app:tag`` to ``repository``; the result and the heartbeat states."""
    reported = [] if reported is None else reported
    copier = ArtifactCopier(
        source,  # type: ignore[arg-type]
        destination,
        CopyOptions(chunk_size=CHUNK),
        progress=lambda state: reported.append(json.loads(json.dumps(state))),
        resume=resume,
        source_tags=source_tags,
    )
    return asyncio.run(copier.copy("src/app", repository, tag)), reported


def _manifest(oci: OCIClient, repository: str, reference: str) -> httpx.Response:
    return oci.request(
        "GET",
        f"/v2/{repository}/manifests/{reference}",
        repository,
        headers={"Accept": OCI_MANIFEST},
    )


def test_a_copy_is_stored_as_a_push_and_audited_as_replication(
    oci: OCIClient, root: Composition
) -> None:
    repository = f"{_project(oci)}/app"
    source = _Source()
    big, small = os.urandom(CHUNK * 2 + 17), os.urandom(1000)
    digest = source.image("v1", [big, small])
    result, reported = _copy(source, _local(root), repository, "v1")
    assert result.status is TaskStatus.COPIED, result
    assert result.blobs_copied == 3
    assert result.bytes_sent == sum(len(b) for b in source.blobs.values())
    assert reported[-1]["uploads"] == {}  # every session was closed
    served = _manifest(oci, repository, "v1")
    assert served.status_code == 200
    assert digest_of(served.content) == digest
    blob = oci.request("GET", f"/v2/{repository}/blobs/{_sha(big)}", repository)
    assert blob.content == big
    root.audit_log.flush()
    events = root.audit_log.query(
        AuditQuery(actor="replication", project=repository.split("/", maxsplit=1)[0])
    )
    actions = sorted(
        (e.event.action, e.event.resource) for e in events if e.event.actor_kind == "replication"
    )
    assert actions == sorted(
        [("push_blob", f"{repository}:{d}") for d in source.blobs]
        + [("push_manifest", f"{repository}:v1")]
    )
    # a second copy finds everything in place and writes nothing
    again, _ = _copy(source, _local(root), repository, "v1")
    assert again.status is TaskStatus.SKIPPED
    assert again.bytes_sent == 0


def test_a_proxy_project_is_refused_before_anything_is_written(
    oci: OCIClient, root: Composition
) -> None:
    project = _project(oci)
    endpoint = f"up-{project}"
    made = oci.client.post(
        "/api/v1/registries",
        json={"name": endpoint, "url": "https://upstream.example.com", "type": "distribution"},
        auth=("admin", oci.password),
    )
    assert made.status_code == 201, made.text
    bound = oci.client.put(
        f"/api/v1/projects/{project}/proxy",
        json={"endpoint": endpoint},
        auth=("admin", oci.password),
    )
    assert bound.status_code == 200, bound.text
    source = _Source()
    source.image("v1", [os.urandom(500)])
    with pytest.raises(UpstreamRefusedError) as refused:
        _copy(source, _local(root), f"{project}/app", "v1")
    assert refused.value.status == 403
    assert refused.value.code == "DENIED"
    assert "proxy cache" in str(refused.value)
    assert (
        oci.client.delete(
            f"/api/v1/projects/{project}/proxy", auth=("admin", oci.password)
        ).status_code
        == 204
    )
    assert _manifest(oci, f"{project}/app", "v1").status_code == 404
    with root.metadata.read() as session:
        assert session.repositories.get(f"{project}/app") is None


def test_an_immutable_tag_is_a_final_refusal_and_keeps_its_image(
    oci: OCIClient, root: Composition
) -> None:
    project = _project(oci)
    rules = {"rules": [{"tag": {"pattern": "v*"}}]}
    put = oci.client.put(
        f"/api/v1/projects/{project}/immutability", json=rules, auth=("admin", oci.password)
    )
    assert put.status_code == 200, put.text
    repository = f"{project}/app"
    first, moved = _Source(), _Source()
    held = first.image("v1", [os.urandom(300)])
    moved.image("v1", [os.urandom(300)])
    assert _copy(first, _local(root), repository, "v1")[0].status is TaskStatus.COPIED
    with pytest.raises(UpstreamRefusedError) as refused:
        _copy(moved, _local(root), repository, "v1")
    assert refused.value.status == 403
    assert "immutable" in str(refused.value)
    assert digest_of(_manifest(oci, repository, "v1").content) == held


def test_a_missing_project_is_not_created_unless_pushes_may_create_it(
    oci: OCIClient, root: Composition, app_settings: Settings
) -> None:
    strict = app_settings.model_copy(
        update={"auth": app_settings.auth.model_copy(update={"create_project_on_push": False})}
    )
    composition = compose(strict)
    try:
        source = _Source()
        source.image("v1", [os.urandom(200)])
        repository = f"{unique_project()}/app"
        with pytest.raises(UpstreamNotFoundError) as missing:
            _copy(source, _local(composition), repository, "v1")
        assert missing.value.code == "NAME_UNKNOWN"
    finally:
        composition.close()
    assert _manifest(oci, repository, "v1").status_code == 404


def test_a_copy_interrupted_mid_blob_continues_from_the_session_offset(
    oci: OCIClient, root: Composition
) -> None:
    repository = f"{_project(oci)}/app"
    source = _Source()
    big = os.urandom(CHUNK * 4 + 5)
    source.image("v1", [big])
    first = _FailingAfter(_local(root), chunks=2)
    reported: list[dict[str, Any]] = []
    with pytest.raises(UpstreamUnavailableError):
        _copy(source, first, repository, "v1", reported=reported)
    # what the activity's last heartbeat kept: the open session and the bytes it holds
    state = reported[-1]
    held = state["uploads"][_sha(big)][1]
    assert held == 2 * CHUNK
    second = _FailingAfter(_local(root), chunks=100)
    result, _ = _copy(source, second, repository, "v1", resume=state)
    assert result.status is TaskStatus.COPIED
    # only the blob's rest: the config the first attempt completed and the blob's first
    # two chunks are not written again, nor read from the source again
    assert second.written == len(big) - held
    assert source.starts[_sha(big)] == [0, held]
    blob = oci.request("GET", f"/v2/{repository}/blobs/{_sha(big)}", repository)
    assert blob.content == big


def test_a_blob_of_other_content_is_refused_and_its_session_removed(
    oci: OCIClient, root: Composition
) -> None:
    repository = f"{_project(oci)}/app"
    local = _local(root)
    data = os.urandom(5000)

    async def attempt() -> str:
        location = await local.mount_blob(repository, _sha(data), None)
        assert location is not None
        with pytest.raises(UpstreamRefusedError) as refused:
            await local.finish_upload(repository, location, _sha(b"other"), data)
        assert refused.value.code == "DIGEST_INVALID"
        return location

    location = asyncio.run(attempt())
    assert asyncio.run(local.upload_offset(repository, location)) is None
    with pytest.raises(UpstreamNotFoundError):
        asyncio.run(local.head_blob(repository, _sha(data)))


def test_a_source_sending_other_bytes_fails_the_copy_and_stores_nothing(
    oci: OCIClient, root: Composition
) -> None:
    # NOTE: the copier leaves the digest check to this installation's store here; the
    # failure still names the source, and neither the blob nor its session stays
    repository = f"{_project(oci)}/app"
    source = _Source()
    big = os.urandom(CHUNK * 3 + 9)
    source.image("v1", [big])
    lied = bytearray(big)
    lied[CHUNK + 5] ^= 0xFF
    source.blobs[_sha(big)] = bytes(lied)
    reported: list[dict[str, Any]] = []
    with pytest.raises(UpstreamInvalidError, match="the source sent other content"):
        _copy(source, _local(root), repository, "v1", reported=reported)
    local = _local(root)
    with pytest.raises(UpstreamNotFoundError):
        asyncio.run(local.head_blob(repository, _sha(big)))
    location, _ = reported[-1]["uploads"][_sha(big)]
    assert asyncio.run(local.upload_offset(repository, location)) is None
    assert _manifest(oci, repository, "v1").status_code == 404


def test_audit_events_still_queued_are_written_when_the_worker_closes(
    oci: OCIClient, app_settings: Settings
) -> None:
    # NOTE: the audit writer's own round never comes here: only closing writes the event
    audit = app_settings.audit.model_copy(update={"flush_interval_seconds": 3600.0})
    composition = compose(app_settings.model_copy(update={"audit": audit}))
    project = _project(oci)
    repository = f"{project}/app"
    data = os.urandom(100)
    local = _local(composition)

    async def push() -> None:
        location = await local.mount_blob(repository, _sha(data), None)
        assert location is not None
        await local.finish_upload(repository, location, _sha(data), data)

    try:
        asyncio.run(push())
    finally:
        composition.close()
    reader = compose(app_settings)
    try:
        events = reader.audit_log.query(AuditQuery(actor="replication", project=project))
    finally:
        reader.close()
    assert [(e.event.action, e.event.resource) for e in events] == [
        ("push_blob", f"{repository}:{_sha(data)}")
    ]


def test_cosign_tags_come_from_the_listing_and_one_deleted_since_is_left_out(
    oci: OCIClient, root: Composition
) -> None:
    """With the plan's tag list, the copier asks for no cosign tag by ``HEAD``: one listed
    and still at the source lands with its subject, one deleted since is left out."""
    repository = f"{_project(oci)}/app"
    source = _Source()
    subject = source.image("v1", [os.urandom(700)])
    prefix = subject.replace(":", "-")
    attestation = source.image(f"{prefix}.att", [b"attestation"])
    listed = frozenset({"v1", f"{prefix}.sig", f"{prefix}.att"})  # .sig deleted since
    result, _ = _copy(source, _local(root), repository, "v1", source_tags=listed)
    assert result.status is TaskStatus.COPIED, result
    assert source.heads == []
    assert digest_of(_manifest(oci, repository, f"{prefix}.att").content) == attestation
    assert _manifest(oci, repository, f"{prefix}.sig").status_code == 404
    assert digest_of(_manifest(oci, repository, "v1").content) == subject
