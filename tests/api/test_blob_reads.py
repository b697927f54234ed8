"""A blob pull's lookup: on the event loop where a read there never waits (SQLite), on a
worker thread otherwise (PostgreSQL, a busy reader, a miss), with the same answers."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest

from cli.composition import compose
from core.digests import Digest
from core.names import RepositoryName
from core.records import BlobRecord, RepositoryRecord
from core.services.repositories import RepositoryService
from core.settings import Settings
from storage.db.engine import Engines
from tests.api.busy_reader import busy
from tests.api.oci import OCIClient, digest_of


@pytest.fixture
def services(app_settings: Settings) -> Iterator[tuple[Engines, RepositoryService]]:
    root = compose(app_settings)
    yield root.engines, root.repositories
    root.close()


def test_a_linked_blob_is_found_without_waiting_unless_the_reader_is_busy(
    services: tuple[Engines, RepositoryService], oci: OCIClient, repo: str
) -> None:
    engines, repositories = services
    pushed = oci.push_image(repo, "v1")
    name = RepositoryName.parse(repo)
    repository = repositories.require(name)
    reader = engines.nowait_read
    for text in pushed.blobs:
        digest = Digest.parse(text)
        expected = (repository, repositories.blob(repository, digest))
        if reader is None:
            # NOTE: PostgreSQL reads cross the network: they always run on worker threads.
            assert repositories.blob_nowait(name, digest) is None
        else:
            assert repositories.blob_nowait(name, digest) == expected
    if reader is None:
        return
    with busy(reader):
        # Every connection of the loop reader is busy: it declines instead of waiting.
        assert repositories.blob_nowait(name, Digest.parse(pushed.blobs[0])) is None


def test_what_is_not_found_is_left_to_the_worker_thread(
    services: tuple[Engines, RepositoryService], oci: OCIClient, repo: str
) -> None:
    """A miss gives ``None``: the thread's read then raises the error the client gets."""
    engines, repositories = services
    pushed = oci.push_image(repo, "v1")
    name, layer = RepositoryName.parse(repo), Digest.parse(pushed.blobs[0])
    sibling = f"{repo.partition('/')[0]}/sibling"
    only_in_sibling = Digest.parse(oci.push_blob(sibling, os.urandom(64)))
    absent_repository = RepositoryName.parse(f"{repo}-absent")
    assert repositories.blob_nowait(absent_repository, layer) is None
    assert repositories.blob_nowait(name, Digest.of(os.urandom(16))) is None
    # The blob is in the project, linked to another of its repositories only.
    assert repositories.blob_nowait(name, only_in_sibling) is None
    if engines.nowait_read is not None:
        found = repositories.blob_nowait(RepositoryName.parse(sibling), only_in_sibling)
        assert found is not None
        assert found[1].digest == str(only_in_sibling)
    answer = oci.request("GET", f"/v2/{repo}/blobs/{only_in_sibling}", repo)
    assert answer.status_code == 404
    assert answer.json()["errors"][0]["code"] == "BLOB_UNKNOWN"


def test_a_pull_reads_on_a_worker_thread_only_when_it_must(
    oci: OCIClient, repo: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On SQLite a blob GET or HEAD that finds its blob reads nothing on a worker thread."""
    registry = oci.client.app.state["registry"]  # type: ignore[attr-defined]
    repositories: RepositoryService = registry.repositories
    on_thread: list[str] = []
    thread_read = repositories.blob

    def counted(repository: RepositoryRecord, digest: Digest) -> BlobRecord:
        on_thread.append(str(digest))
        return thread_read(repository, digest)

    monkeypatch.setattr(repositories, "blob", counted)
    layer = b"a layer served from the loop" * 100
    oci.push_image(repo, "v1", layers=[layer])
    digest = digest_of(layer)
    on_thread.clear()
    answers: list[Any] = [
        oci.request(method, f"/v2/{repo}/blobs/{digest}", repo) for method in ("GET", "HEAD")
    ]
    assert [answer.status_code for answer in answers] == [200, 200]
    assert answers[0].content == layer
    assert answers[1].headers["content-length"] == str(len(layer))
    nowait = registry.metadata.reads_nowait
    assert on_thread == ([] if nowait else [digest, digest])
    missing = str(Digest.of(os.urandom(16)))
    answer = oci.request("GET", f"/v2/{repo}/blobs/{missing}", repo)
    assert answer.status_code == 404
    assert answer.json()["errors"][0]["code"] == "BLOB_UNKNOWN"
    assert on_thread[-1] == missing
