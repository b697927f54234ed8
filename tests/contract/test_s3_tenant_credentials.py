"""Projects with their own S3 bucket and credentials, on a server that enforces IAM.

The server (moto with IAM enforcement) checks every request's signature and the signing
user's policy; each project's user may use its own bucket only. The recorded requests
show which key signed each request and which buckets it touched.
"""

from __future__ import annotations

import random
from typing import TYPE_CHECKING

import pytest
from botocore.exceptions import ClientError

from core.digests import Digest
from core.ports import BlobNotFoundError
from storage.blobs.s3 import S3BlobStore
from storage.blobs.s3_tenants import TenantCredentialsError
from tests.contract.backends import S3CredentialsBackend, blob_entry
from tests.services.s3 import S3Credentials

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from tests.services.s3 import EnforcingS3Server, SignedRequest

MiB = 1024 * 1024


@pytest.fixture
def creds(enforcing_s3: EnforcingS3Server) -> Iterator[S3CredentialsBackend]:
    made = S3CredentialsBackend(enforcing_s3)
    yield made
    for tenant in list(made.made):
        made.store.delete_tenant(tenant)
    made.close()


def tenants(backend: S3CredentialsBackend) -> tuple[str, str, str]:
    """Fresh tenants of alpha, beta and of a project without its own credentials."""
    alpha, beta, plain = (backend.new_tenant_id() for _ in range(3))
    for tenant in (alpha, beta, plain):
        backend.store.create_tenant(tenant)
    return alpha, beta, plain


def data_of(size: int, seed: int) -> bytes:
    return random.Random(seed).randbytes(size)


def key_of(backend: S3CredentialsBackend, tenant: str, digest: Digest) -> str:
    return backend.base(tenant) + blob_entry(digest)


def assert_each_bucket_reached_with_its_own_key(
    backend: S3CredentialsBackend, requests: list[SignedRequest]
) -> None:
    owner = {backend.settings.bucket: backend.installation.access_key_id}
    for project, bucket in backend.project_buckets.items():
        owner[bucket] = backend.settings.projects[project].access_key_id
    assert requests, "no request was recorded"
    for request in requests:
        assert owner[request.bucket] == request.access_key_id, request
        if request.copy_source_bucket is not None:
            assert request.copy_source_bucket == request.bucket, request


def test_a_projects_key_cannot_reach_another_projects_bucket(
    creds: S3CredentialsBackend, enforcing_s3: EnforcingS3Server
) -> None:
    alpha, beta, _ = tenants(creds)
    data = data_of(4000, seed=1)
    digest = Digest.of(data)
    creds.store.put_blob(beta, digest, data)
    beta_bucket, beta_key = creds.bucket(beta), key_of(creds, beta, digest)
    alpha_entry = creds.settings.projects[next(iter(creds.project_buckets))]
    alpha_client = enforcing_s3.client(
        S3Credentials(
            "alpha", alpha_entry.access_key_id, alpha_entry.secret_access_key.get_secret_value()
        )
    )
    attempts: dict[str, Callable[[], object]] = {
        "get": lambda: alpha_client.get_object(Bucket=beta_bucket, Key=beta_key),
        "head": lambda: alpha_client.head_object(Bucket=beta_bucket, Key=beta_key),
        "list": lambda: alpha_client.list_objects_v2(Bucket=beta_bucket),
        "put": lambda: alpha_client.put_object(Bucket=beta_bucket, Key=beta_key, Body=b"x"),
        "delete": lambda: alpha_client.delete_object(Bucket=beta_bucket, Key=beta_key),
    }
    for name, attempt in attempts.items():
        with pytest.raises(ClientError) as denied:
            attempt()
        code = denied.value.response["Error"]["Code"]
        assert code in {"AccessDenied", "403"}, (name, code)
    # positive control: alpha's key reaches alpha's bucket, and beta's blob is intact
    alpha_client.put_object(Bucket=creds.bucket(alpha), Key=key_of(creds, alpha, digest), Body=data)
    assert b"".join(creds.store.read_blob(beta, digest)) == data
    assert b"".join(creds.store.read_blob(alpha, digest)) == data


@pytest.mark.parametrize("size", [100_000, 17 * MiB + 3])
def test_copy_across_credentials_streams_with_each_projects_own_key(
    creds: S3CredentialsBackend, enforcing_s3: EnforcingS3Server, size: int
) -> None:
    alpha, beta, plain = tenants(creds)
    data = data_of(size, seed=2)
    digest = Digest.of(data)
    creds.store.put_blob(alpha, digest, data)
    enforcing_s3.reset_recording()

    creds.store.copy_blob(alpha, beta, digest)
    creds.store.copy_blob(beta, plain, digest)

    requests = enforcing_s3.signed_requests()
    assert_each_bucket_reached_with_its_own_key(creds, requests)
    for tenant in (beta, plain):
        assert creds.store.stat_blob(tenant, digest) == size
        assert Digest.of(b"".join(creds.store.read_blob(tenant, digest))) == digest
        assert creds.raw_entries(tenant) == {blob_entry(digest)}


@pytest.mark.parametrize("size", [5000, 17 * MiB + 3])
def test_a_tampered_source_is_not_copied(
    creds: S3CredentialsBackend, enforcing_s3: EnforcingS3Server, size: int
) -> None:
    alpha, beta, _ = tenants(creds)
    claimed = Digest.of(data_of(size, seed=3))
    # someone holding alpha's key stores other bytes under the claimed digest
    creds.client.put_object(
        Bucket=creds.bucket(alpha), Key=key_of(creds, alpha, claimed), Body=data_of(size, seed=4)
    )

    with pytest.raises(BlobNotFoundError):
        creds.store.copy_blob(alpha, beta, claimed)

    assert creds.store.stat_blob(beta, claimed) is None
    assert creds.raw_entries(beta) == set()
    creds.store.delete_blob(alpha, claimed)


def test_deleting_a_tenant_empties_only_its_own_tree(creds: S3CredentialsBackend) -> None:
    alpha, beta, plain = tenants(creds)
    again = creds.new_tenant_id()  # alpha's again: a project deleted and made anew
    creds.store.create_tenant(again)
    data = data_of(3000, seed=5)
    digest = Digest.of(data)
    for tenant in (alpha, beta, plain, again):
        creds.store.put_blob(tenant, digest, data)
        creds.store.start_upload(tenant, "open")
    assert creds.bucket(again) == creds.bucket(alpha)

    creds.store.delete_tenant(alpha)

    assert creds.raw_entries(alpha) == set()
    for kept in (beta, plain, again):
        assert creds.raw_entries(kept) == {blob_entry(digest), "uploads/open/started"}
    assert creds.client.head_bucket(Bucket=creds.bucket(alpha))  # the bucket stays


def test_a_tenant_of_an_unconfigured_project_fails_closed(
    creds: S3CredentialsBackend, enforcing_s3: EnforcingS3Server
) -> None:
    alpha, _, _ = tenants(creds)
    data = data_of(1000, seed=6)
    digest = Digest.of(data)
    creds.store.put_blob(alpha, digest, data)
    without = creds.settings.model_copy(update={"projects": {}})
    store = S3BlobStore(without)
    enforcing_s3.reset_recording()

    for call in (
        lambda: store.stat_blob(alpha, digest),
        lambda: store.read_blob(alpha, digest),
        lambda: store.delete_tenant(alpha),
        lambda: store.copy_blob(alpha, "t0", digest),
    ):
        with pytest.raises(TenantCredentialsError):
            call()
    assert enforcing_s3.signed_requests() == []
    assert creds.raw_entries(alpha) == {blob_entry(digest)}
