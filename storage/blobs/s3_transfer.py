"""Copying a blob between buckets that no single set of credentials reaches.

The bytes pass through this process: they are read with the source's client and
written with the target's, so neither set of credentials is ever used on the other's
bucket. The copy is verified against the digest before the target object appears: a
blob up to 16 MiB is checked in memory and written with one PUT; a larger one streams
through a multipart upload of 16 MiB parts that is completed only if the digest
matches (and aborted otherwise), so memory stays bounded whatever the blob's size.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from core.digests import new_hasher
from core.ports import BlobNotFoundError
from storage.blobs.s3_assemble import CONCAT_PART, READ_SIZE, S3Object

if TYPE_CHECKING:
    from collections.abc import Iterator

    from mypy_boto3_s3.type_defs import CompletedPartTypeDef

    from core.digests import Digest, Hasher


def copy_through(source: S3Object, target: S3Object, digest: Digest) -> None:
    """Copy ``source`` to ``target`` if its bytes hash to ``digest``.

    Raises:
        BlobNotFoundError: the source is missing or does not hold ``digest``'s bytes;
            nothing is written to the target then.
    """
    hasher = new_hasher(digest.algorithm)
    body = source.client.get_object(Bucket=source.bucket, Key=source.key)["Body"]
    with body:
        pieces = _pieces(body.iter_chunks(chunk_size=READ_SIZE), hasher)
        first = next(pieces, b"")
        second = next(pieces, None)
        if second is None:
            _verify(hasher.hexdigest(), digest)
            target.client.put_object(Bucket=target.bucket, Key=target.key, Body=first)
            return
        _multipart(target, _chain(first, second, pieces), hasher, digest)


def _multipart(target: S3Object, parts: Iterator[bytes], hasher: Hasher, digest: Digest) -> None:
    """Upload ``parts`` as one object, completed only if ``hasher`` then matches."""

    def upload(upload_id: str) -> list[CompletedPartTypeDef]:
        completed: list[CompletedPartTypeDef] = []
        for number, data in enumerate(parts, start=1):
            response = target.client.upload_part(
                Bucket=target.bucket,
                Key=target.key,
                UploadId=upload_id,
                PartNumber=number,
                Body=data,
            )
            completed.append({"PartNumber": number, "ETag": response["ETag"]})
        _verify(hasher.hexdigest(), digest)
        return completed

    target.multipart(upload)


def _verify(actual_hex: str, digest: Digest) -> None:
    if actual_hex != digest.hex:
        raise BlobNotFoundError(f"{digest}: the source object does not hold these bytes")


def _chain(first: bytes, second: bytes, rest: Iterator[bytes]) -> Iterator[bytes]:
    yield first
    yield second
    yield from rest


def _pieces(chunks: Iterator[bytes], hasher: Hasher) -> Iterator[bytes]:
    """Regroup ``chunks`` into pieces of ``CONCAT_PART`` bytes (the last may be smaller).

    Hashes every byte on the way. Yields at least one piece, empty for no bytes.
    """
    buffer = bytearray()
    emitted = False
    for chunk in chunks:
        hasher.update(chunk)
        buffer += chunk
        while len(buffer) >= CONCAT_PART:
            yield bytes(buffer[:CONCAT_PART])
            del buffer[:CONCAT_PART]
            emitted = True
    if buffer or not emitted:
        yield bytes(buffer)
