"""Where an analysis reads an image from: manifests and blobs by digest."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Protocol

from core.digests import Digest
from core.ports import BlobStore


class ImageSource(Protocol):
    """Read access to one repository's content.

    ``manifest`` returns the stored bytes of a manifest or ``None``; ``blob`` streams a
    blob's stored bytes (the analysis checks every digest itself, so a source need not).
    """

    def manifest(self, digest: str) -> bytes | None: ...

    def blob(self, digest: str) -> Iterator[bytes]: ...


class BlobStoreSource:
    """An :class:`ImageSource` over the blob store and a manifest lookup."""

    def __init__(
        self, blobs: BlobStore, tenant: str, manifests: Callable[[str], bytes | None]
    ) -> None:
        self._blobs = blobs
        self._tenant = tenant
        self._manifests = manifests

    def manifest(self, digest: str) -> bytes | None:
        return self._manifests(digest)

    def blob(self, digest: str) -> Iterator[bytes]:
        return self._blobs.read_blob(self._tenant, Digest.parse(digest))
