"""A pull's lookup: one read for the repository and the manifest, without waiting where
the database allows it, and on a worker thread when a read would have to wait."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from sqlalchemy import Connection
from sqlalchemy.exc import TimeoutError as PoolTimeoutError

from core.errors import OCIErrorCode, RegistryError
from core.names import Reference, RepositoryName
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
    held: list[Connection] = []
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
                held.append(engines.nowait_read.connect())
            except PoolTimeoutError:
                break
        assert held
        assert len(held) < _MAX_HELD
        # Every connection of the loop reader is busy: it declines instead of waiting.
        assert manifests.read_nowait(name, tag) is None
        assert manifests.read(name, tag).digest == pushed.digest
    finally:
        for connection in held:
            connection.close()
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
