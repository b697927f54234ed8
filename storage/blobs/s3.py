"""Blob store on S3 or an S3-compatible service.

This module is the only place that knows the key layout. In a shared bucket
(``settings.bucket``)::

    <key_prefix>tenants/<tenant>/
    ├── blobs/<alg>/<hex[:2]>/<hex>          immutable blob content, named by its digest
    └── uploads/<upload_id>/
        ├── started                          empty marker: the upload exists
        └── parts/<offset as 20 digits>      one committed request's bytes

With ``bucket_per_project`` each tenant has its own bucket ``<bucket_prefix><tenant>``
(made by ``create_tenant``, removed with its contents by ``delete_tenant``) and the keys
drop the ``tenants/<tenant>/`` level: ``<key_prefix>blobs/...``, ``<key_prefix>uploads/...``.

An upload's durable bytes are its part objects in offset order; its size is the last
part's offset plus size. Tenant ids, upload ids and digests are validated before any key
or bucket name is built from them (see :mod:`storage.blobs.naming`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from boto3.s3.transfer import TransferConfig
from botocore.exceptions import ClientError

from core.ports import BlobLocation, BlobNotFoundError, UploadNotFoundError
from storage.blobs import s3_client as ops
from storage.blobs.naming import check_digest, check_tenant, check_upload_id, parse_blob_name
from storage.blobs.s3_assemble import SourcePart, assemble
from storage.blobs.s3_writer import S3UploadWriter

if TYPE_CHECKING:
    from collections.abc import Iterator

    from botocore.response import StreamingBody
    from mypy_boto3_s3 import S3Client

    from core.digests import Digest
    from core.settings import S3Settings

_CHUNK = 1024 * 1024
_MARKER = "started"
_PARTS = "parts/"


@dataclass(frozen=True, slots=True)
class _Part:
    key: str
    offset: int
    size: int


class S3BlobStore:
    """Blobs and uploads as objects in one shared bucket or in a bucket per tenant.

    Consistency guarantees:

    - A blob object appears only through a single PUT, a server-side copy or a completed
      multipart upload, so readers see either no blob or all of its bytes; an existing
      blob is never overwritten by ``finish_upload`` or ``copy_blob``.
    - An upload's committed request is one part object written before ``commit``
      returns; a writer opened at ``offset`` first deletes the parts at or past it, so
      the bytes of an interrupted request vanish.
    - Tenants never share objects: ``copy_blob`` copies server-side.
    - Every method is safe to retry; removing something missing is not an error.
      Multipart uploads left by a crash are aborted by ``reap_incomplete``.
    """

    def __init__(self, settings: S3Settings, client: S3Client | None = None) -> None:
        self._settings = settings
        self._client = client if client is not None else ops.make_client(settings)
        self._transfer = TransferConfig(
            multipart_threshold=settings.multipart_threshold,
            multipart_chunksize=settings.multipart_chunksize,
        )

    # layout -------------------------------------------------------------------------
    def _bucket(self, tenant: str) -> str:
        check_tenant(tenant)
        if self._settings.bucket_per_project:
            return f"{self._settings.bucket_prefix}{tenant}"
        return self._settings.bucket

    def _base(self, tenant: str) -> str:
        check_tenant(tenant)
        if self._settings.bucket_per_project:
            return self._settings.key_prefix
        return f"{self._settings.key_prefix}tenants/{tenant}/"

    def _blob_key(self, tenant: str, digest: Digest) -> str:
        check_digest(digest)
        return f"{self._base(tenant)}blobs/{digest.algorithm}/{digest.hex[:2]}/{digest.hex}"

    def _upload_prefix(self, tenant: str, upload_id: str) -> str:
        return f"{self._base(tenant)}uploads/{check_upload_id(upload_id)}/"

    def _buckets(self) -> list[str]:
        if not self._settings.bucket_per_project:
            return [self._settings.bucket]
        prefix = self._settings.bucket_prefix
        names = [bucket["Name"] for bucket in self._client.list_buckets().get("Buckets", [])]
        return [name for name in names if name.startswith(prefix)]

    # store --------------------------------------------------------------------------
    def ping(self) -> None:
        if self._settings.bucket_per_project:
            self._client.list_buckets()
        else:
            self._client.head_bucket(Bucket=self._settings.bucket)

    def create_tenant(self, tenant: str) -> None:
        ops.ensure_bucket(self._client, self._bucket(tenant), self._settings.region)

    def delete_tenant(self, tenant: str) -> None:
        bucket = self._bucket(tenant)
        if self._settings.bucket_per_project:
            ops.remove_bucket(self._client, bucket)
            return
        base = self._base(tenant)
        ops.delete_prefix(self._client, bucket, base)
        ops.abort_multipart_uploads(self._client, bucket, base, None)

    # uploads ------------------------------------------------------------------------
    def _list_upload(self, tenant: str, upload_id: str) -> tuple[bool, list[_Part]]:
        """Whether the upload exists, and its parts in offset order."""
        prefix = self._upload_prefix(tenant, upload_id)
        exists = False
        parts: list[_Part] = []
        for key, size in ops.list_objects(self._client, self._bucket(tenant), prefix):
            name = key[len(prefix) :]
            if name == _MARKER:
                exists = True
            elif name.startswith(_PARTS) and name[len(_PARTS) :].isdigit():
                parts.append(_Part(key, int(name[len(_PARTS) :]), size))
        parts.sort(key=lambda part: part.offset)
        return exists, parts

    def start_upload(self, tenant: str, upload_id: str) -> None:
        key = self._upload_prefix(tenant, upload_id) + _MARKER
        self._client.put_object(Bucket=self._bucket(tenant), Key=key, Body=b"")

    def upload_writer(self, tenant: str, upload_id: str, offset: int) -> S3UploadWriter:
        if offset < 0:
            raise ValueError("offset must not be negative")
        exists, parts = self._list_upload(tenant, upload_id)
        if not exists:
            raise UploadNotFoundError(upload_id)
        bucket = self._bucket(tenant)
        ops.delete_keys(self._client, bucket, (p.key for p in parts if p.offset >= offset))
        kept = [part for part in parts if part.offset < offset]
        size = kept[-1].offset + kept[-1].size if kept else 0
        if size != offset:
            raise ValueError(f"upload holds {size} bytes, not offset {offset}")
        part_key = f"{self._upload_prefix(tenant, upload_id)}{_PARTS}{offset:020d}"
        return S3UploadWriter(self._client, bucket, part_key, offset, self._transfer)

    def read_upload(self, tenant: str, upload_id: str, size: int | None = None) -> Iterator[bytes]:
        exists, parts = self._list_upload(tenant, upload_id)
        if not exists:
            raise UploadNotFoundError(upload_id)
        return self._read_parts(self._bucket(tenant), _durable(parts, size))

    def _read_parts(self, bucket: str, parts: list[_Part]) -> Iterator[bytes]:
        for part in parts:
            yield from _chunks(self._client.get_object(Bucket=bucket, Key=part.key)["Body"])

    def finish_upload(
        self, tenant: str, upload_id: str, digest: Digest, size: int | None = None
    ) -> None:
        bucket, key = self._bucket(tenant), self._blob_key(tenant, digest)
        if ops.object_size(self._client, bucket, key) is None:
            exists, parts = self._list_upload(tenant, upload_id)
            if exists:
                sources = [SourcePart(part.key, part.size) for part in _durable(parts, size)]
                assemble(self._client, bucket, sources, key, self._transfer)
            elif ops.object_size(self._client, bucket, key) is None:
                raise UploadNotFoundError(upload_id)
        self.delete_upload(tenant, upload_id)

    def delete_upload(self, tenant: str, upload_id: str) -> None:
        prefix = self._upload_prefix(tenant, upload_id)
        ops.delete_prefix(self._client, self._bucket(tenant), prefix)

    def reap_incomplete(self, older_than_seconds: int) -> int:
        """Abort the multipart uploads in the store's buckets started before the age."""
        cutoff = datetime.now(UTC) - timedelta(seconds=older_than_seconds)
        prefix = self._settings.key_prefix
        return sum(
            ops.abort_multipart_uploads(self._client, bucket, prefix, cutoff)
            for bucket in self._buckets()
        )

    # blobs --------------------------------------------------------------------------
    def stat_blob(self, tenant: str, digest: Digest) -> int | None:
        return ops.object_size(self._client, self._bucket(tenant), self._blob_key(tenant, digest))

    def read_blob(
        self, tenant: str, digest: Digest, start: int = 0, end: int | None = None
    ) -> Iterator[bytes]:
        if start < 0:
            raise ValueError("start must not be negative")
        bucket, key = self._bucket(tenant), self._blob_key(tenant, digest)
        if end is not None and end < start:
            if ops.object_size(self._client, bucket, key) is None:
                raise BlobNotFoundError(str(digest))
            return iter(())
        try:
            if start == 0 and end is None:
                response = self._client.get_object(Bucket=bucket, Key=key)
            else:
                byte_range = f"bytes={start}-{'' if end is None else end}"
                response = self._client.get_object(Bucket=bucket, Key=key, Range=byte_range)
        except ClientError as exc:
            if ops.is_missing(exc):
                raise BlobNotFoundError(str(digest)) from None
            if ops.error_code(exc) == "InvalidRange":  # start at or past the end
                return iter(())
            raise
        return _chunks(response["Body"])

    def blob_file(self, tenant: str, digest: Digest) -> str | None:
        """Always ``None``: S3 objects are not local files."""
        self._blob_key(tenant, digest)  # validates
        return None

    def blob_location(self, tenant: str, digest: Digest) -> BlobLocation | None:
        bucket, key = self._bucket(tenant), self._blob_key(tenant, digest)
        if not self._settings.redirect_pulls:
            return None
        url = self._client.generate_presigned_url(
            "get_object",
            Params={"Bucket": bucket, "Key": key},
            ExpiresIn=self._settings.presign_seconds,
        )
        return BlobLocation(url)

    def put_blob(self, tenant: str, digest: Digest, data: bytes) -> None:
        key = self._blob_key(tenant, digest)
        self._client.put_object(Bucket=self._bucket(tenant), Key=key, Body=data)

    def copy_blob(self, source_tenant: str, target_tenant: str, digest: Digest) -> None:
        source_bucket = self._bucket(source_tenant)
        source_key = self._blob_key(source_tenant, digest)
        target_bucket = self._bucket(target_tenant)
        target_key = self._blob_key(target_tenant, digest)
        if ops.object_size(self._client, source_bucket, source_key) is None:
            raise BlobNotFoundError(str(digest))
        if ops.object_size(self._client, target_bucket, target_key) is not None:
            return
        try:
            self._client.copy(
                {"Bucket": source_bucket, "Key": source_key},
                target_bucket,
                target_key,
                Config=self._transfer,
            )
        except ClientError as exc:
            if ops.object_size(self._client, source_bucket, source_key) is None:
                raise BlobNotFoundError(str(digest)) from exc
            raise

    def delete_blob(self, tenant: str, digest: Digest) -> None:
        bucket, key = self._bucket(tenant), self._blob_key(tenant, digest)
        try:
            self._client.delete_object(Bucket=bucket, Key=key)
        except ClientError as exc:
            if not ops.is_missing(exc):
                raise

    def list_blobs(self, tenant: str) -> Iterator[Digest]:
        bucket, prefix = self._bucket(tenant), f"{self._base(tenant)}blobs/"
        return _parse_blob_keys(ops.list_objects(self._client, bucket, prefix), prefix)


def _durable(parts: list[_Part], size: int | None) -> list[_Part]:
    """The parts that make up the first ``size`` bytes (all parts when ``size`` is None).

    Parts always start where the previous one ended, so a part written but never
    recorded as durable starts at or past ``size`` and is left out.
    """
    if size is None:
        return parts
    kept = [part for part in parts if part.offset < size]
    if (kept[-1].offset + kept[-1].size if kept else 0) != size:
        raise ValueError(f"the upload's parts do not add up to {size} bytes")
    return kept


def _chunks(body: StreamingBody) -> Iterator[bytes]:
    with body:
        yield from body.iter_chunks(chunk_size=_CHUNK)


def _parse_blob_keys(objects: Iterator[tuple[str, int]], prefix: str) -> Iterator[Digest]:
    for key, _ in objects:
        algorithm, _, rest = key[len(prefix) :].partition("/")
        fan, _, name = rest.partition("/")
        digest = parse_blob_name(algorithm, name)
        if digest is not None and name[:2] == fan:
            yield digest
