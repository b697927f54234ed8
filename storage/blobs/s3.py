"""Blob store on S3 or an S3-compatible service.

This module and :mod:`storage.blobs.s3_tenants` are the only places that know the key
layout. In a shared bucket (``settings.bucket``)::

    <key_prefix>tenants/<tenant>/
    ├── blobs/<alg>/<hex[:2]>/<hex>          immutable blob content, named by its digest
    └── uploads/<upload_id>/
        ├── started                          empty marker: the upload exists
        └── parts/<offset as 20 digits>      one committed request's bytes

With ``bucket_per_project`` each tenant has its own bucket ``<bucket_prefix><tenant>``
(made by ``create_tenant``, removed with its contents by ``delete_tenant``) and the keys
drop the ``tenants/<tenant>/`` level: ``<key_prefix>blobs/...``, ``<key_prefix>uploads/...``.

A project listed in ``S3Settings.projects`` keeps the ``tenants/<tenant>/`` tree in its
own bucket, under the entry's ``key_prefix``, and every request for its objects is
signed with the entry's credentials (:mod:`storage.blobs.s3_tenants` maps a tenant to
its bucket, base prefix and client). Its bucket belongs to the operator: ``delete_tenant``
empties the tenant's tree and leaves the bucket.

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

from core.backup_ports import BlobAddress
from core.ports import BlobLocation, BlobNotFoundError, UploadNotFoundError
from storage.blobs import s3_client as ops
from storage.blobs.naming import check_digest, check_upload_id, parse_blob_name
from storage.blobs.s3_assemble import S3Object, SourcePart, assemble
from storage.blobs.s3_tenants import Area, Place, TenantRouter
from storage.blobs.s3_transfer import copy_through
from storage.blobs.s3_writer import S3UploadWriter

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence

    from botocore.response import StreamingBody
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_s3.type_defs import CopySourceTypeDef

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
    - Tenants never share objects: ``copy_blob`` copies server-side when one set of
      credentials reaches both tenants, else through this process with each tenant's
      own client, verified against the digest before the target object appears.
    - A tenant's objects are only ever requested with its own place's credentials.
    - Every method is safe to retry; removing something missing is not an error.
      Multipart uploads left by a crash are aborted by ``reap_incomplete``.
    """

    def __init__(self, settings: S3Settings, client: S3Client | None = None) -> None:
        self._settings = settings
        self._router = TenantRouter(settings, client)
        self._client = self._router.installation
        self._transfer = TransferConfig(
            multipart_threshold=settings.multipart_threshold,
            multipart_chunksize=settings.multipart_chunksize,
        )

    # layout -------------------------------------------------------------------------
    def _place(self, tenant: str) -> Place:
        return self._router.place(tenant)

    @staticmethod
    def _blob_key(place: Place, digest: Digest) -> str:
        check_digest(digest)
        return f"{place.base}blobs/{digest.algorithm}/{digest.hex[:2]}/{digest.hex}"

    @staticmethod
    def _upload_prefix(place: Place, upload_id: str) -> str:
        return f"{place.base}uploads/{check_upload_id(upload_id)}/"

    def _areas(self) -> list[Area]:
        """Every bucket area holding tenants, each with the client that reaches it."""
        prefix = self._settings.key_prefix
        if not self._settings.bucket_per_project:
            installation = [Area(self._client, self._settings.bucket, prefix)]
        else:
            listed = self._client.list_buckets().get("Buckets", [])
            names = [
                b["Name"] for b in listed if b["Name"].startswith(self._settings.bucket_prefix)
            ]
            installation = [Area(self._client, name, prefix) for name in names]
        return installation + self._router.project_areas()

    # store --------------------------------------------------------------------------
    def ping(self) -> None:
        if self._settings.bucket_per_project:
            self._client.list_buckets()
        else:
            self._client.head_bucket(Bucket=self._settings.bucket)

    def new_tenant_id(self, project: str) -> str:
        """A random id; tagged with the project if it has its own bucket and credentials."""
        return self._router.new_tenant_id(project)

    def create_tenant(self, tenant: str) -> None:
        place = self._place(tenant)
        ops.ensure_bucket(place.client, place.bucket, place.region)

    def delete_tenant(self, tenant: str) -> None:
        place = self._place(tenant)
        if place.project is None and self._settings.bucket_per_project:
            ops.remove_bucket(place.client, place.bucket)
            return
        ops.delete_prefix(place.client, place.bucket, place.base)
        ops.abort_multipart_uploads(place.client, place.bucket, place.base, None)

    # uploads ------------------------------------------------------------------------
    def _list_upload(self, place: Place, upload_id: str) -> tuple[bool, list[_Part]]:
        """Whether the upload exists, and its parts in offset order."""
        prefix = self._upload_prefix(place, upload_id)
        exists = False
        parts: list[_Part] = []
        for key, size in ops.list_objects(place.client, place.bucket, prefix):
            name = key[len(prefix) :]
            if name == _MARKER:
                exists = True
            elif name.startswith(_PARTS) and name[len(_PARTS) :].isdigit():
                parts.append(_Part(key, int(name[len(_PARTS) :]), size))
        parts.sort(key=lambda part: part.offset)
        return exists, parts

    def start_upload(self, tenant: str, upload_id: str) -> None:
        place = self._place(tenant)
        key = self._upload_prefix(place, upload_id) + _MARKER
        place.client.put_object(Bucket=place.bucket, Key=key, Body=b"")

    def upload_writer(self, tenant: str, upload_id: str, offset: int) -> S3UploadWriter:
        if offset < 0:
            raise ValueError("offset must not be negative")
        place = self._place(tenant)
        exists, parts = self._list_upload(place, upload_id)
        if not exists:
            raise UploadNotFoundError(upload_id)
        client, bucket = place.client, place.bucket
        ops.delete_keys(client, bucket, (p.key for p in parts if p.offset >= offset))
        kept = [part for part in parts if part.offset < offset]
        size = kept[-1].offset + kept[-1].size if kept else 0
        if size != offset:
            raise ValueError(f"upload holds {size} bytes, not offset {offset}")
        part_key = f"{self._upload_prefix(place, upload_id)}{_PARTS}{offset:020d}"
        return S3UploadWriter(client, bucket, part_key, offset, self._transfer)

    def upload_file(self, tenant: str, upload_id: str) -> str | None:
        """Always ``None``: an upload's parts are objects, not a local file."""
        check_upload_id(upload_id)
        del tenant
        return None

    def read_upload(self, tenant: str, upload_id: str, size: int | None = None) -> Iterator[bytes]:
        place = self._place(tenant)
        exists, parts = self._list_upload(place, upload_id)
        if not exists:
            raise UploadNotFoundError(upload_id)
        return _read_parts(place, _durable(parts, size))

    def finish_upload(
        self, tenant: str, upload_id: str, digest: Digest, size: int | None = None
    ) -> None:
        place = self._place(tenant)
        client, bucket, key = place.client, place.bucket, self._blob_key(place, digest)
        if ops.object_size(client, bucket, key) is None:
            exists, parts = self._list_upload(place, upload_id)
            if exists:
                sources = [SourcePart(part.key, part.size) for part in _durable(parts, size)]
                assemble(client, bucket, sources, key, self._transfer)
            elif ops.object_size(client, bucket, key) is None:
                raise UploadNotFoundError(upload_id)
        self.delete_upload(tenant, upload_id)

    def delete_upload(self, tenant: str, upload_id: str) -> None:
        place = self._place(tenant)
        ops.delete_prefix(place.client, place.bucket, self._upload_prefix(place, upload_id))

    def reap_incomplete(self, older_than_seconds: int) -> int:
        """Abort the multipart uploads in the store's buckets started before the age.

        Each bucket is reached with its own credentials: the installation's buckets with
        the installation's, each project bucket with its project's.
        """
        cutoff = datetime.now(UTC) - timedelta(seconds=older_than_seconds)
        return sum(
            ops.abort_multipart_uploads(area.client, area.bucket, area.prefix, cutoff)
            for area in self._areas()
        )

    # blobs --------------------------------------------------------------------------
    def stat_blob(self, tenant: str, digest: Digest) -> int | None:
        place = self._place(tenant)
        return ops.object_size(place.client, place.bucket, self._blob_key(place, digest))

    def read_blob(
        self, tenant: str, digest: Digest, start: int = 0, end: int | None = None
    ) -> Iterator[bytes]:
        if start < 0:
            raise ValueError("start must not be negative")
        place = self._place(tenant)
        client, bucket, key = place.client, place.bucket, self._blob_key(place, digest)
        if end is not None and end < start:
            if ops.object_size(client, bucket, key) is None:
                raise BlobNotFoundError(str(digest))
            return iter(())
        try:
            if start == 0 and end is None:
                response = client.get_object(Bucket=bucket, Key=key)
            else:
                byte_range = f"bytes={start}-{'' if end is None else end}"
                response = client.get_object(Bucket=bucket, Key=key, Range=byte_range)
        except ClientError as exc:
            if ops.is_missing(exc):
                raise BlobNotFoundError(str(digest)) from None
            if ops.error_code(exc) == "InvalidRange":  # start at or past the end
                return iter(())
            raise
        return _chunks(response["Body"])

    def blob_file(self, tenant: str, digest: Digest) -> str | None:
        """Always ``None``: S3 objects are not local files."""
        self._blob_key(self._place(tenant), digest)  # validates
        return None

    def blob_address(self, tenant: str, digest: Digest) -> BlobAddress | None:
        """Where a blob is, if the installation's credentials reach it (backup copies)."""
        place = self._place(tenant)
        if place.project is not None:
            return None
        key = self._blob_key(place, digest)
        return BlobAddress(endpoint=self._settings.endpoint_url, bucket=place.bucket, key=key)

    @property
    def redirects_pulls(self) -> bool:
        """Whether pulls are sent to the bucket (``s3.redirect_pulls``)."""
        return self._settings.redirect_pulls

    def blob_location(self, tenant: str, digest: Digest) -> BlobLocation | None:
        """A URL presigned with the tenant's own credentials, when redirecting pulls."""
        place = self._place(tenant)
        key = self._blob_key(place, digest)
        if not self._settings.redirect_pulls:
            return None
        url = place.client.generate_presigned_url(
            "get_object",
            Params={"Bucket": place.bucket, "Key": key},
            ExpiresIn=self._settings.presign_seconds,
        )
        return BlobLocation(url)

    def put_blob(self, tenant: str, digest: Digest, data: bytes) -> None:
        place = self._place(tenant)
        key = self._blob_key(place, digest)
        place.client.put_object(Bucket=place.bucket, Key=key, Body=data)

    def copy_blob(self, source_tenant: str, target_tenant: str, digest: Digest) -> None:
        """Copy a blob between tenants; through this process if their credentials differ.

        Raises:
            BlobNotFoundError: the source has no object for ``digest`` or, when copied
                through this process, its bytes do not hash to ``digest``.
        """
        source_place, target_place = self._place(source_tenant), self._place(target_tenant)
        source = S3Object(
            source_place.client, source_place.bucket, self._blob_key(source_place, digest)
        )
        target = S3Object(
            target_place.client, target_place.bucket, self._blob_key(target_place, digest)
        )
        if ops.object_size(source.client, source.bucket, source.key) is None:
            raise BlobNotFoundError(str(digest))
        if ops.object_size(target.client, target.bucket, target.key) is not None:
            return
        try:
            if source_place.project == target_place.project:
                copy_source: CopySourceTypeDef = {"Bucket": source.bucket, "Key": source.key}
                target.client.copy(copy_source, target.bucket, target.key, Config=self._transfer)
            else:
                copy_through(source, target, digest)
        except ClientError as exc:
            if ops.object_size(source.client, source.bucket, source.key) is None:
                raise BlobNotFoundError(str(digest)) from exc
            raise

    def delete_blob(self, tenant: str, digest: Digest) -> None:
        place = self._place(tenant)
        try:
            place.client.delete_object(Bucket=place.bucket, Key=self._blob_key(place, digest))
        except ClientError as exc:
            if not ops.is_missing(exc):
                raise

    def delete_blobs(self, tenant: str, digests: Sequence[Digest]) -> dict[Digest, str]:
        """Delete with DeleteObjects, up to 1000 keys a request; report the refused keys."""
        place = self._place(tenant)
        keys = {self._blob_key(place, digest): digest for digest in digests}
        failed = ops.delete_keys_reporting(place.client, place.bucket, keys)
        return {keys[key]: reason for key, reason in failed.items() if key in keys}

    def list_blobs(self, tenant: str) -> Iterator[Digest]:
        place = self._place(tenant)
        prefix = f"{place.base}blobs/"
        return _parse_blob_keys(ops.list_objects(place.client, place.bucket, prefix), prefix)


def _read_parts(place: Place, parts: list[_Part]) -> Iterator[bytes]:
    for part in parts:
        yield from _chunks(place.client.get_object(Bucket=place.bucket, Key=part.key)["Body"])


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
