"""In-memory blob payloads for the benchmark.

A blob is virtual: a unique prefix followed by a shared random base buffer repeated as often
as needed. Its bytes are produced as memoryview slices of that base buffer, so a 1 GiB blob
costs no memory beyond the base buffer, and every blob has its own digest.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Iterator

MIB = 1024 * 1024
PREFIX_LEN = 64


@dataclass(frozen=True)
class Blob:
    """A virtual blob: ``prefix`` followed by ``base`` repeated up to ``size`` bytes.

    Attributes:
        prefix: Unique leading bytes that make the digest unique.
        base: Shared random bytes repeated after the prefix.
        size: Total size in bytes.
        digest: ``sha256:<hex>`` of the whole content, computed once up front.
    """

    prefix: bytes
    base: bytes
    size: int
    digest: str

    def iter_range(self, start: int, end: int, piece: int) -> Iterator[memoryview]:
        """Yield the bytes in ``[start, end)`` as views of at most ``piece`` bytes.

        Args:
            start: First offset, inclusive.
            end: Last offset, exclusive; clamped to the blob size.
            piece: Largest view to yield.

        Yields:
            Consecutive memoryviews covering the range, without copying the base buffer.

        Raises:
            ValueError: If ``piece`` is not positive.
        """
        if piece <= 0:
            raise ValueError("piece must be positive")
        end = min(end, self.size)
        prefix = memoryview(self.prefix)
        base = memoryview(self.base)
        pos = start
        while pos < end:
            if pos < len(self.prefix):
                stop = min(end, len(self.prefix), pos + piece)
                yield prefix[pos:stop]
            else:
                offset = (pos - len(self.prefix)) % len(self.base)
                stop = min(end, pos + piece, pos + len(self.base) - offset)
                yield base[offset : offset + stop - pos]
            pos = stop

    def iter_pieces(self, piece: int) -> Iterator[memoryview]:
        """Yield the whole blob as views of at most ``piece`` bytes.

        Args:
            piece: Largest view to yield.

        Returns:
            An iterator over the blob content.
        """
        return self.iter_range(0, self.size, piece)

    def to_bytes(self) -> bytes:
        """Return the whole content as one bytes object (only for small blobs)."""
        return b"".join(self.iter_pieces(8 * MIB))


class PayloadFactory:
    """Makes unique virtual blobs over one random base buffer."""

    def __init__(self, base_size: int) -> None:
        """Generate the random base buffer.

        Args:
            base_size: Size of the shared random buffer in bytes.
        """
        self.base = os.urandom(base_size)
        self._nonce = os.urandom(16).hex()
        self._counter = 0

    def blob(self, size: int, label: str = "", *, digest: bool = True) -> Blob:
        """Make a blob with a unique prefix and compute its digest.

        Args:
            size: Total size in bytes (at least the prefix length).
            label: Readable text mixed into the prefix.
            digest: Compute the digest; when false the blob's ``digest`` is empty.

        Returns:
            The blob, with its digest computed unless told otherwise.
        """
        self._counter += 1
        text = f"{self._nonce}:{self._counter}:{label}:".encode()
        prefix = (text + b"\0" * PREFIX_LEN)[:PREFIX_LEN]
        if size < PREFIX_LEN:
            raise ValueError("blob size must be at least the prefix length")
        partial = Blob(prefix=prefix, base=self.base, size=size, digest="")
        if not digest:
            return partial
        hasher = hashlib.sha256()
        for view in partial.iter_pieces(8 * MIB):
            hasher.update(view)
        return Blob(prefix=prefix, base=self.base, size=size, digest="sha256:" + hasher.hexdigest())


def small_blob(data: bytes) -> tuple[bytes, str]:
    """Return ``data`` with its ``sha256:`` digest.

    Args:
        data: The content.

    Returns:
        The content and its digest.
    """
    return data, "sha256:" + hashlib.sha256(data).hexdigest()
