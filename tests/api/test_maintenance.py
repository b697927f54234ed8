"""Upload reaping and schema migrations on each backend."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlmodel import SQLModel

import storage.db.tables  # noqa: F401  (registers the tables)
from api.context import Registry
from core.names import RepositoryName
from core.ports import UploadNotFoundError
from core.settings import Settings
from tests.api.oci import OCIClient


def _registry(oci: OCIClient) -> Registry:
    registry: Registry = oci.client.app.state["registry"]  # type: ignore[attr-defined]
    return registry


def test_expired_upload_is_reaped_with_its_data(oci: OCIClient, repo: str) -> None:
    location = oci.request("POST", f"/v2/{repo}/blobs/uploads/", repo).headers["location"]
    patch = oci.request("PATCH", location, repo, content=b"partial data")
    assert patch.status_code == 202
    upload_id = location.rsplit("/", 1)[1]
    registry = _registry(oci)
    repository = registry.repositories.push_target(RepositoryName.parse(repo), False)
    assert b"".join(registry.store.read_upload(repository.storage_id, upload_id)) == b"partial data"
    ttl = registry.settings.limits.upload_ttl_seconds
    assert registry.uploads.reap_expired(datetime.now(UTC)) == 0
    reaped = registry.uploads.reap_expired(datetime.now(UTC) + timedelta(seconds=ttl + 60))
    assert reaped >= 1
    assert oci.request("GET", location, repo).status_code == 404
    with pytest.raises(UploadNotFoundError):
        registry.store.read_upload(repository.storage_id, upload_id)


def test_migrations_match_the_models(app_settings: Settings) -> None:
    engine = sqlalchemy.create_engine(app_settings.resolved_database_url)
    try:
        with engine.connect() as connection:
            diff = compare_metadata(MigrationContext.configure(connection), SQLModel.metadata)
    finally:
        engine.dispose()
    assert diff == []
