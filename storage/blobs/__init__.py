"""Blob store adapters; :func:`build_blob_store` picks the one the settings name."""

from __future__ import annotations

from typing import TYPE_CHECKING

from core.settings import StorageBackend

if TYPE_CHECKING:
    from core.ports import BlobStore
    from core.settings import Settings


def build_blob_store(settings: Settings) -> BlobStore:
    """The blob store for ``settings.storage`` (filesystem or S3)."""
    if settings.storage is StorageBackend.S3:
        from storage.blobs.s3 import S3BlobStore  # noqa: PLC0415 - boto3 only when used

        return S3BlobStore(settings.s3)
    if settings.storage is StorageBackend.FILESYSTEM:
        from storage.blobs.filesystem import FilesystemBlobStore  # noqa: PLC0415

        return FilesystemBlobStore(settings.resolved_blob_root)
    raise ValueError(f"unknown storage backend {settings.storage!r}")
