"""Session-wide services for the tests, each started once per run (per xdist worker) on demand.

Nothing here starts until a test asks for it. Every service binds 127.0.0.1 on a free port
and keeps its files and log under the worker's own temporary directory.
"""

from __future__ import annotations

import secrets
from typing import TYPE_CHECKING

import boto3
import pytest

from tests.services import forkserver
from tests.services.docker_registry import DockerRegistry, start_docker_registry
from tests.services.keycloak import Keycloak, start_keycloak
from tests.services.moorage import MoorageServer, start_moorage
from tests.services.postgres import Postgres, start_postgres
from tests.services.s3 import S3Server, start_moto
from tests.services.temporal import TemporalServer, start_temporal
from tests.services.tools import MissingToolError, find_tool

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

BACKENDS = ("sqlite-fs", "pg-s3")


def pytest_configure() -> None:
    """Start the suite's ``python -m cli.main`` processes from a fork server."""
    forkserver.enable()


@pytest.fixture(scope="session")
def services_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Root of this run's (this worker's) service directories."""
    return tmp_path_factory.mktemp("services")


@pytest.fixture(scope="session")
def postgres(services_dir: Path) -> Iterator[Postgres]:
    server = start_postgres(services_dir / "postgres")
    yield server
    server.stop()


@pytest.fixture(scope="session")
def s3(services_dir: Path) -> Iterator[S3Server]:
    server = start_moto(services_dir / "moto")
    yield server
    server.stop()


@pytest.fixture(scope="session")
def temporal_server(services_dir: Path) -> Iterator[TemporalServer]:
    server = start_temporal(services_dir / "temporal")
    yield server
    server.stop()


@pytest.fixture(scope="session")
def docker_registry(services_dir: Path) -> Iterator[DockerRegistry]:
    server = start_docker_registry(services_dir / "docker-registry")
    yield server
    server.stop()


@pytest.fixture(scope="session")
def keycloak(services_dir: Path) -> Iterator[Keycloak]:
    """A real Keycloak with the realm of ``deploy/keycloak`` (one per worker; tests that
    use it share the ``keycloak`` xdist group so that only one worker starts it)."""
    server = start_keycloak(services_dir / "keycloak")
    print(f"\nkeycloak started in {server.startup_seconds:.1f} s")
    yield server
    server.stop()


def create_bucket(s3: S3Server, name: str) -> str:
    """Create bucket ``name`` on the test S3 server and return the name."""
    client = boto3.client(
        "s3",
        endpoint_url=s3.endpoint_url,
        aws_access_key_id=s3.access_key_id,
        aws_secret_access_key=s3.secret_access_key,
        region_name="us-east-1",
    )
    client.create_bucket(Bucket=name)
    return name


def _common_env(temporal_server: TemporalServer) -> dict[str, str]:
    return {
        "MOORAGE_AUTH__ADMIN_PASSWORD": secrets.token_urlsafe(18),
        "MOORAGE_AUTH__CREATE_PROJECT_ON_PUSH": "true",
        "MOORAGE_TEMPORAL__ADDRESS": temporal_server.address,
    }


@pytest.fixture(scope="session")
def moorage_sqlite_fs(
    services_dir: Path, temporal_server: TemporalServer
) -> Iterator[MoorageServer]:
    """Moorage on SQLite and the filesystem blob store, all under a temporary data dir."""
    workdir = services_dir / "moorage-sqlite-fs"
    env = {
        **_common_env(temporal_server),
        "MOORAGE_DATA_DIR": str(workdir / "data"),
        "MOORAGE_STORAGE": "filesystem",
    }
    server = start_moorage(workdir, env)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def moorage_pg_s3(
    services_dir: Path, postgres: Postgres, s3: S3Server, temporal_server: TemporalServer
) -> Iterator[MoorageServer]:
    """Moorage on PostgreSQL and S3 (moto), with the Temporal dev server."""
    workdir = services_dir / "moorage-pg-s3"
    bucket = create_bucket(s3, f"moorage-{secrets.token_hex(4)}")
    env = {
        **_common_env(temporal_server),
        "MOORAGE_DATA_DIR": str(workdir / "data"),
        "MOORAGE_DATABASE_URL": postgres.create_database("moorage_pg_s3"),
        "MOORAGE_STORAGE": "s3",
        "MOORAGE_S3__ENDPOINT_URL": s3.endpoint_url,
        "MOORAGE_S3__BUCKET": bucket,
        "MOORAGE_S3__ACCESS_KEY_ID": s3.access_key_id,
        "MOORAGE_S3__SECRET_ACCESS_KEY": s3.secret_access_key,
    }
    server = start_moorage(workdir, env)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def registry(moorage_sqlite_fs: MoorageServer) -> MoorageServer:
    """The default registry under test: the quickest backend (SQLite + filesystem)."""
    return moorage_sqlite_fs


@pytest.fixture(scope="session", params=BACKENDS)
def backend_registry(request: pytest.FixtureRequest) -> MoorageServer:
    """The registry under test on each backend: tests using it run once per backend."""
    name = "moorage_" + str(request.param).replace("-", "_")
    server: MoorageServer = request.getfixturevalue(name)
    return server


def _tool(name: str) -> str:
    try:
        return find_tool(name)
    except MissingToolError as exc:
        pytest.fail(str(exc), pytrace=False)


@pytest.fixture(scope="session")
def crane() -> str:
    return _tool("crane")


@pytest.fixture(scope="session")
def oras() -> str:
    return _tool("oras")


@pytest.fixture(scope="session")
def helm() -> str:
    return _tool("helm")


@pytest.fixture(scope="session")
def skopeo() -> str:
    return _tool("skopeo")


@pytest.fixture(scope="session")
def oci_conformance() -> str:
    return _tool("oci-conformance.test")
