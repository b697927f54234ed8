"""Layer byte streams: digest-checked, decompressed within a byte budget, read once.

A layer blob arrives as an iterator of chunks. :class:`LayerStream` hashes the
compressed bytes as they pass, decompresses gzip (or passes a plain tar through) with a
bound on the output, and checks the digest when the input ends: a mismatch, a corrupt
stream or a budget overrun raises :class:`ScanFailedError`.
"""

from __future__ import annotations

import hashlib
import io
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from core.scan.errors import ScanFailedError

_READ = 1024 * 1024
_GZIP_WBITS = 16 + zlib.MAX_WBITS


@dataclass
class Budget:
    """Bytes and entries one image analysis may still spend, and its deadline."""

    bytes_left: int
    entries_left: int
    deadline: float
    clock: Callable[[], float]

    def spend_bytes(self, count: int) -> None:
        self.bytes_left -= count
        if self.bytes_left < 0:
            raise ScanFailedError(
                "the image decompresses to more bytes than max_uncompressed_bytes allows"
            )

    def spend_entry(self) -> None:
        self.entries_left -= 1
        if self.entries_left < 0:
            raise ScanFailedError("the image has more files than max_entries allows")
        self.check_time()

    def check_time(self) -> None:
        if self.clock() > self.deadline:
            raise ScanFailedError("the analysis took longer than max_seconds allows")


class LayerStream(io.RawIOBase):
    """A read-once stream of a layer's uncompressed tar bytes."""

    def __init__(
        self,
        chunks: Iterator[bytes],
        digest: str,
        compression: str,
        budget: Budget,
    ) -> None:
        super().__init__()
        algorithm, _, self._expected = digest.partition(":")
        if algorithm not in {"sha256", "sha512"}:
            raise ScanFailedError(f"layer {digest}: unsupported digest algorithm")
        self._digest = digest
        self._hasher = hashlib.new(algorithm)
        self._chunks = chunks
        self._gzip = compression == "gzip"
        self._inflater = zlib.decompressobj(_GZIP_WBITS) if self._gzip else None
        self._pending = b""  # compressed input not yet inflated
        self._in_member = False  # a gzip member started and has not ended yet
        self._out = bytearray()
        self._ended = False
        self._budget = budget
        self.diff_hasher = hashlib.sha256()

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        want = len(buffer)
        while not self._out and not self._ended:
            self._fill(max(want, _READ))
        count = min(want, len(self._out))
        buffer[:count] = self._out[:count]
        del self._out[:count]
        return count

    def drain(self) -> None:
        """Read to the end (so the digest is checked even if the tar reader stopped early)."""
        while not self._ended:
            self._fill(_READ)
            self._out.clear()

    def _next_input(self) -> bytes | None:
        try:
            chunk = next(self._chunks)
        except StopIteration:
            return None
        except ScanFailedError:
            raise
        except Exception as exc:
            raise ScanFailedError(f"layer {self._digest} could not be read: {exc}") from exc
        self._hasher.update(chunk)
        return chunk

    def _fill(self, size: int) -> None:
        if not self._gzip:
            chunk = self._next_input()
            if chunk is None:
                self._finish()
                return
            self._emit(chunk)
            return
        if not self._pending:
            chunk = self._next_input()
            if chunk is None:
                self._finish()
                return
            self._pending = chunk
        self._inflate(size)

    def _inflate(self, size: int) -> None:
        inflater = self._inflater
        assert inflater is not None  # noqa: S101 - gzip streams always have one
        self._in_member = True
        try:
            data = inflater.decompress(self._pending, size)
        except zlib.error as exc:
            raise ScanFailedError(f"layer {self._digest} is corrupt: {exc}") from exc
        self._pending = inflater.unconsumed_tail
        if inflater.eof:
            rest = inflater.unused_data
            # NOTE: a gzip file may hold several members; trailing zero padding is allowed.
            self._inflater = zlib.decompressobj(_GZIP_WBITS)
            self._pending = rest if rest.strip(b"\0") else b""
            self._in_member = False
        self._emit(data)

    def _emit(self, data: bytes) -> None:
        if data:
            self._budget.spend_bytes(len(data))
            self.diff_hasher.update(data)
            self._out += data

    def _finish(self) -> None:
        if self._gzip and (self._in_member or self._pending):
            raise ScanFailedError(f"layer {self._digest} is corrupt: truncated gzip stream")
        self._ended = True
        if self._hasher.hexdigest() != self._expected:
            raise ScanFailedError(
                f"layer {self._digest} does not match its digest "
                f"(the stored bytes hash to {self._hasher.name}:{self._hasher.hexdigest()})"
            )
