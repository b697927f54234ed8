"""An in-process Moorage whose OIDC provider is the test Keycloak."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from litestar.testing import TestClient
from pydantic import SecretStr

from api.app import create_app
from cli.startup import prepare_installation
from core.identity_settings import OidcSettings
from core.settings import AuthSettings, Settings
from tests.services.keycloak import Keycloak
from tests.services.moorage import MoorageServer, start_moorage
from tests.services.sockets import wait_for_workers

ADMIN = ("admin", "admin-password-kc")
PUBLIC_URL = "http://127.0.0.1:5999"  # NOTE: an allowed redirect of the realm's web client
#: Server worker processes of a ``moorage api`` under test: more than one, so that
#: every per-process cache exists twice and must agree with the database and Keycloak.
API_WORKERS = 2


def kc_settings(keycloak: Keycloak, data_dir: Path) -> Settings:
    return Settings(
        data_dir=data_dir,
        public_url=PUBLIC_URL,
        auth=AuthSettings(admin_password=SecretStr(ADMIN[1]), create_project_on_push=True),
        oidc=OidcSettings(
            issuer=keycloak.issuer, client_secret=SecretStr("moorage-registry-secret-for-tests")
        ),
    )


@pytest.fixture(scope="module")
def kc_app(keycloak: Keycloak, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:  # type: ignore[type-arg]
    settings = kc_settings(keycloak, tmp_path_factory.mktemp("kc-app"))
    prepare_installation(settings)
    with TestClient(create_app(settings), base_url=PUBLIC_URL) as client:
        created = client.post("/api/v1/projects", json={"name": "kc-team"}, auth=ADMIN)
        assert created.status_code == 201, created.text
        yield client


def kc_env(keycloak: Keycloak | None, data_dir: Path) -> dict[str, str]:
    """The ``MOORAGE_*`` variables of :func:`kc_settings` (no OIDC without ``keycloak``).

    No public URL: real clients follow the token challenge to the address they called.
    Failed-login throttling is not under test here: refused credentials are retried until
    every worker has answered, so its limit is raised out of the way.
    """
    env = {
        "MOORAGE_DATA_DIR": str(data_dir),
        "MOORAGE_STORAGE": "filesystem",
        "MOORAGE_AUTH__CREATE_PROJECT_ON_PUSH": "true",
        "MOORAGE_LOGIN_LIMIT__MAX_FAILURES": "1000",
    }
    if keycloak is not None:
        env["MOORAGE_OIDC__ISSUER"] = keycloak.issuer
        env["MOORAGE_OIDC__CLIENT_SECRET"] = "moorage-registry-secret-for-tests"
    return env


def start_api_process(workdir: Path, keycloak: Keycloak | None) -> MoorageServer:
    """``moorage api --workers API_WORKERS``; returns once every worker listens."""
    server = start_moorage(
        workdir, kc_env(keycloak, workdir / "data"), ["--workers", str(API_WORKERS)]
    )
    workers = wait_for_workers(server.pid, server.port, API_WORKERS)
    if len(workers) < API_WORKERS:
        server.stop()
        pytest.fail(f"only {len(workers)} of {API_WORKERS} workers listen; {server.log_path}")
    return server


@pytest.fixture(scope="module")
def kc_process(
    keycloak: Keycloak, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[MoorageServer]:
    """A real ``moorage api`` (granian, several workers) whose OIDC provider is Keycloak."""
    server = start_api_process(tmp_path_factory.mktemp("kc-process"), keycloak)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def plain_process(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MoorageServer]:
    """A real ``moorage api`` without OIDC (Keycloak can only be a trusted issuer there)."""
    server = start_api_process(tmp_path_factory.mktemp("plain-process"), None)
    yield server
    server.stop()
