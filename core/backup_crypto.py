"""Encryption of backup objects: AES-256-GCM over a stream, in authenticated frames.

An encrypted object is ``MBK1`` + an 8-byte random prefix, then frames: a 4-byte
big-endian length and the ciphertext of up to :data:`FRAME` plaintext bytes. Frame ``n``
uses the nonce ``prefix || n`` and, as associated data, the object's name, ``n`` and
whether it is the last frame; so a frame moved to another object or position, a dropped
frame or a truncated object does not open. Without a key (:class:`PlainCodec`) objects
are stored as they are.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import struct
from collections.abc import Iterable, Iterator
from typing import Final, Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

MAGIC: Final = b"MBK1"
FRAME: Final = 1024 * 1024
_PREFIX = 8
_TAG = 16
_KEY_BYTES = 32
_LENGTH = struct.Struct(">I")


class BackupCorruptError(ValueError):
    """A backup object that does not open or does not match what the backup recorded."""


class Codec(Protocol):
    """Turns an object's plaintext into what is stored, and back."""

    @property
    def key_id(self) -> str:
        """``plain``, or an id of the key (never the key)."""

    def seal(self, name: str, chunks: Iterable[bytes]) -> Iterator[bytes]:
        """The stored form of ``chunks`` for the object ``name``."""

    def open(self, name: str, chunks: Iterable[bytes]) -> Iterator[bytes]:
        """The plaintext of a stored object; raises :class:`BackupCorruptError`."""


class PlainCodec:
    """No encryption: objects are stored as their plaintext."""

    key_id = "plain"

    def seal(self, name: str, chunks: Iterable[bytes]) -> Iterator[bytes]:
        del name
        yield from chunks

    def open(self, name: str, chunks: Iterable[bytes]) -> Iterator[bytes]:
        del name
        yield from chunks


def _aad(name: str, index: int, last: bool) -> bytes:
    return name.encode() + b"\0" + struct.pack(">Q?", index, last)


class AesGcmCodec:
    """AES-256-GCM in frames (see the module docstring)."""

    def __init__(self, key: bytes) -> None:
        if len(key) != _KEY_BYTES:
            raise ValueError(f"a backup key is {_KEY_BYTES} bytes (base64 of them in settings)")
        self._aead = AESGCM(key)
        self.key_id = "k" + hashlib.sha256(b"moorage-backup-key" + key).hexdigest()[:16]

    @classmethod
    def from_text(cls, text: str) -> AesGcmCodec:
        """The codec of a base64 key as configured (``backup.encryption_key``)."""
        try:
            return cls(base64.b64decode(text.strip(), validate=True))
        except (binascii.Error, ValueError) as exc:
            raise ValueError(f"backup.encryption_key: {exc}") from None

    def seal(self, name: str, chunks: Iterable[bytes]) -> Iterator[bytes]:
        prefix = os.urandom(_PREFIX)
        yield MAGIC + prefix
        buffer, index = b"", 0
        for chunk in chunks:
            buffer += chunk
            while len(buffer) > FRAME:
                yield self._frame(prefix, name, index, buffer[:FRAME], last=False)
                buffer, index = buffer[FRAME:], index + 1
        yield self._frame(prefix, name, index, buffer, last=True)

    def _frame(self, prefix: bytes, name: str, index: int, data: bytes, *, last: bool) -> bytes:
        nonce = prefix + struct.pack(">I", index)
        sealed = self._aead.encrypt(nonce, data, _aad(name, index, last))
        return _LENGTH.pack(len(sealed)) + sealed

    def open(self, name: str, chunks: Iterable[bytes]) -> Iterator[bytes]:
        reader = _Reader(iter(chunks))
        header = reader.take(len(MAGIC) + _PREFIX)
        if header[: len(MAGIC)] != MAGIC:
            raise BackupCorruptError(f"{name}: not an encrypted backup object")
        prefix, index = header[len(MAGIC) :], 0
        while True:
            length = _LENGTH.unpack(reader.take(_LENGTH.size))[0]
            if length > FRAME + _TAG:
                raise BackupCorruptError(f"{name}: frame {index} is too long")
            sealed = reader.take(length)
            last = reader.at_end()
            nonce = prefix + struct.pack(">I", index)
            try:
                yield self._aead.decrypt(nonce, sealed, _aad(name, index, last))
            except InvalidTag:
                raise BackupCorruptError(
                    f"{name}: frame {index} does not open (corrupted, or another key)"
                ) from None
            if last:
                return
            index += 1


class _Reader:
    """Exact-size reads over an iterator of chunks."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = chunks
        self._buffer = b""

    def _fill(self, size: int) -> None:
        while len(self._buffer) < size:
            chunk = next(self._chunks, None)
            if chunk is None:
                return
            self._buffer += chunk

    def take(self, size: int) -> bytes:
        self._fill(size)
        if len(self._buffer) < size:
            raise BackupCorruptError("the object is truncated")
        data, self._buffer = self._buffer[:size], self._buffer[size:]
        return data

    def at_end(self) -> bool:
        self._fill(1)
        return not self._buffer


def codec_of(key_text: str | None) -> Codec:
    """The codec for a configured key (``None``: :class:`PlainCodec`)."""
    return PlainCodec() if key_text is None else AesGcmCodec.from_text(key_text)
