"""Large blob GETs on ``/v2`` redirect to the zero-copy download listener (filesystem).

In-process apps on one SQLite + filesystem installation: one whose listener has a public
URL (so the test client, which is not on loopback, is redirected), one with the defaults
(listener on 127.0.0.1, so a non-loopback client is served in place). The redirect is
followed over a real socket to the listener the app started.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from litestar import Request
from litestar.testing import TestClient

from api.app import create_app
from api.blob_downloads import DownloadRedirects
from cli.startup import prepare_installation
from core.digests import Digest
from core.download_links import LinkSigner, link_key
from core.download_settings import DownloadSettings
from core.errors import OCIErrorCode, RegistryError
from core.pipeline import Hooks, OCIRequest, ServedBlob
from core.settings import Settings
from tests.api.conftest import PASSWORD
from tests.api.oci import OCIClient, unique_project
from tests.services.process import free_port

THRESHOLD = 64 * 1024
BIG = os.urandom(THRESHOLD + 1)
SMALL = os.urandom(THRESHOLD - 1)


@dataclass
class BlobProbe:
    """Records blob-serve hook calls; refuses the digests in ``refused``."""

    seen: list[tuple[str, str]] = field(default_factory=list)
    refused: set[str] = field(default_factory=set)

    async def __call__(self, request: OCIRequest, blob: ServedBlob, /) -> None:
        self.seen.append((request.method, blob.digest))
        if blob.digest in self.refused:
            raise RegistryError(OCIErrorCode.DENIED, "refused by policy")


@dataclass
class Apps:
    redirecting: OCIClient
    default: OCIClient
    probe: BlobProbe
    public_url: str


def _settings(root: Path, **downloads: Any) -> Settings:
    return Settings(
        data_dir=root,
        auth={"admin_password": PASSWORD, "create_project_on_push": True},  # type: ignore[arg-type]
        downloads=DownloadSettings(threshold_bytes=THRESHOLD, **downloads),
    )


@pytest.fixture(scope="module")
def apps(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Apps]:
    root = tmp_path_factory.mktemp("downloads")
    port = free_port()
    public_url = f"http://127.0.0.1:{port}"
    redirecting = _settings(root, listen_port=port, public_url=public_url)
    prepare_installation(redirecting)
    probe = BlobProbe()
    with (
        TestClient(create_app(redirecting, hooks=Hooks(blob_serve=(probe,)))) as first,
        TestClient(create_app(_settings(root))) as second,
    ):
        yield Apps(OCIClient(first, PASSWORD), OCIClient(second, PASSWORD), probe, public_url)


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def test_a_large_blob_get_redirects_to_a_signed_url_that_serves_it(apps: Apps) -> None:
    repo = f"{unique_project()}/app"
    digest = apps.redirecting.push_blob(repo, BIG)
    answer = apps.redirecting.request(
        "GET", f"/v2/{repo}/blobs/{digest}", repo, follow_redirects=False
    )
    assert answer.status_code == 307
    assert answer.headers["docker-content-digest"] == digest
    location = answer.headers["location"]
    assert location.startswith(f"{apps.public_url}/blobs/{digest}?")
    assert ("GET", digest) in apps.probe.seen

    fetched = httpx.get(location)  # no credentials: the signed URL is the grant
    assert fetched.status_code == 200
    assert fetched.content == BIG
    assert fetched.headers["docker-content-digest"] == digest
    assert fetched.headers["etag"] == f'"{digest}"'
    ranged = httpx.get(location, headers={"Range": "bytes=10-19"})
    assert (ranged.status_code, ranged.content) == (206, BIG[10:20])

    other = apps.redirecting.push_blob(repo, BIG[::-1])
    assert httpx.get(location.replace(digest, other)).status_code == 403


def test_the_blob_hook_runs_before_the_redirect_and_can_refuse_it(apps: Apps) -> None:
    repo = f"{unique_project()}/app"
    digest = apps.redirecting.push_blob(repo, BIG + b"refused")
    apps.probe.refused.add(digest)
    answer = apps.redirecting.request(
        "GET", f"/v2/{repo}/blobs/{digest}", repo, follow_redirects=False
    )
    assert answer.status_code == 403
    assert "location" not in answer.headers
    assert answer.json()["errors"][0]["code"] == "DENIED"


def test_head_range_and_small_blobs_are_answered_in_place(apps: Apps) -> None:
    repo = f"{unique_project()}/app"
    big, small = (apps.redirecting.push_blob(repo, data) for data in (BIG, SMALL))
    head = apps.redirecting.request("HEAD", f"/v2/{repo}/blobs/{big}", repo)
    assert head.status_code == 200
    assert head.headers["content-length"] == str(len(BIG))
    assert head.headers["docker-content-digest"] == big
    ranged = apps.redirecting.request(
        "GET",
        f"/v2/{repo}/blobs/{big}",
        repo,
        headers={"Range": "bytes=0-9"},
        follow_redirects=False,
    )
    assert (ranged.status_code, ranged.content) == (206, BIG[:10])
    whole = apps.redirecting.request(
        "GET", f"/v2/{repo}/blobs/{small}", repo, follow_redirects=False
    )
    assert (whole.status_code, whole.content) == (200, SMALL)


def test_a_client_that_cannot_reach_a_loopback_listener_is_served_in_place(apps: Apps) -> None:
    repo = f"{unique_project()}/app"
    digest = apps.default.push_blob(repo, BIG + b"default")
    answer = apps.default.request("GET", f"/v2/{repo}/blobs/{digest}", repo, follow_redirects=False)
    assert answer.status_code == 200  # the test client's address is not a loopback one
    assert answer.content == BIG + b"default"


def test_where_redirects_point_without_a_public_url() -> None:
    signer = LinkSigner([link_key(b"k" * 32)])
    on_loopback = DownloadRedirects(DownloadSettings(), signer, 5001, lambda: 0.0)
    assert on_loopback.base_url("registry.local", "127.0.0.1") == "http://127.0.0.1:5001"
    assert on_loopback.base_url("registry.local", "::1") == "http://127.0.0.1:5001"
    assert on_loopback.base_url("registry.local", "10.0.0.7") is None
    on_all = DownloadRedirects(DownloadSettings(listen_host="0.0.0.0"), signer, 5001, lambda: 0.0)  # noqa: S104
    assert on_all.base_url("registry.local", "10.0.0.7") == "http://registry.local:5001"
    public = DownloadSettings(public_url="https://dl.example.com/", listen_port=5001)
    behind_lb = DownloadRedirects(public, signer, 5001, lambda: 0.0)
    assert behind_lb.base_url("registry.local", "10.0.0.7") == "https://dl.example.com"


def _request(client: str, headers: dict[str, str]) -> Request[Any, Any, Any]:
    scope: dict[str, Any] = {
        "type": "http",
        "method": "GET",
        "path": "/v2/lib/app/blobs/x",
        "raw_path": b"/v2/lib/app/blobs/x",
        "query_string": b"",
        "root_path": "",
        "scheme": "http",
        "server": ("127.0.0.1", 5000),
        "client": (client, 40000),
        "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
    }
    return Request(scope)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "proxied",
    [{"X-Forwarded-For": "10.0.0.7"}, {"Forwarded": "for=10.0.0.7"}, {"Via": "1.1 haproxy"}],
)
def test_a_request_through_a_reverse_proxy_is_served_in_place(proxied: dict[str, str]) -> None:
    signer = LinkSigner([link_key(b"k" * 32)])
    redirects = DownloadRedirects(DownloadSettings(), signer, 5001, lambda: 0.0)
    digest = Digest.parse(_digest(b"x"))
    direct = redirects.location(
        _request("127.0.0.1", {"Host": "127.0.0.1:5000"}), "r", "t", digest, 1 << 30
    )
    assert direct is not None
    assert direct.startswith("http://127.0.0.1:5001/blobs/")
    headers = {"Host": "127.0.0.1:5000", **proxied}
    assert redirects.location(_request("127.0.0.1", headers), "r", "t", digest, 1 << 30) is None
    public = DownloadSettings(public_url="https://dl.example.com", listen_port=5001)
    told = DownloadRedirects(public, signer, 5001, lambda: 0.0)
    assert told.location(_request("127.0.0.1", headers), "r", "t", digest, 1 << 30) is not None
