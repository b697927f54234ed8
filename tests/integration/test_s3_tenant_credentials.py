"""Two projects with their own bucket and IAM user, through the registry app in-process.

The S3 server (moto) enforces IAM: each project's user may use its own bucket only,
the installation's user the shared bucket only. The recorded requests show which key
signed each request and which buckets it touched.
"""

from __future__ import annotations

import secrets
from typing import TYPE_CHECKING

import pytest
from botocore.exceptions import ClientError
from litestar.testing import TestClient

from api.app import create_app
from cli.startup import prepare_installation
from core.settings import Settings
from tests.api.oci import OCIClient, digest_of
from tests.services.s3 import EnforcingS3Server, start_enforcing_moto

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from tests.services.s3 import S3Credentials

PASSWORD = secrets.token_urlsafe(12)


class Tenancy:
    """The server, the registry's S3 settings and the users behind them."""

    def __init__(self, server: EnforcingS3Server) -> None:
        run = secrets.token_hex(4)
        self.server = server
        self.p1, self.p2, self.p3 = f"p1x{run}", f"p2x{run}", f"p3x{run}"
        self.shared = f"moorage-shared-{run}"
        self.buckets = {self.p1: f"moorage-p1-{run}", self.p2: f"moorage-p2-{run}"}
        self.installation = server.bucket_user(f"installation-{run}", self.shared)
        self.users: dict[str, S3Credentials] = {
            project: server.bucket_user(f"{project}-user", bucket)
            for project, bucket in self.buckets.items()
        }
        self.admin = server.client(server.admin)

    def s3_settings(self) -> dict[str, object]:
        projects = {
            project: {
                "bucket": self.buckets[project],
                "access_key_id": user.access_key_id,
                "secret_access_key": user.secret_access_key,
            }
            for project, user in self.users.items()
        }
        return {
            "endpoint_url": self.server.endpoint_url,
            "bucket": self.shared,
            "access_key_id": self.installation.access_key_id,
            "secret_access_key": self.installation.secret_access_key,
            "projects": projects,
        }

    def keys(self, bucket: str) -> list[str]:
        listed = self.admin.list_objects_v2(Bucket=bucket).get("Contents", [])
        return [item["Key"] for item in listed]

    def owner_key(self, bucket: str) -> str:
        for project, owned in self.buckets.items():
            if owned == bucket:
                return self.users[project].access_key_id
        assert bucket == self.shared, bucket
        return self.installation.access_key_id


@pytest.fixture(scope="module")
def tenancy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Tenancy]:
    server = start_enforcing_moto(tmp_path_factory.mktemp("moto-iam-app"))
    try:
        yield Tenancy(server)
    finally:
        server.stop()


@pytest.fixture(scope="module")
def oci(tenancy: Tenancy, tmp_path_factory: pytest.TempPathFactory) -> Iterator[OCIClient]:
    root: Path = tmp_path_factory.mktemp("registry")
    settings = Settings.model_validate(
        {
            "data_dir": root,
            "auth": {"admin_password": PASSWORD},
            "storage": "s3",
            "s3": tenancy.s3_settings(),
        }
    )
    prepare_installation(settings)
    with TestClient(create_app(settings)) as client:
        oci = OCIClient(client, PASSWORD)
        for project in (tenancy.p1, tenancy.p2, tenancy.p3):
            created = client.post(
                "/api/v1/projects", json={"name": project}, auth=("admin", PASSWORD)
            )
            assert created.status_code == 201, created.text
        yield oci


def assert_signed_by_owners(tenancy: Tenancy) -> None:
    requests = tenancy.server.signed_requests()
    assert requests
    for request in requests:
        if request.access_key_id == tenancy.server.admin.access_key_id:
            continue  # the test's own look at the buckets
        assert request.access_key_id == tenancy.owner_key(request.bucket), request
        assert request.copy_source_bucket in (None, request.bucket), request


def test_push_pull_and_mount_keep_each_project_in_its_bucket(
    tenancy: Tenancy, oci: OCIClient
) -> None:
    tenancy.server.reset_recording()
    repo1, repo2, repo3 = f"{tenancy.p1}/app", f"{tenancy.p2}/app", f"{tenancy.p3}/app"
    pushed = {repo: oci.push_image(repo) for repo in (repo1, repo2)}
    for repo, image in pushed.items():
        got = oci.request("GET", f"/v2/{repo}/manifests/latest", repo)
        assert got.status_code == 200
        assert got.content == image.payload
    layer = secrets.token_bytes(70_000)
    digest = oci.push_blob(repo1, layer)
    assert oci.request("GET", f"/v2/{repo1}/blobs/{digest}", repo1).content == layer

    for target in (repo2, repo3):
        token = oci.token(f"repository:{target}:pull,push", f"repository:{repo1}:pull")
        mounted = oci.client.post(
            f"/v2/{target}/blobs/uploads/?mount={digest}&from={repo1}",
            headers={"Authorization": f"Bearer {token}"},
        )
        assert mounted.status_code == 201, mounted.text
        assert oci.request("GET", f"/v2/{target}/blobs/{digest}", target).content == layer

    hex_name = digest.partition(":")[2]
    for project in (tenancy.p1, tenancy.p2):
        assert any(key.endswith(hex_name) for key in tenancy.keys(tenancy.buckets[project]))
    assert any(key.endswith(hex_name) for key in tenancy.keys(tenancy.shared))
    assert_signed_by_owners(tenancy)


def test_p1_key_cannot_read_p2_objects(tenancy: Tenancy, oci: OCIClient) -> None:
    repo2 = f"{tenancy.p2}/app"
    digest = oci.push_blob(repo2, b"only for p2")
    bucket = tenancy.buckets[tenancy.p2]
    key = next(k for k in tenancy.keys(bucket) if k.endswith(digest.partition(":")[2]))
    p1_client = tenancy.server.client(tenancy.users[tenancy.p1])
    p2_client = tenancy.server.client(tenancy.users[tenancy.p2])

    with pytest.raises(ClientError) as denied:
        p1_client.get_object(Bucket=bucket, Key=key)
    assert denied.value.response["Error"]["Code"] == "AccessDenied"
    with pytest.raises(ClientError) as listing:
        p1_client.list_objects_v2(Bucket=bucket)
    assert listing.value.response["Error"]["Code"] == "AccessDenied"
    assert p2_client.get_object(Bucket=bucket, Key=key)["Body"].read() == b"only for p2"


def test_deleting_p2_removes_its_objects_only(tenancy: Tenancy, oci: OCIClient) -> None:
    repo1, repo2 = f"{tenancy.p1}/keep", f"{tenancy.p2}/gone"
    kept = oci.push_image(repo1)
    oci.push_image(repo2)
    p1_before = tenancy.keys(tenancy.buckets[tenancy.p1])
    shared_before = tenancy.keys(tenancy.shared)
    assert tenancy.keys(tenancy.buckets[tenancy.p2])
    tenancy.server.reset_recording()

    deleted = oci.client.delete(f"/api/v1/projects/{tenancy.p2}", auth=("admin", PASSWORD))

    assert deleted.status_code == 204, deleted.text
    assert tenancy.keys(tenancy.buckets[tenancy.p2]) == []
    assert tenancy.keys(tenancy.buckets[tenancy.p1]) == p1_before
    assert tenancy.keys(tenancy.shared) == shared_before
    assert_signed_by_owners(tenancy)
    got = oci.request("GET", f"/v2/{repo1}/manifests/latest", repo1)
    assert got.status_code == 200
    assert digest_of(got.content) == kept.digest
