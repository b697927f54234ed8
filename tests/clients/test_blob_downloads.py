"""Real clients pull large blobs through the download redirect (filesystem and S3).

A Moorage of its own with a 64 KiB redirect threshold, so the test images' larger layers
are answered on ``/v2`` with a ``307`` to the worker's download listener, which sends them
from their files (filesystem) or from the object store's stream (S3, moto): crane, skopeo
and oras must follow it (without credentials, the URL is signed) and get the same bytes.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Iterator
from typing import TYPE_CHECKING

import httpx
import pytest

from tests.clients.commands import ClientHome, run, unique
from tests.clients.images import OciImage, build_image, read_image
from tests.clients.test_oras import Oras
from tests.clients.test_skopeo import Skopeo
from tests.conftest import create_bucket
from tests.services.moorage import MoorageServer, start_moorage
from tests.services.s3 import S3Server

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = pytest.mark.clients

THRESHOLD = 64 * 1024


@pytest.fixture(scope="module", params=["filesystem", "s3"])
def redirecting(
    tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Iterator[MoorageServer]:
    """A Moorage whose large blobs go out through its listener: from files, or from S3."""
    workdir = tmp_path_factory.mktemp("moorage-downloads")
    env = {
        "MOORAGE_DATA_DIR": str(workdir / "data"),
        "MOORAGE_STORAGE": request.param,
        "MOORAGE_AUTH__CREATE_PROJECT_ON_PUSH": "true",
        "MOORAGE_DOWNLOADS__THRESHOLD_BYTES": str(THRESHOLD),
    }
    if request.param == "s3":
        s3: S3Server = request.getfixturevalue("s3")
        env |= {
            "MOORAGE_S3__ENDPOINT_URL": s3.endpoint_url,
            "MOORAGE_S3__BUCKET": create_bucket(s3, f"downloads-{secrets.token_hex(4)}"),
            "MOORAGE_S3__ACCESS_KEY_ID": s3.access_key_id,
            "MOORAGE_S3__SECRET_ACCESS_KEY": s3.secret_access_key,
        }
    server = start_moorage(workdir, env, ["--workers", "2"])
    yield server
    server.stop()


@pytest.fixture
def big_image(tmp_path: Path) -> OciImage:
    image = build_image(tmp_path / "layout", tag="v1", layer_files=((512,), (700 * 1024, 9)))
    assert max(len(layer.data) for layer in image.layers) > THRESHOLD
    return image


def _blob_get(server: MoorageServer, repo: str, digest: str) -> tuple[int, str]:
    """Status and ``Location`` of ``GET /v2/<repo>/blobs/<digest>``, not followed."""
    auth = (server.admin_username, server.admin_password)
    params = {"scope": f"repository:{repo}:pull"}
    token = httpx.get(f"{server.url}/auth/token", params=params, auth=auth).json()["token"]
    answer = httpx.get(
        f"{server.url}/v2/{repo}/blobs/{digest}", headers={"Authorization": f"Bearer {token}"}
    )
    return answer.status_code, answer.headers.get("location", "")


def _assert_redirected(server: MoorageServer, repo: str, image: OciImage) -> None:
    layer = max(image.layers, key=lambda blob: len(blob.data))
    status, location = _blob_get(server, repo, layer.digest)
    assert status == 307
    assert location.startswith("http://127.0.0.1:")
    assert f"/blobs/{layer.digest}?" in location


def test_the_workers_share_one_listener_port(
    redirecting: MoorageServer, oras: str, client_home: ClientHome, tmp_path: Path
) -> None:
    source = tmp_path / "source"
    source.mkdir()
    payload = b"x" * (2 * THRESHOLD)
    (source / "blob.bin").write_bytes(payload)
    repo = unique("downloads/ports")
    client = Oras(oras, client_home, redirecting)
    client.login()
    client("push", f"{redirecting.host_port}/{repo}:p", "blob.bin", cwd=source)
    digest = "sha256:" + hashlib.sha256(payload).hexdigest()
    ports = set()
    for _ in range(12):  # new connections, spread over both API workers
        status, location = _blob_get(redirecting, repo, digest)
        assert status == 307
        ports.add(httpx.URL(location).port)
    assert len(ports) == 1, ports


def _assert_same(pulled: Path, image: OciImage, tag: str | None = None) -> None:
    found = read_image(pulled, tag)
    assert found.manifest_digest == image.manifest_digest
    for blob in (image.config, *image.layers):
        assert found.blobs[blob.digest] == blob.data, f"blob {blob.digest} differs"


def test_skopeo_and_crane_pull_through_the_redirect(
    redirecting: MoorageServer,
    skopeo: str,
    crane: str,
    client_home: ClientHome,
    big_image: OciImage,
    tmp_path: Path,
) -> None:
    repo = unique("downloads/image")
    remote = f"docker://{redirecting.host_port}/{repo}:v1"
    copier = Skopeo(skopeo, client_home, redirecting)
    copier.copy(f"oci:{big_image.reference}", remote, src_creds=False, dest_creds=True)
    _assert_redirected(redirecting, repo, big_image)

    copier.copy(remote, f"oci:{tmp_path / 'skopeo'}:v1", src_creds=True, dest_creds=False)
    _assert_same(tmp_path / "skopeo", big_image, "v1")

    env = client_home.env()
    run(
        [crane, "auth", "login", redirecting.host_port,
         "-u", redirecting.admin_username, "--password-stdin"],
        env=env,
        stdin=redirecting.admin_password,
    )  # fmt: skip
    reference = f"{redirecting.host_port}/{repo}:v1"
    run([crane, "--insecure", "pull", "--format=oci", reference, str(tmp_path / "crane")], env=env)
    _assert_same(tmp_path / "crane", big_image)


def test_oras_fetches_and_pulls_through_the_redirect(
    redirecting: MoorageServer, oras: str, client_home: ClientHome, tmp_path: Path
) -> None:
    source = tmp_path / "source"
    source.mkdir()
    payload = bytes(range(256)) * (4 * THRESHOLD // 256)
    (source / "payload.bin").write_bytes(payload)
    digest = "sha256:" + hashlib.sha256(payload).hexdigest()
    repo = unique("downloads/artifact")
    reference = f"{redirecting.host_port}/{repo}:a1"
    client = Oras(oras, client_home, redirecting)
    client.login()
    client("push", reference, "payload.bin:application/octet-stream", cwd=source)
    status, _ = _blob_get(redirecting, repo, digest)
    assert status == 307

    client("pull", "-o", str(tmp_path / "pulled"), reference)
    assert (tmp_path / "pulled" / "payload.bin").read_bytes() == payload
    fetched = tmp_path / "fetched.bin"
    client("blob", "fetch", "--output", str(fetched), f"{reference.rsplit(':', 1)[0]}@{digest}")
    assert fetched.read_bytes() == payload
