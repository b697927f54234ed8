"""The data plane across real API processes: chunks on different processes, crashes, races."""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from tests.api.oci import OCIClient, digest_of, unique_project
from tests.conftest import create_bucket
from tests.services.moorage import MoorageServer, start_moorage
from tests.services.postgres import Postgres
from tests.services.s3 import S3Server


def _env(backend: str, workdir: Path, request: pytest.FixtureRequest) -> dict[str, str]:
    env = {
        "MOORAGE_AUTH__ADMIN_PASSWORD": secrets.token_urlsafe(12),
        "MOORAGE_AUTH__CREATE_PROJECT_ON_PUSH": "true",
        "MOORAGE_DATA_DIR": str(workdir / "data"),
    }
    if backend == "pg-s3":
        postgres: Postgres = request.getfixturevalue("postgres")
        s3: S3Server = request.getfixturevalue("s3")
        env.update(
            {
                "MOORAGE_DATABASE_URL": postgres.create_database(f"proc_{secrets.token_hex(4)}"),
                "MOORAGE_STORAGE": "s3",
                "MOORAGE_S3__ENDPOINT_URL": s3.endpoint_url,
                "MOORAGE_S3__BUCKET": create_bucket(s3, f"proc-{secrets.token_hex(4)}"),
                "MOORAGE_S3__ACCESS_KEY_ID": s3.access_key_id,
                "MOORAGE_S3__SECRET_ACCESS_KEY": s3.secret_access_key,
            }
        )
    return env


@pytest.fixture(params=["sqlite-fs", "pg-s3"])
def shared_env(request: pytest.FixtureRequest, tmp_path: Path) -> dict[str, str]:
    return _env(str(request.param), tmp_path, request)


@pytest.fixture
def two_servers(
    shared_env: dict[str, str], tmp_path: Path
) -> Iterator[tuple[MoorageServer, MoorageServer]]:
    first = start_moorage(tmp_path / "a", shared_env)
    second = start_moorage(tmp_path / "b", shared_env)
    yield first, second
    first.stop()
    second.stop()


def _client(server: MoorageServer) -> OCIClient:
    return OCIClient(httpx.Client(base_url=server.url, timeout=60), server.admin_password)


def test_chunks_on_different_processes(two_servers: tuple[MoorageServer, MoorageServer]) -> None:
    clients = [_client(server) for server in two_servers]
    repo = f"{unique_project()}/app"
    data = os.urandom(3 * 1024 * 1024 + 17)
    location = clients[0].request("POST", f"/v2/{repo}/blobs/uploads/", repo).headers["location"]
    step = 1024 * 1024
    for index, start in enumerate(range(0, len(data), step)):
        chunk = data[start : start + step]
        response = clients[index % 2].request(
            "PATCH",
            location,
            repo,
            content=chunk,
            headers={"Content-Range": f"{start}-{start + len(chunk) - 1}"},
        )
        assert response.status_code == 202, response.text
    status = clients[1].request("GET", location, repo)
    assert status.headers["range"] == f"0-{len(data) - 1}"
    done = clients[1].request("PUT", f"{location}?digest={digest_of(data)}", repo)
    assert done.status_code == 201, done.text
    for client in clients:
        assert client.request("GET", f"/v2/{repo}/blobs/{digest_of(data)}", repo).content == data


def test_crash_mid_chunk_keeps_durable_bytes(shared_env: dict[str, str], tmp_path: Path) -> None:
    victim = start_moorage(tmp_path / "victim", shared_env)
    client = _client(victim)
    repo = f"{unique_project()}/app"
    first, second = os.urandom(1024 * 1024), os.urandom(2 * 1024 * 1024)
    location = client.request("POST", f"/v2/{repo}/blobs/uploads/", repo).headers["location"]
    assert (
        client.request(
            "PATCH", location, repo, content=first, headers={"Content-Range": f"0-{len(first) - 1}"}
        ).status_code
        == 202
    )
    headers = client.headers(repo)
    sent = threading.Event()

    def slow_body() -> Iterator[bytes]:
        yield second[: 512 * 1024]
        sent.set()
        time.sleep(30)
        yield second[512 * 1024 :]

    def doomed() -> None:
        with contextlib.suppress(httpx.HTTPError):
            httpx.patch(f"{victim.url}{location}", content=slow_body(), headers=headers, timeout=60)

    thread = threading.Thread(target=doomed, daemon=True)
    thread.start()
    assert sent.wait(30)
    time.sleep(0.5)
    os.kill(victim.pid, signal.SIGKILL)
    victim.stop()
    survivor = start_moorage(tmp_path / "survivor", shared_env)
    try:
        resumed = _client(survivor)
        status = resumed.request("GET", location, repo)
        assert status.status_code == 204
        assert status.headers["range"] == f"0-{len(first) - 1}"
        patch = resumed.request(
            "PATCH",
            location,
            repo,
            content=second,
            headers={"Content-Range": f"{len(first)}-{len(first) + len(second) - 1}"},
        )
        assert patch.status_code == 202, patch.text
        digest = digest_of(first + second)
        assert resumed.request("PUT", f"{location}?digest={digest}", repo).status_code == 201
        assert resumed.request("GET", f"/v2/{repo}/blobs/{digest}", repo).content == first + second
    finally:
        survivor.stop()


def test_concurrent_identical_pushes_and_tag_race(
    two_servers: tuple[MoorageServer, MoorageServer],
) -> None:
    clients = [_client(server) for server in two_servers]
    projects = [unique_project(), unique_project()]
    repos = [f"{project}/app" for project in projects]
    layer = os.urandom(256 * 1024)
    config = b'{"architecture":"amd64","os":"linux"}'
    tokens = {repo: clients[0].headers(repo) for repo in repos}

    def push(index: int) -> list[int]:
        repo = repos[index % 2]
        http = clients[index % 2].client
        statuses = []
        for blob in (layer, config):
            response = http.post(
                f"/v2/{repo}/blobs/uploads/?digest={digest_of(blob)}",
                content=blob,
                headers=tokens[repo],
            )
            statuses.append(response.status_code)
        manifest = json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "config": {
                    "mediaType": "application/vnd.oci.image.config.v1+json",
                    "digest": digest_of(config),
                    "size": len(config),
                },
                "layers": [
                    {
                        "mediaType": "application/vnd.oci.image.layer.v1.tar",
                        "digest": digest_of(layer),
                        "size": len(layer),
                    }
                ],
            }
        ).encode()
        response = http.put(
            f"/v2/{repo}/manifests/same",
            content=manifest,
            headers={**tokens[repo], "Content-Type": "application/vnd.oci.image.manifest.v1+json"},
        )
        statuses.append(response.status_code)
        return statuses

    with ThreadPoolExecutor(max_workers=16) as pool:
        results = list(pool.map(push, range(50)))
    assert all(status == 201 for statuses in results for status in statuses), results
    for repo in repos:
        got = clients[0].request("GET", f"/v2/{repo}/blobs/{digest_of(layer)}", repo)
        assert got.content == layer

    base = clients[0]
    repo = repos[0]
    manifests = [json.dumps(base.image(repo, layers=[os.urandom(64)])).encode() for _ in range(20)]

    def tag(index: int) -> int:
        response = clients[index % 2].client.put(
            f"/v2/{repo}/manifests/latest",
            content=manifests[index],
            headers={**tokens[repo], "Content-Type": "application/vnd.oci.image.manifest.v1+json"},
        )
        return response.status_code

    with ThreadPoolExecutor(max_workers=20) as pool:
        assert set(pool.map(tag, range(20))) == {201}
    latest = base.request("GET", f"/v2/{repo}/manifests/latest", repo)
    assert latest.headers["docker-content-digest"] in {digest_of(m) for m in manifests}
    for manifest in manifests:
        got = base.request("GET", f"/v2/{repo}/manifests/{digest_of(manifest)}", repo)
        assert got.status_code == 200
        assert got.content == manifest
