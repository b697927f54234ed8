"""Layer byte streams: digest-checked, decompressed within a byte budget, read once.

A layer blob arrives as an iterator of chunks. :class:`LayerStream` hashes the
compressed bytes as they pass (and the uncompressed ones, for the ``diff_id``), on
threads of their own, decompresses gzip (or passes a plain tar through) with a bound on
the output, and checks the digest when the input ends: a mismatch, a corrupt stream or a
budget overrun raises :class:`ScanFailedError`.
"""

from __future__ import annotations

import io
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from core.scan.errors import ScanFailedError
from core.scan.hashing import BackgroundHash

_READ = 1024 * 1024
#: Most bytes decompressed in one call while skipping (a file's body nobody reads).
_SKIP = 1 * 1024 * 1024
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
    """A read-once stream of a layer's uncompressed tar bytes, seekable forward only.

    A forward :meth:`seek` skips bytes without handing them to Python code chunk by
    chunk: a tar reader passing over a file's body costs one decompression call per
    megabyte. Skipped bytes are still decompressed, counted against the budget and hashed
    into the ``diff_id``. Both digests are computed on their own threads
    (:class:`BackgroundHash`) while this one decompresses; :meth:`close` stops them.
    """

    def __init__(
        self,
        chunks: Iterator[bytes],
        digest: str,
        compression: str,
        budget: Budget,
        diff_id: bool = True,
    ) -> None:
        super().__init__()
        algorithm, _, self._expected = digest.partition(":")
        if algorithm not in {"sha256", "sha512"}:
            raise ScanFailedError(f"layer {digest}: unsupported digest algorithm")
        self._digest = digest
        self._chunks = chunks
        self._gzip = compression == "gzip"
        self._hasher = BackgroundHash(algorithm)
        # NOTE: an uncompressed layer's diff_id is its sha256 digest: hashed once
        self._same_hash = not self._gzip and algorithm == "sha256"
        self._diff_hasher: BackgroundHash | None = None
        if self._same_hash:
            self._diff_hasher = self._hasher
        elif diff_id:
            self._diff_hasher = BackgroundHash("sha256")
        self._inflater = zlib.decompressobj(_GZIP_WBITS) if self._gzip else None
        self._pending = b""  # compressed input not yet inflated
        self._in_member = False  # a gzip member started and has not ended yet
        self._out = bytearray()
        self._position = 0
        self._ended = False
        self._budget = budget
        self._diff_id: str | None = None

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._position

    def seek(self, offset: int, whence: int = io.SEEK_SET, /) -> int:
        """Move forward to ``offset`` (never back); at the end of the stream, stop there."""
        if whence == io.SEEK_CUR:
            offset += self._position
        elif whence != io.SEEK_SET:
            raise io.UnsupportedOperation("a layer stream seeks from its start or position")
        if offset < self._position:
            raise io.UnsupportedOperation("a layer stream cannot seek backwards")
        self._skip(offset - self._position)
        return self._position

    def read(self, size: int | None = -1, /) -> bytes:
        """Up to ``size`` bytes; fewer only at the end of the stream."""
        if size is None or size < 0:
            while not self._ended:
                self._out += self._fill(_READ)
            size = len(self._out)
        while len(self._out) < size and not self._ended:
            self._out += self._fill(max(size - len(self._out), _READ))
        data = bytes(self._out[:size])
        del self._out[:size]
        self._position += len(data)
        return data

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def drain(self) -> None:
        """Read to the end (so the digest is checked even if the tar reader stopped early)."""
        self._out.clear()
        while not self._ended:
            self._fill(_READ)

    def diff_id(self) -> str | None:
        """The sha256 of the uncompressed bytes (after :meth:`drain`); ``None`` if not asked."""
        if self._diff_id is None and self._diff_hasher is not None:
            self._diff_id = self._diff_hasher.hexdigest()
        return self._diff_id

    def close(self) -> None:
        """Stop the hashing threads (they are stopped already once the digest was checked)."""
        self._hasher.close()
        if self._diff_hasher is not None:
            self._diff_hasher.close()
        super().close()

    def _skip(self, count: int) -> None:
        take = min(count, len(self._out))
        del self._out[:take]
        count -= take
        self._position += take
        while count > 0 and not self._ended:
            data = self._fill(min(count, _SKIP))
            if len(data) > count:
                self._out += memoryview(data)[count:]
                used = count
            else:
                used = len(data)
            count -= used
            self._position += used

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

    def _fill(self, size: int) -> bytes:
        """The next uncompressed bytes (at most ``size`` of gzip; a whole chunk of a tar)."""
        if not self._gzip:
            chunk = self._next_input()
            if chunk is None:
                self._finish()
                return b""
            return self._emit(chunk)
        if not self._pending:
            chunk = self._next_input()
            if chunk is None:
                self._finish()
                return b""
            self._pending = chunk
        return self._inflate(size)

    def _inflate(self, size: int) -> bytes:
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
        return self._emit(data)

    def _emit(self, data: bytes) -> bytes:
        if data:
            self._budget.spend_bytes(len(data))
            if self._diff_hasher is not None and not self._same_hash:
                self._diff_hasher.update(data)
        return data

    def _finish(self) -> None:
        if self._gzip and (self._in_member or self._pending):
            raise ScanFailedError(f"layer {self._digest} is corrupt: truncated gzip stream")
        self._ended = True
        actual = self._hasher.hexdigest()
        if actual != self._expected:
            raise ScanFailedError(
                f"layer {self._digest} does not match its digest "
                f"(the stored bytes hash to {self._hasher.name}:{actual})"
            )
