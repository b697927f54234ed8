"""Smoke tests: each service the test command starts answers like the real thing."""

from __future__ import annotations

import hashlib
import os
import secrets
from typing import TYPE_CHECKING

import boto3
import httpx
import pytest
from temporalio.api.workflowservice.v1 import GetSystemInfoRequest
from temporalio.client import Client

from tests.conftest import create_bucket
from tests.services.docker_registry import DockerRegistry, S3Storage, start_docker_registry
from tests.services.moorage import start_moorage
from tests.services.process import ServiceStartError

if TYPE_CHECKING:
    from pathlib import Path

    from tests.services.postgres import Postgres
    from tests.services.s3 import S3Server
    from tests.services.temporal import TemporalServer

pytestmark = pytest.mark.integration


def test_postgres_answers_and_creates_databases(postgres: Postgres) -> None:
    with postgres.connect() as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)
    name = f"smoke_{secrets.token_hex(4)}"
    url = postgres.create_database(name)
    assert url == f"postgresql+psycopg://postgres@127.0.0.1:{postgres.port}/{name}"
    with postgres.connect(name) as conn:
        assert conn.execute("SELECT current_database()").fetchone() == (name,)
    with postgres.connect() as conn:
        rows = conn.execute(
            "SELECT name, setting FROM pg_settings WHERE name IN "
            "('fsync', 'full_page_writes', 'synchronous_commit', 'listen_addresses')"
        ).fetchall()
    settings = {str(name): str(value) for name, value in rows}
    assert settings == {
        "fsync": "off",
        "full_page_writes": "off",
        "synchronous_commit": "off",
        "listen_addresses": "127.0.0.1",
    }


def test_moto_serves_s3(s3: S3Server) -> None:
    bucket = create_bucket(s3, f"smoke-{secrets.token_hex(4)}")
    client = boto3.client(
        "s3",
        endpoint_url=s3.endpoint_url,
        aws_access_key_id=s3.access_key_id,
        aws_secret_access_key=s3.secret_access_key,
        region_name="us-east-1",
    )
    client.put_object(Bucket=bucket, Key="k", Body=b"v")
    assert client.get_object(Bucket=bucket, Key="k")["Body"].read() == b"v"


async def test_temporal_client_connects(temporal_server: TemporalServer) -> None:
    client = await Client.connect(temporal_server.address)
    assert client.namespace == "default"
    info = await client.workflow_service.get_system_info(GetSystemInfoRequest())
    assert info.server_version


def _push_blob(registry_url: str, repo: str, data: bytes) -> str:
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    with httpx.Client(base_url=registry_url, timeout=10) as http:
        started = http.post(f"/v2/{repo}/blobs/uploads/")
        assert started.status_code == 202, started.text
        location = started.headers["Location"]
        separator = "&" if "?" in location else "?"
        done = http.put(f"{location}{separator}digest={digest}", content=data)
        assert done.status_code == 201, done.text
        fetched = http.get(f"/v2/{repo}/blobs/{digest}", follow_redirects=True)
        assert fetched.status_code == 200
        assert fetched.content == data
    return digest


def test_docker_registry_serves_v2(docker_registry: DockerRegistry) -> None:
    response = httpx.get(f"{docker_registry.url}/v2/", timeout=5)
    assert response.status_code == 200
    _push_blob(docker_registry.url, "smoke/fs", os.urandom(1000))


def test_docker_registry_on_s3(s3: S3Server, tmp_path: Path) -> None:
    bucket = create_bucket(s3, f"smoke-dr-{secrets.token_hex(4)}")
    storage = S3Storage(
        endpoint_url=s3.endpoint_url,
        bucket=bucket,
        access_key_id=s3.access_key_id,
        secret_access_key=s3.secret_access_key,
    )
    registry = start_docker_registry(tmp_path / "dr-s3", storage, redirect=False)
    try:
        _push_blob(registry.url, "smoke/s3", os.urandom(1000))
    finally:
        registry.stop()


def test_a_service_that_dies_reports_its_log(tmp_path: Path) -> None:
    with pytest.raises(ServiceStartError) as caught:
        start_moorage(tmp_path, {"MOORAGE_STORAGE": "no-such-backend"})
    message = str(caught.value)
    assert "exited with code" in message
    assert "no-such-backend" in message  # the settings error, from the log tail
