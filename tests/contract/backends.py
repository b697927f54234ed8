"""The blob store backends the contract suite runs against, with raw views of storage.

A backend pairs a store with a look *under* it (the files or objects it really holds),
so the tests can check that nothing is left behind. Both adapters use the same layout
relative to a tenant's root (``blobs/<alg>/<hex[:2]>/<hex>``, ``uploads/<id>/...``), so
raw entries are comparable across backends.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING

import boto3
from botocore.exceptions import ClientError
from pydantic import SecretStr

from core.settings import S3ProjectStorage, S3Settings
from storage.blobs.filesystem import FilesystemBlobStore
from storage.blobs.s3 import S3BlobStore

if TYPE_CHECKING:
    from pathlib import Path

    from mypy_boto3_s3 import S3Client

    from core.digests import Digest
    from core.ports import BlobStore
    from tests.services.s3 import EnforcingS3Server, S3Server

KINDS = ("filesystem", "s3-shared", "s3-bucket-per-project", "s3-project-credentials")


def blob_entry(digest: Digest) -> str:
    return f"blobs/{digest.algorithm}/{digest.hex[:2]}/{digest.hex}"


class Backend:
    kind: str
    store: BlobStore

    def new_tenant_id(self) -> str:
        """A fresh tenant id, as the store would hand one to a new project."""
        return f"t{uuid.uuid4().hex[:12]}"

    def raw_entries(self, tenant: str) -> set[str]:
        """Every file/object (and unfinished multipart upload) of a tenant, relative."""
        raise NotImplementedError

    def tenant_present(self, tenant: str) -> bool:
        raise NotImplementedError

    def make_leftover(self, tenant: str) -> None:
        """Create a storage-level leftover that reap_incomplete should remove."""
        raise NotImplementedError

    def close(self) -> None:
        """Check nothing outside tenants was left, then remove the backend's storage."""


@dataclass
class FilesystemBackend(Backend):
    root: Path
    kind: str = "filesystem"

    def __post_init__(self) -> None:
        self.store = FilesystemBlobStore(self.root)

    def _tenant_dir(self, tenant: str) -> Path:
        return self.root / "tenants" / tenant

    def raw_entries(self, tenant: str) -> set[str]:
        base = self._tenant_dir(tenant)
        entries = {str(p.relative_to(base)) for p in base.rglob("*") if p.is_file()}
        uploads = base / "uploads"
        if uploads.is_dir():
            entries |= {f"uploads/{p.name}/" for p in uploads.iterdir()}
        return entries

    def tenant_present(self, tenant: str) -> bool:
        return self._tenant_dir(tenant).exists()

    def make_leftover(self, tenant: str) -> None:
        tmp = self._tenant_dir(tenant) / "tmp"
        tmp.mkdir(parents=True, exist_ok=True)
        (tmp / f"{uuid.uuid4().hex}.tmp").write_bytes(b"half-written")
        time.sleep(0.01)

    def close(self) -> None:
        tenants = self.root / "tenants"
        left = list(tenants.iterdir()) if tenants.is_dir() else []
        assert left == [], f"tenant trees left behind: {left}"
        if self.root.is_dir():
            assert {p.name for p in self.root.iterdir()} <= {"tenants"}


class S3Backend(Backend):
    def __init__(self, server: S3Server, *, per_project: bool, redirect: bool = False) -> None:
        run = uuid.uuid4().hex[:8]
        self.kind = "s3-bucket-per-project" if per_project else "s3-shared"
        self.settings = S3Settings(
            endpoint_url=server.endpoint_url,
            access_key_id=server.access_key_id,
            secret_access_key=SecretStr(server.secret_access_key),
            bucket=f"moorage-shared-{run}",
            bucket_per_project=per_project,
            bucket_prefix=f"mt{run}-",
            key_prefix="" if per_project else "registry/",
            redirect_pulls=redirect,
        )
        self.client: S3Client = boto3.client(
            "s3",
            endpoint_url=server.endpoint_url,
            region_name="us-east-1",
            aws_access_key_id=server.access_key_id,
            aws_secret_access_key=server.secret_access_key,
        )
        self.store = S3BlobStore(self.settings)

    def bucket(self, tenant: str) -> str:
        if self.settings.bucket_per_project:
            return f"{self.settings.bucket_prefix}{tenant}"
        return self.settings.bucket

    def base(self, tenant: str) -> str:
        if self.settings.bucket_per_project:
            return self.settings.key_prefix
        return f"{self.settings.key_prefix}tenants/{tenant}/"

    def raw_entries(self, tenant: str) -> set[str]:
        bucket, base = self.bucket(tenant), self.base(tenant)
        try:
            pages = self.client.get_paginator("list_objects_v2").paginate(
                Bucket=bucket, Prefix=base
            )
            keys = {o["Key"] for page in pages for o in page.get("Contents", [])}
            uploads = self.client.list_multipart_uploads(Bucket=bucket, Prefix=base)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "NoSuchBucket":
                return set()
            raise
        entries = {key[len(base) :] for key in keys}
        entries |= {f"multipart:{u['Key'][len(base) :]}" for u in uploads.get("Uploads", [])}
        return entries

    def tenant_present(self, tenant: str) -> bool:
        if not self.settings.bucket_per_project:
            return bool(self.raw_entries(tenant))
        try:
            self.client.head_bucket(Bucket=self.bucket(tenant))
        except ClientError:
            return False
        return True

    def make_leftover(self, tenant: str) -> None:
        key = f"{self.base(tenant)}blobs/sha256/00/crashed-assembly"
        self.client.create_multipart_upload(Bucket=self.bucket(tenant), Key=key)
        time.sleep(0.01)

    def close(self) -> None:
        buckets = [b["Name"] for b in self.client.list_buckets().get("Buckets", [])]
        ours = [b for b in buckets if b.startswith(self.settings.bucket_prefix)]
        assert ours == [], f"tenant buckets left behind: {ours}"
        if self.settings.bucket in buckets:
            left = self.client.list_objects_v2(Bucket=self.settings.bucket).get("Contents", [])
            assert left == [], f"objects left in the shared bucket: {left}"
            uploads = self.client.list_multipart_uploads(Bucket=self.settings.bucket)
            assert uploads.get("Uploads", []) == []
            self.client.delete_bucket(Bucket=self.settings.bucket)


class S3CredentialsBackend(S3Backend):
    """Projects with their own bucket and IAM user, on a server that enforces IAM.

    The installation's user may use its shared bucket only; ``alpha`` and ``beta`` each
    get a bucket and a user allowed that bucket only. New tenants cycle through alpha,
    beta and an unlisted project (stored with the installation's credentials), so
    copies between consecutive tenants cross credentials. The raw views use the
    server's admin user.
    """

    def __init__(self, server: EnforcingS3Server) -> None:
        run = uuid.uuid4().hex[:8]
        self.kind = "s3-project-credentials"
        self.installation = server.bucket_user(f"installation-{run}", f"moorage-inst-{run}")
        self.project_buckets: dict[str, str] = {}
        projects: dict[str, S3ProjectStorage] = {}
        for name in ("alpha", "beta"):
            project, bucket = f"{name}{run}", f"moorage-{name}-{run}"
            user = server.bucket_user(f"{name}-{run}", bucket)
            self.project_buckets[project] = bucket
            projects[project] = S3ProjectStorage(
                bucket=bucket,
                access_key_id=user.access_key_id,
                secret_access_key=SecretStr(user.secret_access_key),
            )
        self.settings = S3Settings(
            endpoint_url=server.endpoint_url,
            access_key_id=self.installation.access_key_id,
            secret_access_key=SecretStr(self.installation.secret_access_key),
            bucket=f"moorage-inst-{run}",
            key_prefix="registry/",
            projects=projects,
        )
        self.client = server.client(server.admin)
        self.store = S3BlobStore(self.settings)
        self._cycle = [*self.project_buckets, f"plain{run}"]
        self._owners: dict[str, str | None] = {}

    def new_tenant_id(self) -> str:
        project = self._cycle[len(self._owners) % len(self._cycle)]
        tenant = self.store.new_tenant_id(project)
        self._owners[tenant] = project if project in self.project_buckets else None
        return tenant

    @property
    def made(self) -> list[str]:
        """Every tenant id this backend handed out."""
        return list(self._owners)

    def access_key_of(self, tenant: str) -> str:
        """The access key id that may reach ``tenant``'s bucket."""
        project = self._owners.get(tenant)
        if project is None:
            return self.installation.access_key_id
        return self.settings.projects[project].access_key_id

    def bucket(self, tenant: str) -> str:
        project = self._owners.get(tenant)
        return self.settings.bucket if project is None else self.project_buckets[project]

    def base(self, tenant: str) -> str:
        prefix = "registry/" if self._owners.get(tenant) is None else ""
        return f"{prefix}tenants/{tenant}/"

    def tenant_present(self, tenant: str) -> bool:
        return bool(self.raw_entries(tenant))

    def close(self) -> None:
        for bucket in [self.settings.bucket, *self.project_buckets.values()]:
            left = self.client.list_objects_v2(Bucket=bucket).get("Contents", [])
            assert left == [], f"objects left in {bucket}: {left}"
            uploads = self.client.list_multipart_uploads(Bucket=bucket)
            assert uploads.get("Uploads", []) == [], f"multipart uploads left in {bucket}"
            self.client.delete_bucket(Bucket=bucket)
