"""Proxy projects against a real upstream: Debian's docker-registry behind a counting front.

One Moorage API process (one worker, so "one upstream fetch" is one process's promise)
on SQLite and the filesystem, with loopback allowed as an outbound destination.
``skopeo`` and ``crane`` pull through the proxy project; the front counts what reaches
the upstream, corrupts blobs, demands token auth or names a foreign token realm.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import sqlite3
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from tests.api.oci import OCIClient, unique_project
from tests.clients.commands import make_client_home, run
from tests.conftest import create_bucket
from tests.services.moorage import MoorageServer, start_moorage
from tests.services.registry_front import RegistryFront
from tests.services.tools import find_tool

if TYPE_CHECKING:
    from collections.abc import Iterator

    from tests.services.docker_registry import DockerRegistry
    from tests.services.postgres import Postgres
    from tests.services.s3 import S3Server

pytestmark = pytest.mark.integration

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
WAIT_SECONDS = 60.0
SECRET = "s3cret-" + secrets.token_hex(8)


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


#: What every proxy test server allows: loopback upstreams over plain HTTP, quick reloads.
PROXY_ENV = {
    "MOORAGE_OUTBOUND__ALLOW": '["127.0.0.0/8"]',
    "MOORAGE_OUTBOUND__ALLOW_HTTP": "true",
    "MOORAGE_PROXY__REFRESH_SECONDS": "0.5",
}


def _proxying_moorage(
    tmp_path_factory: pytest.TempPathFactory, name: str, workers: int
) -> Iterator[MoorageServer]:
    workdir = tmp_path_factory.mktemp(name)
    env = {"MOORAGE_DATA_DIR": str(workdir / "data"), **PROXY_ENV}
    server = start_moorage(workdir, env, ["--workers", str(workers)])
    yield server
    server.stop()


@pytest.fixture(scope="module")
def moorage(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MoorageServer]:
    yield from _proxying_moorage(tmp_path_factory, "moorage-proxy", 1)


@pytest.fixture(scope="module")
def moorage_two_workers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MoorageServer]:
    """Two API worker processes sharing one data directory (and their fetch locks)."""
    yield from _proxying_moorage(tmp_path_factory, "moorage-proxy-workers", 2)


@pytest.fixture(scope="module")
def moorage_pg_s3(
    tmp_path_factory: pytest.TempPathFactory, postgres: Postgres, s3: S3Server
) -> Iterator[MoorageServer]:
    """The same on PostgreSQL and S3 (moto): the cache fills through multipart uploads."""
    workdir = tmp_path_factory.mktemp("moorage-proxy-pg-s3")
    env = {
        "MOORAGE_DATA_DIR": str(workdir / "data"),
        "MOORAGE_OUTBOUND__ALLOW": '["127.0.0.0/8"]',
        "MOORAGE_OUTBOUND__ALLOW_HTTP": "true",
        "MOORAGE_DATABASE_URL": postgres.create_database(f"proxy_{secrets.token_hex(4)}"),
        "MOORAGE_STORAGE": "s3",
        "MOORAGE_S3__ENDPOINT_URL": s3.endpoint_url,
        "MOORAGE_S3__BUCKET": create_bucket(s3, f"proxy-{secrets.token_hex(4)}"),
        "MOORAGE_S3__ACCESS_KEY_ID": s3.access_key_id,
        "MOORAGE_S3__SECRET_ACCESS_KEY": s3.secret_access_key,
    }
    server = start_moorage(workdir, env, ["--workers", "1"])
    yield server
    server.stop()


@pytest.fixture
def front(docker_registry: DockerRegistry) -> Iterator[RegistryFront]:
    server = RegistryFront(docker_registry.url)
    yield server
    server.close()


@pytest.fixture
def admin(moorage: MoorageServer) -> Iterator[httpx.Client]:
    auth = (moorage.admin_username, moorage.admin_password)
    with httpx.Client(base_url=moorage.url, auth=auth, timeout=120) as client:
        yield client


@pytest.fixture
def oci(moorage: MoorageServer) -> Iterator[OCIClient]:
    with httpx.Client(base_url=moorage.url, timeout=120) as client:
        yield OCIClient(client, moorage.admin_password, moorage.admin_username)


def proxy_project(
    admin: httpx.Client,
    front: RegistryFront,
    *,
    freshness: int = 60,
    endpoint: dict[str, Any] | None = None,
) -> str:
    """A new project bound to a new endpoint for ``front``; returns the project name."""
    project = unique_project()
    name = f"ep-{project}"
    body = {"name": name, "url": front.url, "type": "distribution", **(endpoint or {})}
    created = admin.post("/api/v1/registries", json=body)
    assert created.status_code == 201, created.text
    assert admin.post("/api/v1/projects", json={"name": project}).status_code == 201
    bound = admin.put(
        f"/api/v1/projects/{project}/proxy",
        json={"endpoint": name, "freshness_seconds": freshness},
    )
    assert bound.status_code == 200, bound.text
    return project


def push_upstream(registry: DockerRegistry, repo: str, tag: str, layers: list[bytes]) -> str:
    """Push an image straight into docker-registry; return its manifest digest."""
    config = json.dumps({"architecture": "amd64", "os": "linux", "n": secrets.token_hex(8)})
    blobs = [config.encode(), *layers]
    with httpx.Client(base_url=registry.url, timeout=120) as client:
        for blob in blobs:
            start = client.post(f"/v2/{repo}/blobs/uploads/")
            assert start.status_code == 202, start.text
            location = start.headers["location"]
            separator = "&" if "?" in location else "?"
            done = client.put(f"{location}{separator}digest={sha(blob)}", content=blob)
            assert done.status_code == 201, done.text
        manifest = json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": OCI_MANIFEST,
                "config": {
                    "mediaType": "application/vnd.oci.image.config.v1+json",
                    "digest": sha(blobs[0]),
                    "size": len(blobs[0]),
                },
                "layers": [
                    {
                        "mediaType": "application/vnd.oci.image.layer.v1.tar",
                        "digest": sha(layer),
                        "size": len(layer),
                    }
                    for layer in layers
                ],
            }
        ).encode()
        put = client.put(
            f"/v2/{repo}/manifests/{tag}",
            content=manifest,
            headers={"Content-Type": OCI_MANIFEST},
        )
        assert put.status_code == 201, put.text
    return sha(manifest)


def wait_for(check: Any, what: str) -> None:
    deadline = time.monotonic() + WAIT_SECONDS
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def cached_tags(oci: OCIClient, repo: str) -> list[str]:
    response = oci.request("GET", f"/v2/{repo}/tags/list", repo)
    if response.status_code != 200:
        return []
    return list(response.json().get("tags") or [])


def blob_path(repo: str, digest: str) -> str:
    return f"/v2/{repo}/blobs/{digest}"


def blob_url(oci: OCIClient, repo: str, digest: str) -> str:
    return f"{oci.client.base_url}{blob_path(repo, digest)}".replace("//v2", "/v2")


def pull_blob(url: str, headers: dict[str, str]) -> str:
    """GET a blob on a connection of its own, as a client does (redirects to the download
    listener followed); the digest of what arrived."""
    with httpx.Client(timeout=120, follow_redirects=True) as client:
        response = client.get(url, headers=headers)
        assert response.status_code == 200, response.text
        return sha(response.content)


# registry endpoints


def test_endpoint_secret_is_sealed_never_returned_and_health_checks_the_token_flow(
    moorage: MoorageServer, admin: httpx.Client, front: RegistryFront
) -> None:
    front.config.token_auth = ("puller", SECRET)
    name = f"ep-{secrets.token_hex(4)}"
    body = {
        "name": name,
        "url": front.url,
        "type": "distribution",
        "credential": "basic",
        "username": "puller",
        "secret": SECRET,
    }
    created = admin.post("/api/v1/registries", json=body)
    assert created.status_code == 201, created.text
    assert created.json()["has_secret"] is True
    listed = admin.get("/api/v1/registries")
    one = admin.get(f"/api/v1/registries/{name}")
    for response in (created, listed, one):
        assert SECRET not in response.text
    health = admin.post(f"/api/v1/registries/{name}/health")
    assert health.status_code == 200, health.text
    assert health.json() == {"healthy": True, "status": 200, "reason": None}
    assert front.count("GET", "/token") == 1
    # NOTE: the stored value is sealed; neither the database nor the log hold it in clear.
    database = Path(moorage.env["MOORAGE_DATA_DIR"]) / "moorage.db"
    with sqlite3.connect(database) as connection:
        (sealed,) = connection.execute(
            "SELECT sealed_secret FROM registry_endpoint WHERE name = ?", (name,)
        ).fetchone()
    assert sealed.startswith("v1.")
    assert SECRET not in sealed
    assert SECRET not in moorage.log_path.read_text(errors="replace")

    # a wrong secret (kept when PUT sends none) makes the endpoint unhealthy
    changed = admin.put(f"/api/v1/registries/{name}", json={**body, "secret": "wrong"})
    assert changed.status_code == 200, changed.text
    unhealthy = admin.post(f"/api/v1/registries/{name}/health").json()
    assert unhealthy["healthy"] is False
    assert "401" in unhealthy["reason"]


def test_endpoint_url_must_pass_the_outbound_policy(admin: httpx.Client) -> None:
    body = {"name": f"ep-{secrets.token_hex(4)}", "url": "ftp://127.0.0.1:1"}
    refused = admin.post("/api/v1/registries", json=body)
    assert refused.status_code in (400, 422), refused.text
    assert "url" in refused.text
    insecure = {
        "name": f"ep-{secrets.token_hex(4)}",
        "url": "https://example.com",
        "insecure": True,
    }
    assert admin.post("/api/v1/registries", json=insecure).status_code in (400, 422)


# pull through


def test_skopeo_and_crane_pull_through_the_proxy_then_from_the_cache(
    moorage: MoorageServer,
    admin: httpx.Client,
    oci: OCIClient,
    front: RegistryFront,
    docker_registry: DockerRegistry,
    tmp_path: Path,
) -> None:
    project = proxy_project(admin, front, freshness=3600)
    upstream_repo = f"library/app-{secrets.token_hex(4)}"
    layer = os.urandom(512 * 1024)
    digest = push_upstream(docker_registry, upstream_repo, "3", [layer])
    repo = f"{project}/{upstream_repo}"
    home = make_client_home(tmp_path / "home")
    env = home.env()
    login = (moorage.admin_username, moorage.admin_password)
    skopeo = find_tool("skopeo")
    run(
        [skopeo, "copy", "--preserve-digests", "--src-tls-verify=false",
             "--src-creds", ":".join(login),
         f"docker://{moorage.host_port}/{repo}:3", f"oci:{tmp_path / 'layout'}:3"],
        env=env,
    )  # fmt: skip
    index = json.loads((tmp_path / "layout" / "index.json").read_text())
    assert index["manifests"][0]["digest"] == digest
    assert front.count("GET", blob_path(upstream_repo, sha(layer))) == 1

    wait_for(lambda: cached_tags(oci, repo) == ["3"], "the cache fill to store tag 3")
    crane = find_tool("crane")
    run([crane, "auth", "login", moorage.host_port, "-u", login[0], "--password-stdin"],
        env=env, stdin=login[1])  # fmt: skip
    before = front.total()
    pulled = run([crane, "--insecure", "digest", f"{moorage.host_port}/{repo}:3"], env=env)
    assert pulled.stdout.strip() == digest
    run([crane, "--insecure", "pull", f"{moorage.host_port}/{repo}:3", str(tmp_path / "i.tar")],
        env=env)  # fmt: skip
    assert front.total() == before, "a fresh cached tag and its blobs never reach the upstream"

    # the upstream goes down: the cached copy is still served
    front.stop()
    offline = run([crane, "--insecure", "digest", f"{moorage.host_port}/{repo}@{digest}"], env=env)
    assert offline.stdout.strip() == digest
    got = oci.request("GET", blob_path(repo, sha(layer)), repo)
    assert got.status_code == 200
    assert sha(got.content) == sha(layer)


def test_a_stale_tag_is_revalidated_with_head_and_served_from_cache_when_upstream_is_down(
    moorage: MoorageServer,
    admin: httpx.Client,
    oci: OCIClient,
    front: RegistryFront,
    docker_registry: DockerRegistry,
) -> None:
    project = proxy_project(admin, front, freshness=0)
    upstream_repo = f"team/svc-{secrets.token_hex(4)}"
    first = push_upstream(docker_registry, upstream_repo, "v1", [os.urandom(2048)])
    repo = f"{project}/{upstream_repo}"
    accept = {"Accept": OCI_MANIFEST}
    served = oci.request("GET", f"/v2/{repo}/manifests/v1", repo, headers=accept)
    assert served.status_code == 200
    assert sha(served.content) == first
    wait_for(lambda: cached_tags(oci, repo) == ["v1"], "tag v1 cached")
    # NOTE: the pull that filled the cache counts for retention by pull time.
    database = Path(moorage.env["MOORAGE_DATA_DIR"]) / "moorage.db"
    with sqlite3.connect(database) as connection:
        (pulled_at,) = connection.execute(
            "SELECT pulled_at FROM manifest WHERE digest = ?", (first,)
        ).fetchone()
    assert pulled_at is not None

    manifest_path = f"/v2/{upstream_repo}/manifests/v1"
    gets = front.count("GET", manifest_path)
    again = oci.request("GET", f"/v2/{repo}/manifests/v1", repo, headers=accept)
    assert sha(again.content) == first
    assert front.count("HEAD", manifest_path) == 1
    assert front.count("GET", manifest_path) == gets, "same digest: no manifest GET"

    # the tag moves upstream: the next pull fetches the new manifest by digest
    second = push_upstream(docker_registry, upstream_repo, "v1", [os.urandom(2048)])
    moved = oci.request("GET", f"/v2/{repo}/manifests/v1", repo, headers=accept)
    assert sha(moved.content) == second
    assert front.count("GET", f"/v2/{upstream_repo}/manifests/{second}") == 1
    tag_url = f"/api/v1/projects/{project}/repositories/{upstream_repo}/tags/v1"
    wait_for(lambda: admin.get(tag_url).json().get("digest") == second, "the moved tag cached")
    assert front.count("GET", manifest_path) == gets

    front.stop()
    stale = oci.request("GET", f"/v2/{repo}/manifests/v1", repo, headers=accept)
    assert stale.status_code == 200
    assert sha(stale.content) == second


def test_upstream_down_without_a_cached_copy_fails_cleanly(
    admin: httpx.Client, oci: OCIClient, front: RegistryFront
) -> None:
    project = proxy_project(admin, front)
    front.stop()
    repo = f"{project}/library/absent"
    response = oci.request("GET", f"/v2/{repo}/manifests/latest", repo)
    assert response.status_code == 503, response.text
    assert response.json()["errors"][0]["code"] == "UNAVAILABLE"
    missing = oci.request("GET", blob_path(repo, sha(b"nothing")), repo)
    assert missing.status_code == 503


def test_pushes_into_a_proxy_project_are_denied(
    admin: httpx.Client, oci: OCIClient, front: RegistryFront
) -> None:
    project = proxy_project(admin, front)
    repo = f"{project}/library/mine"
    upload = oci.request("POST", f"/v2/{repo}/blobs/uploads/", repo)
    assert upload.status_code == 403
    error = upload.json()["errors"][0]
    assert error["code"] == "DENIED"
    assert "proxy cache" in error["message"]
    put = oci.request(
        "PUT",
        f"/v2/{repo}/manifests/v1",
        repo,
        content=b"{}",
        headers={"Content-Type": OCI_MANIFEST},
    )
    assert put.status_code == 403

    # the endpoint stays while a project uses it; unbinding keeps the project's content
    endpoint = admin.get(f"/api/v1/projects/{project}/proxy").json()["endpoint"]
    assert admin.delete(f"/api/v1/registries/{endpoint}").status_code == 409
    assert admin.delete(f"/api/v1/projects/{project}/proxy").status_code == 204
    assert admin.get(f"/api/v1/projects/{project}/proxy").json()["endpoint"] is None
    assert oci.request("POST", f"/v2/{repo}/blobs/uploads/", repo).status_code == 202
    assert admin.delete(f"/api/v1/registries/{endpoint}").status_code == 204


# concurrency and faults


def test_twenty_concurrent_pulls_of_an_uncached_blob_make_one_upstream_fetch(
    admin: httpx.Client, oci: OCIClient, front: RegistryFront, docker_registry: DockerRegistry
) -> None:
    project = proxy_project(admin, front)
    upstream_repo = f"big/blob-{secrets.token_hex(4)}"
    layer = os.urandom(24 * 1024 * 1024)
    push_upstream(docker_registry, upstream_repo, "v1", [layer])
    repo = f"{project}/{upstream_repo}"
    headers = oci.headers(repo, "pull")
    url = blob_url(oci, repo, sha(layer))

    def pull(_: int) -> str:
        # Cached blobs this large are answered with a redirect to the download listener.
        return pull_blob(url, headers)

    with ThreadPoolExecutor(max_workers=20) as pool:
        digests = list(pool.map(pull, range(20)))
    assert digests == [sha(layer)] * 20
    assert front.count("GET", blob_path(upstream_repo, sha(layer))) == 1
    assert pull(0) == sha(layer)
    assert front.count("GET", blob_path(upstream_repo, sha(layer))) == 1, "served from cache"


def _pull_manifest(oci: OCIClient, repo: str) -> list[str]:
    """Pull ``repo:v1``'s manifest (only); its blobs' digests, config first."""
    response = oci.request(
        "GET", f"/v2/{repo}/manifests/v1", repo, headers={"Accept": OCI_MANIFEST}
    )
    assert response.status_code == 200, response.text
    document = response.json()
    return [document["config"]["digest"], *(layer["digest"] for layer in document["layers"])]


def test_the_fill_fetches_a_manifests_blobs_in_its_order_one_at_a_time(
    admin: httpx.Client, oci: OCIClient, front: RegistryFront, docker_registry: DockerRegistry
) -> None:
    """A manifest-only pull caches the whole image, one blob after another, config first.

    So a client pulling its blobs in turn never shares the upstream with the fill's
    downloads of the blobs it will ask for later.
    """
    project = proxy_project(admin, front)
    upstream_repo = f"order/img-{secrets.token_hex(4)}"
    push_upstream(docker_registry, upstream_repo, "v1", [os.urandom(2 << 20) for _ in range(4)])
    repo = f"{project}/{upstream_repo}"
    blobs = _pull_manifest(oci, repo)
    wait_for(lambda: cached_tags(oci, repo) == ["v1"], "the image to be cached")
    assert front.blob_gets == blobs
    assert front.most_blob_gets_at_once == 1


def test_a_blob_a_client_asks_for_is_fetched_at_once_whatever_the_fill_is_doing(
    admin: httpx.Client, oci: OCIClient, front: RegistryFront, docker_registry: DockerRegistry
) -> None:
    """The fill's download is held upstream; a client's pull of a later layer still
    reaches the upstream at once and gets the right bytes; every blob is fetched once."""
    project = proxy_project(admin, front)
    upstream_repo = f"order/held-{secrets.token_hex(4)}"
    layers = [os.urandom(2 << 20) for _ in range(3)]
    push_upstream(docker_registry, upstream_repo, "v1", layers)
    repo = f"{project}/{upstream_repo}"
    front.config.hold_blob_bodies_after = 1 << 20  # NOTE: the config (small) passes
    url, headers = blob_url(oci, repo, sha(layers[2])), oci.headers(repo, "pull")

    with ThreadPoolExecutor(max_workers=1) as pool:
        try:
            blobs = _pull_manifest(oci, repo)
            assert front.holding.wait(30), "the fill's download was never held"
            assert front.blob_gets == blobs[:2], "the fill starts with the config, then layer 1"
            pulled = pool.submit(pull_blob, url, headers)
            wait_for(lambda: len(front.blob_gets) == 3, "the client's blob to reach the upstream")
            assert front.blob_gets[2] == sha(layers[2])
        finally:
            front.release()
        assert pulled.result(timeout=120) == sha(layers[2])
    wait_for(lambda: cached_tags(oci, repo) == ["v1"], "the image to be cached")
    assert sorted(front.blob_gets) == sorted(blobs), "each blob fetched once"


def test_blob_redirects_are_followed_without_credentials_and_checked_by_the_policy(
    admin: httpx.Client, oci: OCIClient, front: RegistryFront, docker_registry: DockerRegistry
) -> None:
    front.config.token_auth = ("puller", SECRET)
    front.config.redirect_blobs = True
    creds = {"credential": "basic", "username": "puller", "secret": SECRET}
    project = proxy_project(admin, front, endpoint=creds)
    upstream_repo = f"cdn/app-{secrets.token_hex(4)}"
    layer = os.urandom(256 * 1024)
    push_upstream(docker_registry, upstream_repo, "v1", [layer])
    repo = f"{project}/{upstream_repo}"
    got = oci.request("GET", blob_path(repo, sha(layer)), repo)
    assert got.status_code == 200, got.text
    assert sha(got.content) == sha(layer)
    assert front.count("GET", "/_storage" + blob_path(upstream_repo, sha(layer))) == 1
    assert front.storage_credentials == [""], "credentials followed a redirect"

    # a redirect to an address the outbound policy refuses is not followed
    front.config.redirect_to = "http://169.254.169.254/latest/meta-data/"
    other = os.urandom(4096)
    push_upstream(docker_registry, upstream_repo, "v2", [other])
    refused = oci.request("GET", blob_path(repo, sha(other)), repo)
    assert refused.status_code == 503, refused.text
    assert "redirect refused" in refused.json()["errors"][0]["message"]


@dataclass(frozen=True)
class UncachedBlob:
    """A 16 MiB layer in the upstream, not yet cached: where to pull it, and how."""

    layer: bytes
    upstream_repo: str
    url: str
    headers: dict[str, str]

    def upstream_fetches(self, front: RegistryFront) -> int:
        return front.count("GET", blob_path(self.upstream_repo, sha(self.layer)))


def uncached_blob(
    server: MoorageServer, front: RegistryFront, docker_registry: DockerRegistry, prefix: str
) -> UncachedBlob:
    """A proxy project on ``server`` (seen by all its workers) and a layer to pull in it."""
    auth = (server.admin_username, server.admin_password)
    with (
        httpx.Client(base_url=server.url, auth=auth, timeout=120) as admin,
        httpx.Client(base_url=server.url, timeout=120) as client,
    ):
        oci = OCIClient(client, server.admin_password, server.admin_username)
        project = proxy_project(admin, front)
        # NOTE: the other worker sees the binding within its refresh interval (0.5 s).
        time.sleep(1.0)
        upstream_repo = f"{prefix}/blob-{secrets.token_hex(4)}"
        layer = os.urandom(16 * 1024 * 1024)
        push_upstream(docker_registry, upstream_repo, "v1", [layer])
        repo = f"{project}/{upstream_repo}"
        url = f"{server.url}{blob_path(repo, sha(layer))}"
        return UncachedBlob(layer, upstream_repo, url, oci.headers(repo, "pull"))


def test_api_workers_of_one_host_take_turns_so_the_upstream_sees_one_fetch(
    moorage_two_workers: MoorageServer, front: RegistryFront, docker_registry: DockerRegistry
) -> None:
    blob = uncached_blob(moorage_two_workers, front, docker_registry, "two")

    def pull(_: int) -> str:
        # NOTE: a pull arriving once the blob is cached is redirected to the download
        # listener, as real clients are; it is still no second upstream fetch
        return pull_blob(blob.url, blob.headers)

    with ThreadPoolExecutor(max_workers=20) as pool:
        digests = list(pool.map(pull, range(20)))
    assert digests == [sha(blob.layer)] * 20
    assert blob.upstream_fetches(front) == 1


def test_pulls_in_either_api_worker_stream_while_the_upstream_is_still_sending(
    moorage_two_workers: MoorageServer, front: RegistryFront, docker_registry: DockerRegistry
) -> None:
    """A pull that reaches the worker not downloading follows its peer's download.

    On the filesystem the pulls read the cache's upload file as it grows; nothing is
    written to a scratch spool besides it.
    """
    blob = uncached_blob(moorage_two_workers, front, docker_registry, "stream")
    front.config.hold_blob_bodies_after = 8 * 1024 * 1024
    streaming = [threading.Event() for _ in range(8)]

    def pull(number: int) -> str:
        # NOTE: a connection each, so the kernel spreads them over both workers
        with (
            httpx.Client(timeout=120) as one,
            one.stream("GET", blob.url, headers=blob.headers) as response,
        ):
            assert response.status_code == 200, response.read()
            body = bytearray()
            for piece in response.iter_bytes():
                body += piece
                if len(body) >= 4 * 1024 * 1024:
                    streaming[number].set()
            return sha(bytes(body))

    with ThreadPoolExecutor(max_workers=8) as pool:
        try:
            futures = [pool.submit(pull, number) for number in range(8)]
            assert front.holding.wait(30), "the upstream body was never held"
            deadline = time.monotonic() + 30
            for event in streaming:
                event.wait(max(deadline - time.monotonic(), 0))
            got = sum(event.is_set() for event in streaming)
            # NOTE: the upstream has sent half the blob and waits: every pull, in
            # whichever worker, has its first 4 MiB already
            assert got == 8, f"{got} of 8 pulls streamed while the upstream was held"
            # ... read from the cache's own upload file: the download is written once
            data = Path(moorage_two_workers.env["MOORAGE_DATA_DIR"])
            spooled = [part.stat().st_size for part in (data / "proxy-spool").glob("*/*.part")]
            uploading = [file.stat().st_size for file in data.rglob("uploads/*/data")]
            assert sum(spooled) == 0, f"scratch spools hold {spooled} bytes"
            assert max(uploading, default=0) >= 4 * 1024 * 1024, uploading
        finally:
            front.release()
        digests = [future.result(timeout=120) for future in futures]
    assert digests == [sha(blob.layer)] * 8
    assert blob.upstream_fetches(front) == 1


def open_uploads(server: MoorageServer, repository: str) -> int:
    """Upload sessions of ``repository`` in the server's SQLite database."""
    database = Path(server.env["MOORAGE_DATA_DIR"]) / "moorage.db"
    with sqlite3.connect(database) as connection:
        (count,) = connection.execute(
            "SELECT COUNT(*) FROM upload WHERE repository = ?", (repository,)
        ).fetchone()
    return int(count)


def test_a_blob_with_the_wrong_digest_is_discarded_and_never_cached(
    moorage: MoorageServer,
    admin: httpx.Client,
    oci: OCIClient,
    front: RegistryFront,
    docker_registry: DockerRegistry,
) -> None:
    project = proxy_project(admin, front)
    upstream_repo = f"bad/blob-{secrets.token_hex(4)}"
    layer = os.urandom(3 * 1024 * 1024)
    push_upstream(docker_registry, upstream_repo, "v1", [layer])
    repo = f"{project}/{upstream_repo}"
    front.config.corrupt.add(sha(layer))
    # NOTE: the 200 may be on the wire already; the body then ends early (the last
    # chunk is held back until verification), so no client ever accepts the bytes.
    try:
        response = oci.request("GET", blob_path(repo, sha(layer)), repo)
    except httpx.HTTPError:
        pass
    else:
        assert response.status_code != 200, "a corrupted blob was served complete"
    front.config.corrupt.clear()
    good = oci.request("GET", blob_path(repo, sha(layer)), repo)
    assert good.status_code == 200
    assert sha(good.content) == sha(layer)
    assert front.count("GET", blob_path(upstream_repo, sha(layer))) == 2, "nothing was cached"
    assert oci.request("GET", blob_path(repo, sha(layer)), repo).status_code == 200
    assert front.count("GET", blob_path(upstream_repo, sha(layer))) == 2
    # a blob the upstream lacks: 404, and the cache upload opened meanwhile is gone too
    absent = oci.request("GET", blob_path(repo, sha(b"not upstream")), repo)
    assert absent.status_code == 404, absent.text
    assert absent.json()["errors"][0]["code"] == "BLOB_UNKNOWN"
    assert open_uploads(moorage, repo) == 0, "a failed download left its upload session"


def test_a_manifest_with_the_wrong_digest_is_refused_and_never_cached(
    admin: httpx.Client, oci: OCIClient, front: RegistryFront, docker_registry: DockerRegistry
) -> None:
    project = proxy_project(admin, front)
    upstream_repo = f"bad/manifest-{secrets.token_hex(4)}"
    digest = push_upstream(docker_registry, upstream_repo, "v1", [os.urandom(4096)])
    repo = f"{project}/{upstream_repo}"
    front.config.corrupt_manifests = True
    for reference in ("v1", digest):
        refused = oci.request("GET", f"/v2/{repo}/manifests/{reference}", repo)
        assert refused.status_code == 503, refused.text
        assert "digest" in refused.json()["errors"][0]["message"].lower()
    assert oci.request("GET", f"/v2/{repo}/tags/list", repo).status_code == 404
    front.config.corrupt_manifests = False
    good = oci.request("GET", f"/v2/{repo}/manifests/v1", repo, headers={"Accept": OCI_MANIFEST})
    assert good.status_code == 200
    assert sha(good.content) == digest


def test_token_auth_upstream_gets_credentials_only_at_its_pinned_realm(
    admin: httpx.Client, oci: OCIClient, front: RegistryFront, docker_registry: DockerRegistry
) -> None:
    front.config.token_auth = ("puller", SECRET)
    creds = {"credential": "basic", "username": "puller", "secret": SECRET}
    project = proxy_project(admin, front, endpoint=creds)
    upstream_repo = f"auth/app-{secrets.token_hex(4)}"
    digest = push_upstream(docker_registry, upstream_repo, "v1", [os.urandom(4096)])
    repo = f"{project}/{upstream_repo}"
    served = oci.request("GET", f"/v2/{repo}/manifests/v1", repo, headers={"Accept": OCI_MANIFEST})
    assert served.status_code == 200, served.text
    assert sha(served.content) == digest
    assert front.count("GET", "/token") >= 1
    assert all(sent.startswith("Basic ") for sent in front.token_credentials)

    # an upstream whose challenge names another host's realm gets no credentials
    elsewhere = RegistryFront(docker_registry.url, name="elsewhere")
    try:
        front.config.realm = f"http://localhost:{elsewhere.port}/token"
        other = proxy_project(admin, front, endpoint=creds)
        repo = f"{other}/{upstream_repo}"
        refused = oci.request("GET", f"/v2/{repo}/manifests/v1", repo)
        assert refused.status_code == 503, refused.text
        assert "realm pinning" in refused.json()["errors"][0]["message"]
        assert elsewhere.total() == 0
    finally:
        elsewhere.close()


def test_pull_through_on_postgres_and_s3(
    moorage_pg_s3: MoorageServer, front: RegistryFront, docker_registry: DockerRegistry
) -> None:
    server = moorage_pg_s3
    auth = (server.admin_username, server.admin_password)
    with (
        httpx.Client(base_url=server.url, auth=auth, timeout=120) as admin,
        httpx.Client(base_url=server.url, timeout=120) as client,
    ):
        oci = OCIClient(client, server.admin_password, server.admin_username)
        project = proxy_project(admin, front)
        upstream_repo = f"pg/app-{secrets.token_hex(4)}"
        layer = os.urandom(12 * 1024 * 1024)
        digest = push_upstream(docker_registry, upstream_repo, "v1", [layer])
        repo = f"{project}/{upstream_repo}"
        headers = {"Accept": OCI_MANIFEST}
        served = oci.request("GET", f"/v2/{repo}/manifests/v1", repo, headers=headers)
        assert served.status_code == 200
        assert sha(served.content) == digest
        wait_for(lambda: cached_tags(oci, repo) == ["v1"], "tag v1 cached")
        front.stop()
        cached = oci.request("GET", f"/v2/{repo}/manifests/v1", repo, headers=headers)
        assert sha(cached.content) == digest
        blob = oci.request("GET", blob_path(repo, sha(layer)), repo)
        assert blob.status_code == 200
        assert sha(blob.content) == sha(layer)
    assert front.count("GET", blob_path(upstream_repo, sha(layer))) == 1
