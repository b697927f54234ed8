"""The registry app in-process (Litestar TestClient) on each backend.

One app per backend per session; tests isolate themselves by using their own project.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import TestClient
from pydantic import SecretStr

from api.app import create_app
from cli.startup import prepare_installation
from core.settings import S3Settings, Settings, StorageBackend
from tests.api.oci import OCIClient
from tests.conftest import create_bucket
from tests.services.postgres import Postgres
from tests.services.s3 import S3Server

PASSWORD = secrets.token_urlsafe(12)


def _settings(backend: str, root: Path, request: pytest.FixtureRequest) -> Settings:
    base: dict[str, Any] = {
        "data_dir": root,
        "auth": {"admin_password": PASSWORD, "create_project_on_push": True},
        "limits": {"uploads_per_project": 50},
    }
    if backend == "sqlite-fs":
        return Settings(**base)
    postgres: Postgres = request.getfixturevalue("postgres")
    s3: S3Server = request.getfixturevalue("s3")
    bucket = create_bucket(s3, f"api-{secrets.token_hex(4)}")
    return Settings(
        **base,
        database_url=postgres.create_database(f"api_{secrets.token_hex(4)}"),
        storage=StorageBackend.S3,
        s3=S3Settings(
            endpoint_url=s3.endpoint_url,
            bucket=bucket,
            access_key_id=s3.access_key_id,
            secret_access_key=SecretStr(s3.secret_access_key),
        ),
    )


@pytest.fixture(scope="session", params=["sqlite-fs", "pg-s3"])
def app_settings(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Settings:
    settings = _settings(str(request.param), tmp_path_factory.mktemp(str(request.param)), request)
    prepare_installation(settings)
    return settings


@pytest.fixture(scope="session")
def oci(app_settings: Settings) -> Iterator[OCIClient]:
    with TestClient(create_app(app_settings)) as client:
        yield OCIClient(client, PASSWORD)


@pytest.fixture
def repo(oci: OCIClient) -> str:
    from tests.api.oci import unique_project

    return f"{unique_project()}/app"
