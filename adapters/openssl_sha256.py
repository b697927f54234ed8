"""SHA-256 with an exportable state: OpenSSL's libcrypto through ctypes.

:class:`core.resumable_hash.ResumableHashing` over the low-level ``SHA256_Init``,
``SHA256_Update`` and ``SHA256_Final`` functions, which libcrypto 1.1 and 3 still export.
They work on a caller-owned ``SHA256_CTX`` (112 bytes), so the context's bytes can be
copied out after a chunk and into a fresh context in another process. The hashing itself
is the same assembly ``hashlib`` reaches through OpenSSL, and ctypes releases the GIL for
each call, so a large update runs at ``hashlib``'s speed.

The exported state is a tag naming this format and the machine's byte order, then the raw
context. ``resume`` reads the context's fields (``h[8] Nl Nh data[16] num md_len``, all
32-bit words) and refuses a state whose bit count, partial-block length or digest length
does not match the length it is told; a state from another format or byte order is
refused too. :meth:`OpenSslSha256.load` checks the library and this layout against
``hashlib`` once, and answers ``None`` when anything differs, so the caller falls back.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import hashlib
import logging
import struct
import sys
from collections.abc import Sequence
from typing import Final

from core.resumable_hash import LocalHashing, ResumableHashing

logger = logging.getLogger(__name__)

_CTX_SIZE: Final = 112
_BLOCK: Final = 64
_DIGEST_SIZE: Final = 32
#: ``h[8] Nl Nh data[64 bytes] num md_len`` in the machine's byte order.
_LAYOUT: Final = struct.Struct("=8I2I64s2I")
_TAG: Final = b"openssl-sha256-ctx-v1-" + sys.byteorder.encode() + b":"
_BITS_MASK: Final = (1 << 64) - 1
_SONAMES: Final = ("libcrypto.so.3", "libcrypto.so.1.1", "libcrypto.3.dylib")


class _Sha256:
    """One running hash: a ``SHA256_CTX`` in a ctypes buffer."""

    __slots__ = ("_ctx", "_lib")

    def __init__(self, lib: _Library, ctx: ctypes.Array[ctypes.c_char]) -> None:
        self._lib = lib
        self._ctx = ctx

    def update(self, data: bytes | bytearray | memoryview, /) -> None:
        # NOTE: ctypes passes only ``bytes`` without a copy; other buffers are copied.
        whole = data if type(data) is bytes else bytes(data)
        if not self._lib.update(self._ctx, whole, len(whole)):
            raise RuntimeError("SHA256_Update failed")

    def hexdigest(self) -> str:
        ctx = ctypes.create_string_buffer(self._ctx.raw, _CTX_SIZE)
        out = ctypes.create_string_buffer(_DIGEST_SIZE)
        if not self._lib.final(out, ctx):
            raise RuntimeError("SHA256_Final failed")
        return out.raw.hex()

    def copy(self) -> _Sha256:
        return _Sha256(self._lib, ctypes.create_string_buffer(self._ctx.raw, _CTX_SIZE))

    def export(self) -> bytes | None:
        return _TAG + self._ctx.raw


class _Library:
    """The three libcrypto functions, typed for ctypes."""

    __slots__ = ("final", "init", "update")

    def __init__(self, lib: ctypes.CDLL) -> None:
        self.init = lib.SHA256_Init
        self.init.argtypes = [ctypes.c_void_p]
        self.init.restype = ctypes.c_int
        self.update = lib.SHA256_Update
        self.update.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_size_t]
        self.update.restype = ctypes.c_int
        self.final = lib.SHA256_Final
        self.final.argtypes = [ctypes.c_void_p, ctypes.c_void_p]
        self.final.restype = ctypes.c_int


def _covers(context: bytes, length: int) -> bool:
    """Whether ``context`` is a SHA-256 context after exactly ``length`` bytes."""
    if len(context) != _CTX_SIZE:
        return False
    fields: tuple[int, ...] = _LAYOUT.unpack(context)
    low, high, num, md_len = fields[8], fields[9], fields[11], fields[12]
    bits = (high << 32) | low
    return md_len == _DIGEST_SIZE and num == length % _BLOCK and bits == (length * 8) & _BITS_MASK


def library_names() -> list[str]:
    """Where to look for libcrypto: what ``find_library`` finds, then the usual sonames.

    ``find_library`` needs ``ldconfig`` or a compiler, which slim images may lack; the
    dynamic loader still finds the libcrypto Python's own ``ssl`` module links.
    """
    found = ctypes.util.find_library("crypto")
    return [*([found] if found else []), *_SONAMES]


class OpenSslSha256:
    """:class:`core.resumable_hash.ResumableHashing` over libcrypto (see the module)."""

    resumable = True

    def __init__(self, lib: ctypes.CDLL) -> None:
        self._lib = _Library(lib)

    @classmethod
    def load(cls, names: Sequence[str] | None = None) -> OpenSslSha256 | None:
        """The SHA-256 of the first libcrypto in ``names`` that behaves as this module expects.

        ``names`` defaults to :func:`library_names`; ``None`` when none is usable.
        """
        for name in library_names() if names is None else names:
            try:
                hashing = cls(ctypes.CDLL(name))
            except (OSError, AttributeError):
                continue
            if hashing.works():
                return hashing
        return None

    def works(self) -> bool:
        """Check digests and the context layout against ``hashlib`` on a few lengths."""
        sample = bytes(range(256)) * 5
        for length in (0, 3, 64, 100, 1280):
            hasher = self.new()
            hasher.update(sample[:length])
            state = hasher.export()
            resumed = None if state is None else self.resume(state, length)
            if resumed is None:
                return False
            resumed.update(sample[length:])
            if resumed.hexdigest() != hashlib.sha256(sample).hexdigest():
                return False
        return True

    def new(self) -> _Sha256:
        ctx = ctypes.create_string_buffer(_CTX_SIZE)
        if not self._lib.init(ctx):
            raise RuntimeError("SHA256_Init failed")
        return _Sha256(self._lib, ctx)

    def resume(self, state: bytes, length: int) -> _Sha256 | None:
        if not state.startswith(_TAG):
            return None
        context = state[len(_TAG) :]
        if not _covers(context, length):
            return None
        return _Sha256(self._lib, ctypes.create_string_buffer(context, _CTX_SIZE))


def resumable_hashing() -> ResumableHashing:
    """The resumable SHA-256 of libcrypto, else in-process hashing (logged: chunks re-read)."""
    hashing = OpenSslSha256.load()
    if hashing is not None:
        return hashing
    logger.warning(
        "libcrypto's SHA256_* functions are not usable: a chunked upload continued by "
        "another API process re-reads its bytes (moorage_upload_rehash_bytes_total)"
    )
    return LocalHashing()
