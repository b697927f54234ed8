"""The running SHA-256 of each upload, continued by whichever API process gets the next chunk.

Where a chunk's hash comes from, fastest first:

1. this process hashed the previous chunk: the hasher it kept (keyed by upload id and the
   offset it covers);
2. the upload's row: the state saved with the offset by the previous chunk
   (``UploadRepository.advance`` writes offset, ``hash_offset`` and ``hash_state`` in one
   statement), resumed through :class:`core.resumable_hash.ResumableHashing`;
3. none: the chunk is stored unhashed and completion re-reads the upload's bytes, counted
   by the :class:`core.resumable_hash.RehashMeter` (``moorage_upload_rehash_bytes_total``).

Consistency guarantee: a state is used only when the offset it was saved for equals the
upload's committed offset as read from its row, and the hashing implementation checks
that the state itself covers exactly that many bytes; a state left by a chunk that never
committed, or saved for another offset, is therefore never continued. Because the state
and the offset are written by one statement, a committed offset never comes with a torn
state. The digest of a completed upload is still compared with the one the client named,
and a running hash that disagrees is confirmed by re-reading the bytes before the upload
is refused, so a saved state can change how much is read, never the outcome. Whoever can
write the database can forge a state, as they can forge any manifest; nothing here guards
against that. Saved states disappear with the upload's row (completion, cancel, reaping).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from core.digests import Digest, new_hasher
from core.records import UploadRecord
from core.resumable_hash import RehashMeter, ResumableHasher, ResumableHashing

_CACHE_MAX = 256
_SHA256 = "sha256"


@dataclass(slots=True)
class _Kept:
    offset: int
    hasher: ResumableHasher


class RunningHashes:
    """Hands out, keeps and resumes the running hashes of uploads (see the module)."""

    def __init__(self, hashing: ResumableHashing) -> None:
        self._hashing = hashing
        self._kept: dict[str, _Kept] = {}
        self._lock = threading.Lock()
        self._meter: RehashMeter | None = None

    @property
    def resumable(self) -> bool:
        """Whether running hashes are saved for other processes to continue."""
        return self._hashing.resumable

    def measure(self, meter: RehashMeter) -> None:
        """Report re-read bytes to ``meter`` from now on."""
        self._meter = meter

    def take(self, upload: UploadRecord) -> ResumableHasher | None:
        """The hasher covering ``upload``'s committed bytes, or ``None`` if there is none."""
        with self._lock:
            kept = self._kept.pop(upload.id, None)
        if kept is not None and kept.offset == upload.offset:
            return kept.hasher
        if upload.offset == 0:
            return self._hashing.new()
        if upload.hash_state is None or upload.hash_offset != upload.offset:
            return None
        return self._hashing.resume(upload.hash_state, upload.offset)

    def keep(self, upload_id: str, offset: int, hasher: ResumableHasher) -> None:
        """Remember ``hasher`` (covering ``offset`` bytes) for this process's next chunk."""
        with self._lock:
            if len(self._kept) >= _CACHE_MAX:
                self._kept.pop(next(iter(self._kept)))
            self._kept[upload_id] = _Kept(offset, hasher)

    def forget(self, upload_id: str) -> None:
        with self._lock:
            self._kept.pop(upload_id, None)

    def digest(
        self, upload: UploadRecord, algorithm: str, read: Callable[[], Iterable[bytes]]
    ) -> tuple[Digest, bool]:
        """The digest of ``upload``'s committed bytes, and whether a running hash gave it.

        ``read`` streams the committed bytes; it is called only when no running hash
        covers them (or the algorithm is not SHA-256).
        """
        if algorithm != _SHA256:
            return self.rehash(algorithm, read, "algorithm"), False
        hasher = self.take(upload)
        if hasher is None:
            return self.rehash(algorithm, read, "no_state"), False
        return Digest(algorithm, hasher.hexdigest()), True

    def rehash(self, algorithm: str, read: Callable[[], Iterable[bytes]], reason: str) -> Digest:
        """Hash the bytes ``read`` streams, counting them as re-read for ``reason``."""
        hasher = new_hasher(algorithm)
        size = 0
        for piece in read():
            hasher.update(piece)
            size += len(piece)
        if self._meter is not None:
            self._meter.rehashed(reason, size)
        return Digest(algorithm, hasher.hexdigest())
