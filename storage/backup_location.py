"""Backup locations: a directory or an S3 bucket (``core.backup_ports.BackupLocation``).

Keys are the ``/``-separated names ``core.backup`` defines. On the filesystem an object
is written to a temporary file in the same directory, flushed, then renamed into place;
on S3 an object appears whole through one PUT or a completed multipart upload (boto3's
managed transfer), and a server-side copy is used where the blob already lives on the
same S3 service.
"""

from __future__ import annotations

import io
import os
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from core.backup_ports import BackupLocation, BackupObjectMissingError, BlobAddress
from core.backup_settings import BackupSettings
from core.settings import S3Settings, Settings
from storage.blobs.s3_client import delete_keys, is_missing, list_objects, make_client

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

_CHUNK = 1024 * 1024


def _check_key(key: str) -> str:
    parts = key.split("/")
    if not key or any(part in {"", ".", ".."} for part in parts):
        raise ValueError(f"invalid backup key {key!r}")
    return key


class FilesystemLocation:
    """Backups under a directory."""

    def __init__(self, root: Path) -> None:
        self._root = root

    def describe(self) -> str:
        return str(self._root)

    def _path(self, key: str) -> Path:
        return self._root / _check_key(key)

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def write(self, key: str, chunks: Iterable[bytes]) -> None:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as handle:
                for chunk in chunks:
                    handle.write(chunk)
                handle.flush()
                os.fsync(handle.fileno())
            Path(tmp).replace(path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def read(self, key: str) -> Iterator[bytes]:
        try:
            handle = self._path(key).open("rb")
        except FileNotFoundError:
            raise BackupObjectMissingError(key) from None
        return _file_chunks(handle)

    def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)

    def keys(self, prefix: str) -> Iterator[str]:
        base = self._root / prefix.rstrip("/") if prefix else self._root
        if not base.is_dir():
            return
        for path in sorted(base.rglob("*")):
            if path.is_file() and not path.name.startswith(".tmp-"):
                yield path.relative_to(self._root).as_posix()

    def server_copy(self, key: str, source: BlobAddress) -> bool:
        del key, source
        return False


def _file_chunks(handle: io.BufferedReader) -> Iterator[bytes]:
    with handle:
        while chunk := handle.read(_CHUNK):
            yield chunk


class _IterFile(io.RawIOBase):
    """A readable file over chunks, for boto3's managed upload."""

    def __init__(self, chunks: Iterable[bytes]) -> None:
        self._chunks = iter(chunks)
        self._buffer = b""

    def readable(self) -> bool:
        return True

    def readinto(self, target: Any) -> int:
        while not self._buffer:
            chunk = next(self._chunks, None)
            if chunk is None:
                return 0
            self._buffer = chunk
        size = min(len(target), len(self._buffer))
        target[:size] = self._buffer[:size]
        self._buffer = self._buffer[size:]
        return size


class S3Location:
    """Backups in a bucket under a key prefix."""

    def __init__(self, client: S3Client, bucket: str, prefix: str, endpoint: str | None) -> None:
        self._client = client
        self._bucket = bucket
        self._prefix = prefix
        self._endpoint = endpoint

    def describe(self) -> str:
        return f"s3://{self._bucket}/{self._prefix}"

    def _key(self, key: str) -> str:
        return self._prefix + _check_key(key)

    def exists(self, key: str) -> bool:
        try:
            self._client.head_object(Bucket=self._bucket, Key=self._key(key))
        except ClientError as exc:
            if is_missing(exc):
                return False
            raise
        return True

    def write(self, key: str, chunks: Iterable[bytes]) -> None:
        reader = io.BufferedReader(_IterFile(chunks), buffer_size=_CHUNK)
        self._client.upload_fileobj(reader, self._bucket, self._key(key))

    def read(self, key: str) -> Iterator[bytes]:
        try:
            body = self._client.get_object(Bucket=self._bucket, Key=self._key(key))["Body"]
        except ClientError as exc:
            if is_missing(exc):
                raise BackupObjectMissingError(key) from None
            raise
        return iter(lambda: body.read(_CHUNK), b"")

    def delete(self, key: str) -> None:
        delete_keys(self._client, self._bucket, [self._key(key)])

    def keys(self, prefix: str) -> Iterator[str]:
        for key, _size in list_objects(self._client, self._bucket, self._prefix + prefix):
            yield key.removeprefix(self._prefix)

    def server_copy(self, key: str, source: BlobAddress) -> bool:
        if source.endpoint != self._endpoint:
            return False
        copy_source = {"Bucket": source.bucket, "Key": source.key}
        try:
            self._client.copy(copy_source, self._bucket, self._key(key))  # type: ignore[arg-type]
        except ClientError:
            return False  # NOTE: e.g. these credentials cannot read the source: stream instead
        return True


def build_backup_location(settings: Settings) -> BackupLocation | None:
    """The location ``settings.backup`` names (``None``: none configured)."""
    backup: BackupSettings = settings.backup
    if backup.path is not None:
        return FilesystemLocation(Path(backup.path).resolve())
    if backup.s3 is None:
        return None
    target = backup.s3
    base = settings.s3
    client_settings = S3Settings(
        endpoint_url=target.endpoint_url or base.endpoint_url,
        region=target.region or base.region,
        bucket=target.bucket,
        access_key_id=target.access_key_id or base.access_key_id,
        secret_access_key=target.secret_access_key or base.secret_access_key,
    )
    client = make_client(client_settings)
    return S3Location(client, target.bucket, target.key_prefix, client_settings.endpoint_url)
