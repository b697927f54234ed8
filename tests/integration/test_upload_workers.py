"""A chunked upload spread over the workers of ``moorage api --workers 4`` is never re-read.

Every request of the upload goes on a new connection that a different server worker
accepted than the one before it (the worker holding a connection is read from ``/proc``),
so each chunk, and the completing ``PUT``, continues a hash another process began. The
workers' summed ``moorage_upload_rehash_bytes_total`` stays 0 for SHA-256 uploads; a
SHA-512 upload spread the same way (its hash cannot be continued) shows the counter does
count re-reads in every worker.
"""

from __future__ import annotations

import base64
import http.client
import os
import re
import secrets
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.api.oci import digest_of, unique_project
from tests.conftest import create_bucket
from tests.services.moorage import MoorageServer, start_moorage
from tests.services.postgres import Postgres
from tests.services.process import LOOPBACK
from tests.services.s3 import S3Server
from tests.services.sockets import connect_to_worker, wait_for_workers, worker_pids

pytestmark = pytest.mark.integration

WORKERS = 4
#: Chunk sizes: several not a multiple of SHA-256's 64-byte block, so partial blocks travel.
SIZES = (1_048_583, 65_536, 777, 1_500_001, 1, 524_287, 300_000, 63, 129, 700_001, 64, 999_999)
_REHASHED = re.compile(r'^moorage_upload_rehash_bytes_total\{reason="(\w+)"\} (\S+)$', re.MULTILINE)
_RESUMABLE = re.compile(r"^moorage_upload_hash_resumable (\S+)$", re.MULTILINE)


def _env(backend: str, workdir: Path, request: pytest.FixtureRequest) -> dict[str, str]:
    env = {
        "MOORAGE_DATA_DIR": str(workdir / "data"),
        "MOORAGE_AUTH__CREATE_PROJECT_ON_PUSH": "true",
        "MOORAGE_LOGIN_LIMIT__MAX_FAILURES": "1000",
    }
    if backend == "pg-s3":
        postgres: Postgres = request.getfixturevalue("postgres")
        s3: S3Server = request.getfixturevalue("s3")
        env |= {
            "MOORAGE_DATABASE_URL": postgres.create_database(f"workers_{secrets.token_hex(4)}"),
            "MOORAGE_STORAGE": "s3",
            "MOORAGE_S3__ENDPOINT_URL": s3.endpoint_url,
            "MOORAGE_S3__BUCKET": create_bucket(s3, f"workers-{secrets.token_hex(4)}"),
            "MOORAGE_S3__ACCESS_KEY_ID": s3.access_key_id,
            "MOORAGE_S3__SECRET_ACCESS_KEY": s3.secret_access_key,
        }
    return env


@pytest.fixture(scope="module", params=["sqlite-fs", "pg-s3"])
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[MoorageServer]:
    workdir = tmp_path_factory.mktemp(f"workers-{request.param}")
    server = start_moorage(
        workdir, _env(str(request.param), workdir, request), ["--workers", str(WORKERS)]
    )
    try:
        workers = wait_for_workers(server.pid, server.port, WORKERS)
        assert len(workers) == WORKERS, f"{len(workers)} workers listen; {server.log_path}"
        yield server
    finally:
        server.stop()


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes


@dataclass
class SpreadClient:
    """Sends each request on a new connection held by another worker than the last one."""

    server: MoorageServer
    workers: list[int] = field(default_factory=list)

    def auth(self) -> dict[str, str]:
        pair = f"{self.server.admin_username}:{self.server.admin_password}".encode()
        return {"Authorization": "Basic " + base64.b64encode(pair).decode()}

    def send(
        self, method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None
    ) -> Answer:
        everyone = worker_pids(self.server.pid, self.server.port)
        last = set(self.workers[-1:])
        unused = everyone - set(self.workers)
        found = connect_to_worker(self.server.pid, self.server.port, unused or (everyone - last))
        assert found is not None, "no connection reached another worker"
        connection, worker = found
        self.workers.append(worker)
        try:
            connection.request(method, path, body=body, headers={**self.auth(), **(headers or {})})
            response = connection.getresponse()
            answered = {key.lower(): value for key, value in response.getheaders()}
            return Answer(response.status, answered, response.read())
        finally:
            connection.close()


def _fetch(server: MoorageServer, path: str, headers: dict[str, str]) -> Answer:
    connection = http.client.HTTPConnection(LOOPBACK, server.port, timeout=60)
    try:
        connection.request("GET", path, headers=headers)
        response = connection.getresponse()
        return Answer(response.status, dict(response.getheaders()), response.read())
    finally:
        connection.close()


def _rehashed(server: MoorageServer) -> dict[str, float]:
    """Re-read bytes by reason, summed over every worker."""
    text = _fetch(server, "/metrics", {}).body.decode()
    return {reason: float(value) for reason, value in _REHASHED.findall(text)}


def _chunked_upload(client: SpreadClient, repo: str, data: bytes, digest: str) -> Answer:
    started = client.send("POST", f"/v2/{repo}/blobs/uploads/")
    assert started.status == 202, started.body
    location, offset = started.headers["location"], 0
    for size in SIZES:
        end = offset + size - 1
        patched = client.send(
            "PATCH",
            location,
            data[offset : end + 1],
            {"Content-Range": f"{offset}-{end}", "Content-Type": "application/octet-stream"},
        )
        assert patched.status == 202, patched.body
        assert patched.headers["range"] == f"0-{end}"
        location, offset = patched.headers["location"], end + 1
    return client.send("PUT", f"{location}?digest={digest}")


def _assert_spread(client: SpreadClient) -> None:
    assert len(client.workers) == len(SIZES) + 2
    assert all(a != b for a, b in zip(client.workers, client.workers[1:], strict=False))
    assert len(set(client.workers)) == WORKERS


def test_chunks_on_every_worker_are_hashed_once(server: MoorageServer) -> None:
    repo = f"{unique_project()}/app"
    data = os.urandom(sum(SIZES))
    digest = digest_of(data)
    before = _rehashed(server)
    assert before.keys() == {"no_state", "algorithm", "mismatch"}
    assert _RESUMABLE.findall(_fetch(server, "/metrics", {}).body.decode()) == ["1.0"]
    client = SpreadClient(server)
    done = _chunked_upload(client, repo, data, digest)
    assert done.status == 201, done.body
    assert done.headers["docker-content-digest"] == digest
    _assert_spread(client)
    pulled = _fetch(server, f"/v2/{repo}/blobs/{digest}", client.auth())
    assert pulled.status == 200
    assert pulled.body == data
    assert _rehashed(server) == before


def test_the_re_read_counter_sums_every_worker(server: MoorageServer) -> None:
    """A SHA-512 digest cannot use the running SHA-256: its completion re-reads, counted."""
    repo = f"{unique_project()}/app"
    data = os.urandom(sum(SIZES))
    digest = digest_of(data, "sha512")
    before = _rehashed(server)
    client = SpreadClient(server)
    done = _chunked_upload(client, repo, data, digest)
    assert done.status == 201, done.body
    _assert_spread(client)
    after = _rehashed(server)
    assert after["algorithm"] - before["algorithm"] == len(data)
    assert after["no_state"] == before["no_state"]
