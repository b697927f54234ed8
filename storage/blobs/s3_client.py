"""The S3 client and the bucket-level operations the S3 blob store builds on.

Nothing here knows the store's key layout: functions take buckets, keys and prefixes.
"""

from __future__ import annotations

from itertools import islice
from typing import TYPE_CHECKING, cast

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator
    from datetime import datetime

    from mypy_boto3_s3 import S3Client
    from mypy_boto3_s3.literals import BucketLocationConstraintType

    from core.settings import S3Settings

_MISSING = frozenset({"404", "NotFound", "NoSuchKey", "NoSuchBucket", "NoSuchUpload"})
_DELETE_BATCH = 1000


def make_client(settings: S3Settings) -> S3Client:
    """A thread-safe S3 client for ``settings`` with retries and a connection pool."""
    secret = settings.secret_access_key
    config = Config(
        region_name=settings.region,
        retries={"max_attempts": 5, "mode": "standard"},
        max_pool_connections=32,
        connect_timeout=10,
        read_timeout=120,
        # S3-compatible services (Ceph, MinIO, ...) do not all speak the newer
        # default checksums; the registry verifies digests itself.
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
    )
    return boto3.session.Session().client(
        "s3",
        endpoint_url=settings.endpoint_url,
        region_name=settings.region,
        aws_access_key_id=settings.access_key_id,
        aws_secret_access_key=secret.get_secret_value() if secret is not None else None,
        config=config,
    )


def error_code(exc: ClientError) -> str:
    """The S3 error code of ``exc`` (``"NoSuchKey"``, ``"404"``, ...)."""
    return str(exc.response.get("Error", {}).get("Code", ""))


def is_missing(exc: ClientError) -> bool:
    """Whether ``exc`` says the key, bucket or upload does not exist."""
    return error_code(exc) in _MISSING


def object_size(client: S3Client, bucket: str, key: str) -> int | None:
    """The object's size, or ``None`` if it (or its bucket) does not exist."""
    try:
        return client.head_object(Bucket=bucket, Key=key)["ContentLength"]
    except ClientError as exc:
        if is_missing(exc):
            return None
        raise


def list_objects(client: S3Client, bucket: str, prefix: str) -> Iterator[tuple[str, int]]:
    """Every ``(key, size)`` under ``prefix``, in key order; nothing if the bucket is missing."""
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    try:
        for page in pages:
            for item in page.get("Contents", []):
                yield item["Key"], item["Size"]
    except ClientError as exc:
        if not is_missing(exc):
            raise


def delete_keys(client: S3Client, bucket: str, keys: Iterable[str]) -> None:
    """Delete ``keys`` in batches of 1000; missing keys are not an error."""
    failed = delete_keys_reporting(client, bucket, keys)
    if failed:
        key, reason = next(iter(failed.items()))
        raise OSError(f"could not delete {len(failed)} objects from {bucket}: {key}: {reason}")


def delete_keys_reporting(client: S3Client, bucket: str, keys: Iterable[str]) -> dict[str, str]:
    """Delete ``keys`` with one DeleteObjects request per 1000; report what stayed.

    Missing keys (and a missing bucket) are not errors. A request failing as a whole
    raises its ``ClientError``; keys the service refused one by one are returned.

    Returns:
        Each key the service did not delete, with its error code and message.
    """
    failed: dict[str, str] = {}
    remaining = iter(keys)
    while batch := list(islice(remaining, _DELETE_BATCH)):
        try:
            response = client.delete_objects(
                Bucket=bucket,
                Delete={"Objects": [{"Key": key} for key in batch], "Quiet": True},
            )
        except ClientError as exc:
            if is_missing(exc):
                continue
            raise
        for error in response.get("Errors", []):
            code = error.get("Code", "")
            if code not in _MISSING:
                failed[error.get("Key", "")] = f"{code}: {error.get('Message', '')}"
    return failed


def delete_prefix(client: S3Client, bucket: str, prefix: str) -> None:
    """Delete every object under ``prefix``; a missing bucket is not an error."""
    delete_keys(client, bucket, (key for key, _ in list_objects(client, bucket, prefix)))


def abort_multipart_uploads(
    client: S3Client, bucket: str, prefix: str, initiated_before: datetime | None
) -> int:
    """Abort multipart uploads under ``prefix`` started at or before the time (all if None)."""
    aborted = 0
    pages = client.get_paginator("list_multipart_uploads").paginate(Bucket=bucket, Prefix=prefix)
    try:
        for page in pages:
            for upload in page.get("Uploads", []):
                if initiated_before is not None and upload["Initiated"] > initiated_before:
                    continue
                if _abort(client, bucket, upload["Key"], upload["UploadId"]):
                    aborted += 1
    except ClientError as exc:
        if not is_missing(exc):
            raise
    return aborted


def _abort(client: S3Client, bucket: str, key: str, upload_id: str) -> bool:
    try:
        client.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id)
    except ClientError as exc:
        if is_missing(exc):
            return False
        raise
    return True


def ensure_bucket(client: S3Client, bucket: str, region: str) -> None:
    """Create ``bucket`` unless it exists already (and is ours)."""
    try:
        client.head_bucket(Bucket=bucket)
    except ClientError as exc:
        if not is_missing(exc):
            raise
    else:
        return
    try:
        if region == "us-east-1":
            client.create_bucket(Bucket=bucket)
        else:
            client.create_bucket(
                Bucket=bucket,
                CreateBucketConfiguration={
                    "LocationConstraint": cast("BucketLocationConstraintType", region)
                },
            )
    except ClientError as exc:
        if error_code(exc) != "BucketAlreadyOwnedByYou":
            raise


def remove_bucket(client: S3Client, bucket: str) -> None:
    """Delete a bucket with all its objects and multipart uploads; missing is fine."""
    delete_prefix(client, bucket, "")
    abort_multipart_uploads(client, bucket, "", None)
    try:
        client.delete_bucket(Bucket=bucket)
    except ClientError as exc:
        if not is_missing(exc):
            raise
