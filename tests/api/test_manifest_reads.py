"""A pull's lookup: one read for the repository and the manifest, without waiting where
the database allows it, and on a worker thread when a read would have to wait."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from datetime import UTC, datetime

import pytest
import sqlalchemy

from core.errors import OCIErrorCode, RegistryError
from core.names import Reference, RepositoryName
from core.ports import ReadWouldWait
from core.records import ManifestRecord
from core.services.manifests import ManifestService
from core.settings import Settings
from storage.db.engine import create_engines
from storage.db.metadata import SqlMetadata
from tests.api.oci import OCIClient

#: More than the event loop reader's pool could ever hold.
_MAX_HELD = 16


def test_lookup_without_waiting_and_its_fallback(
    app_settings: Settings, oci: OCIClient, repo: str
) -> None:
    pushed = oci.push_image(repo, "v1")
    engines = create_engines(app_settings)
    metadata = SqlMetadata(engines)
    manifests = ManifestService(metadata, nowait=metadata if metadata.reads_nowait else None)
    name, tag = RepositoryName.parse(repo), Reference.parse("v1")
    held: list[sqlite3.Connection] = []
    try:
        assert manifests.read(name, tag).digest == pushed.digest
        if engines.nowait_read is None:
            # NOTE: PostgreSQL reads cross the network: they always run on worker threads.
            assert manifests.read_nowait(name, tag) is None
            return
        found = manifests.read_nowait(name, tag)
        assert found is not None
        assert found.payload == pushed.payload
        for _ in range(_MAX_HELD):
            try:
                held.append(engines.nowait_read.checkout())
            except ReadWouldWait:
                break
        assert held
        assert len(held) < _MAX_HELD
        # Every connection of the loop reader is busy: it declines instead of waiting.
        assert manifests.read_nowait(name, tag) is None
        assert manifests.read(name, tag).digest == pushed.digest
    finally:
        for connection in held:
            if engines.nowait_read is not None:
                engines.nowait_read.checkin(connection)
        engines.dispose()


@pytest.mark.parametrize("reference", ["v1", "missing"])
def test_lookup_errors_name_the_missing_part(
    app_settings: Settings, oci: OCIClient, repo: str, reference: str
) -> None:
    oci.push_image(repo, "v1")
    engines = create_engines(app_settings)
    metadata = SqlMetadata(engines)
    manifests = ManifestService(metadata, nowait=metadata if metadata.reads_nowait else None)
    try:
        other = RepositoryName.parse(f"{repo}-absent")
        lookups: list[Callable[[RepositoryName, Reference], ManifestRecord | None]] = [
            manifests.read
        ]
        if engines.nowait_read is not None:
            lookups.append(manifests.read_nowait)
        for lookup in lookups:
            with pytest.raises(RegistryError) as unknown_name:
                lookup(other, Reference.parse(reference))
            assert unknown_name.value.code == OCIErrorCode.NAME_UNKNOWN
            if reference == "missing":
                with pytest.raises(RegistryError) as unknown_manifest:
                    lookup(RepositoryName.parse(repo), Reference.parse(reference))
                assert unknown_manifest.value.code == OCIErrorCode.MANIFEST_UNKNOWN
            else:
                found = lookup(RepositoryName.parse(repo), Reference.parse(reference))
                assert found is not None
                assert found.media_type
    finally:
        engines.dispose()


def test_both_lookups_return_the_same_record(
    app_settings: Settings, oci: OCIClient, repo: str
) -> None:
    pushed = oci.push_image(repo, "v1")
    engines = create_engines(app_settings)
    metadata = SqlMetadata(engines)
    manifests = ManifestService(metadata, nowait=metadata if metadata.reads_nowait else None)
    pulled = datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)
    try:
        with engines.write.begin() as c:
            c.execute(
                sqlalchemy.text("UPDATE manifest SET pulled_at = :t WHERE digest = :d"),
                {"t": pulled, "d": pushed.digest},
            )
        name = RepositoryName.parse(repo)
        for reference in (Reference.parse("v1"), Reference.parse(pushed.digest)):
            found = manifests.read(name, reference)
            assert found.pulled_at == pulled
            if engines.nowait_read is not None:
                assert manifests.read_nowait(name, reference) == found
    finally:
        engines.dispose()


def test_repository_lookup_without_waiting(
    app_settings: Settings, oci: OCIClient, repo: str
) -> None:
    from core.services.projects import ProjectService
    from core.services.repositories import RepositoryService
    from storage.blobs import build_blob_store

    oci.push_image(repo, "v1")
    engines = create_engines(app_settings)
    metadata = SqlMetadata(engines)
    nowait = metadata if metadata.reads_nowait else None
    projects = ProjectService(metadata, build_blob_store(app_settings))
    repositories = RepositoryService(metadata, projects, nowait=nowait)
    try:
        name = RepositoryName.parse(repo)
        found = repositories.find(name)
        assert found is not None
        if nowait is None:
            assert repositories.find_nowait(name) is None  # PostgreSQL: worker threads only
            return
        assert repositories.find_nowait(name) == found
        assert repositories.find_nowait(RepositoryName.parse(f"{repo}-absent")) is None
    finally:
        engines.dispose()
