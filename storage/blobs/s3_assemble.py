"""Assembling an upload's part objects into one blob object, server-side when possible.

- no part: an empty object;
- one part: a managed server-side copy (multipart copy above the threshold, so > 5 GiB
  works);
- several parts, each but the last at least 5 MiB: a multipart upload whose parts are
  ``upload_part_copy`` of the part objects (split by byte range above 5 GiB);
- otherwise: the parts are streamed through a multipart upload of 16 MiB parts, so
  memory stays bounded whatever the blob's size.

The target object appears only when the multipart upload completes; a failed assembly
aborts its multipart upload (and ``reap_incomplete`` removes those a crash left).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from boto3.s3.transfer import TransferConfig
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_s3.type_defs import CompletedPartTypeDef, CopySourceTypeDef

MIN_PART = 5 * 1024 * 1024
MAX_COPY_PART = 5 * 1024 * 1024 * 1024
MAX_PARTS = 10_000
CONCAT_PART = 16 * 1024 * 1024
READ_SIZE = 1024 * 1024


@dataclass(frozen=True, slots=True)
class SourcePart:
    """One stored part object of an upload."""

    key: str
    size: int


@dataclass(frozen=True, slots=True)
class CopyRange:
    """Bytes ``first``..``last`` (inclusive) of source part ``index`` as one target part."""

    index: int
    first: int
    last: int


def plan_copy(sizes: Sequence[int], max_part: int = MAX_COPY_PART) -> list[CopyRange] | None:
    """The target parts of a part-copy assembly, or ``None`` if S3 would refuse it.

    ``None`` when a part other than the last is under 5 MiB or the plan needs more than
    10,000 parts. A source part larger than ``max_part`` is split into equal ranges.
    """
    if any(size < MIN_PART for size in sizes[:-1]):
        return None
    plan: list[CopyRange] = []
    for index, size in enumerate(sizes):
        pieces = max(1, -(-size // max_part))
        step = -(-size // pieces)
        plan.extend(
            CopyRange(index, first, min(first + step, size) - 1) for first in range(0, size, step)
        )
    return plan if len(plan) <= MAX_PARTS else None


def assemble(
    client: S3Client,
    bucket: str,
    parts: Sequence[SourcePart],
    key: str,
    transfer: TransferConfig,
) -> None:
    """Write the concatenation of ``parts`` (in order) to ``key`` in ``bucket``."""
    parts = [part for part in parts if part.size > 0]
    if not parts:
        client.put_object(Bucket=bucket, Key=key, Body=b"")
        return
    if len(parts) == 1:
        source: CopySourceTypeDef = {"Bucket": bucket, "Key": parts[0].key}
        client.copy(source, bucket, key, Config=transfer)
        return
    target = S3Object(client, bucket, key)
    plan = plan_copy([part.size for part in parts])
    if plan is None:
        target.multipart(lambda upload_id: target.concat(upload_id, parts))
    else:
        target.multipart(lambda upload_id: target.copy_parts(upload_id, parts, plan))


@dataclass(frozen=True, slots=True)
class S3Object:
    """An object, the client that reaches its bucket, and the steps that write it.

    Used to assemble an upload and to copy a blob between buckets.
    """

    client: S3Client
    bucket: str
    key: str

    def multipart(self, produce: Callable[[str], list[CompletedPartTypeDef]]) -> None:
        """Run ``produce`` in a multipart upload; complete it, or abort it on failure."""
        client, bucket, key = self.client, self.bucket, self.key
        upload_id = client.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]
        try:
            completed = produce(upload_id)
            client.complete_multipart_upload(
                Bucket=bucket, Key=key, UploadId=upload_id, MultipartUpload={"Parts": completed}
            )
        except BaseException:
            client.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id)
            raise

    def copy_parts(
        self, upload_id: str, parts: Sequence[SourcePart], plan: Sequence[CopyRange]
    ) -> list[CompletedPartTypeDef]:
        """Copy each planned range of the part objects as one part, server-side."""
        completed: list[CompletedPartTypeDef] = []
        for number, piece in enumerate(plan, start=1):
            response = self.client.upload_part_copy(
                Bucket=self.bucket,
                Key=self.key,
                UploadId=upload_id,
                PartNumber=number,
                CopySource={"Bucket": self.bucket, "Key": parts[piece.index].key},
                CopySourceRange=f"bytes={piece.first}-{piece.last}",
            )
            etag = response["CopyPartResult"]["ETag"]
            completed.append({"PartNumber": number, "ETag": etag})
        return completed

    def concat(self, upload_id: str, parts: Sequence[SourcePart]) -> list[CompletedPartTypeDef]:
        """Stream the part objects through 16 MiB parts (the last one may be smaller)."""
        completed: list[CompletedPartTypeDef] = []
        buffer = bytearray()
        for part in parts:
            body = self.client.get_object(Bucket=self.bucket, Key=part.key)["Body"]
            with body:
                for chunk in body.iter_chunks(chunk_size=READ_SIZE):
                    buffer += chunk
                    if len(buffer) >= CONCAT_PART:
                        completed.append(self._put_part(upload_id, len(completed) + 1, buffer))
        if buffer or not completed:
            completed.append(self._put_part(upload_id, len(completed) + 1, buffer))
        return completed

    def _put_part(self, upload_id: str, number: int, buffer: bytearray) -> CompletedPartTypeDef:
        """Upload up to 16 MiB from the front of ``buffer`` as part ``number``; drop them."""
        data = bytes(buffer[:CONCAT_PART])
        del buffer[:CONCAT_PART]
        response = self.client.upload_part(
            Bucket=self.bucket, Key=self.key, UploadId=upload_id, PartNumber=number, Body=data
        )
        return {"PartNumber": number, "ETag": response["ETag"]}
