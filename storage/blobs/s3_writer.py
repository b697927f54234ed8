"""The S3 upload writer: one request's bytes become one part object on commit."""

from __future__ import annotations

import tempfile
from typing import IO, TYPE_CHECKING

if TYPE_CHECKING:
    from boto3.s3.transfer import TransferConfig
    from mypy_boto3_s3 import S3Client


class S3UploadWriter:
    """Spools one request's bytes to a local temporary file; ``commit`` stores them.

    Consistency guarantees: nothing reaches S3 before :meth:`commit`, which uploads the
    spool as the single object ``part_key`` (a plain or multipart PUT, so the object is
    whole or absent) and only then returns the new size. :meth:`abort` drops the spool.
    The spool lives on local disk, never wholly in memory, and is removed on close.
    """

    def __init__(
        self,
        client: S3Client,
        bucket: str,
        part_key: str,
        offset: int,
        transfer: TransferConfig,
    ) -> None:
        self._client = client
        self._bucket = bucket
        self._part_key = part_key
        self._offset = offset
        self._transfer = transfer
        self._written = 0
        self._spool: IO[bytes] | None = tempfile.TemporaryFile(prefix="moorage-upload-")  # noqa: SIM115

    def _open_spool(self) -> IO[bytes]:
        if self._spool is None:
            raise ValueError("the writer was already committed or aborted")
        return self._spool

    def write(self, data: bytes) -> None:
        """Append ``data`` to the local spool."""
        self._open_spool().write(data)
        self._written += len(data)

    def commit(self) -> int:
        """Upload the spool as this request's part object; return the new upload size."""
        spool = self._open_spool()
        self._spool = None
        with spool:
            if self._written:
                spool.seek(0)
                self._client.upload_fileobj(
                    spool, self._bucket, self._part_key, Config=self._transfer
                )
        return self._offset + self._written

    def abort(self) -> None:
        """Discard the spool; idempotent."""
        spool, self._spool = self._spool, None
        if spool is not None:
            spool.close()
