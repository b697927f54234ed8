"""An in-process Moorage whose OIDC provider is the test Keycloak."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from litestar.testing import TestClient

from api.app import create_app
from core.settings import Settings
from storage.db.migrate import upgrade
from tests.services.keycloak import Keycloak

ADMIN = ("admin", "admin-password-kc")
PUBLIC_URL = "http://127.0.0.1:5999"  # NOTE: an allowed redirect of the realm's web client


def kc_settings(keycloak: Keycloak, data_dir: Path) -> Settings:
    return Settings(
        data_dir=data_dir,
        public_url=PUBLIC_URL,
        auth={"admin_password": ADMIN[1], "create_project_on_push": True},
        oidc={
            "issuer": keycloak.issuer,
            "client_secret": "moorage-registry-secret-for-tests",
        },
    )


@pytest.fixture(scope="module")
def kc_app(keycloak: Keycloak, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:  # type: ignore[type-arg]
    settings = kc_settings(keycloak, tmp_path_factory.mktemp("kc-app"))
    upgrade(settings)
    with TestClient(create_app(settings), base_url=PUBLIC_URL) as client:
        created = client.post("/api/v1/projects", json={"name": "kc-team"}, auth=ADMIN)
        assert created.status_code == 201, created.text
        yield client
