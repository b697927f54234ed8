"""Running SHA-256 hashes of uploads that another process can continue.

A chunked upload is hashed as its bytes arrive. For the next chunk, or the completing
``PUT``, to continue that hash in another API process, the hash's state must leave the
process that computed it: :class:`ResumableHashing` makes hashers whose state can be
exported as bytes and resumed elsewhere. Python's ``hashlib`` cannot export its state, so
the implementation is an adapter (``adapters.openssl_sha256``); :class:`LocalHashing` is
the fallback when no such adapter can be loaded: its hashers live only in the process
that made them, and another process re-reads the upload's bytes to hash them.
"""

from __future__ import annotations

import hashlib
from typing import Protocol

from core.digests import Hasher


class ResumableHasher(Hasher, Protocol):
    """A SHA-256 hasher whose running state can be saved."""

    def export(self) -> bytes | None:
        """The state after every byte hashed so far; ``None`` if it cannot be saved.

        The bytes are opaque: only :meth:`ResumableHashing.resume` of the same kind of
        hashing reads them.
        """


class ResumableHashing(Protocol):
    """Makes SHA-256 hashers and continues them from exported states.

    Consistency contract: :meth:`resume` is given the number of bytes the caller knows the
    state covers; it refuses (``None``) a state it cannot prove covers exactly that many
    bytes, or that another implementation or machine layout wrote. A state that passes
    still only claims a length, not the bytes themselves, so callers compare the result
    with the digest the client named and re-hash the stored bytes on a mismatch.
    """

    #: Whether hashers' states can be exported (``False``: in-process only).
    resumable: bool

    def new(self) -> ResumableHasher:
        """A hasher of zero bytes."""

    def resume(self, state: bytes, length: int) -> ResumableHasher | None:
        """The hasher ``state`` describes, if it covers exactly ``length`` bytes."""


class _LocalHasher:
    """``hashlib``'s SHA-256: fast, but its state never leaves the process."""

    __slots__ = ("_hash",)

    def __init__(self, hash_: hashlib._Hash) -> None:
        self._hash = hash_

    def update(self, data: bytes, /) -> None:
        self._hash.update(data)

    def hexdigest(self) -> str:
        return self._hash.hexdigest()

    def copy(self) -> _LocalHasher:
        return _LocalHasher(self._hash.copy())

    def export(self) -> bytes | None:
        return None


class LocalHashing:
    """:class:`ResumableHashing` without resumption: hashers stay in their process."""

    resumable = False

    def new(self) -> ResumableHasher:
        return _LocalHasher(hashlib.sha256())

    def resume(self, state: bytes, length: int) -> ResumableHasher | None:  # noqa: ARG002
        return None


class RehashMeter(Protocol):
    """Counts the bytes of uploads read back from storage to hash them again."""

    def rehashed(self, reason: str, size: int) -> None:
        """``size`` bytes were re-read and hashed for ``reason`` (see ``REHASH_REASONS``)."""


#: Why an upload's bytes were read back: no usable running hash for its committed bytes
#: (none saved, a stale or foreign state, or no resumable hashing in that process); a
#: digest algorithm other than SHA-256; a running hash that disagreed with the client's
#: digest (re-read to be sure before refusing the upload).
REHASH_REASONS = ("no_state", "algorithm", "mismatch")
