"""Digests (``algorithm:hex``) and the hashers that compute them.

Only sha256 and sha512 are accepted; the hex part must be lowercase and of the
algorithm's exact length, so a digest can be used as part of a storage key safely.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Protocol

from core.errors import OCIErrorCode, RegistryError

_LENGTHS = {"sha256": 64, "sha512": 128}
_GRAMMAR = re.compile(r"^([a-z0-9]+(?:[+._-][a-z0-9]+)*):([a-zA-Z0-9=_-]+)$")
_HEX = re.compile(r"^[a-f0-9]+$")
_MAX_TEXT = 200


class Hasher(Protocol):
    def update(self, data: bytes, /) -> None: ...
    def hexdigest(self) -> str: ...
    def copy(self) -> Hasher: ...


@dataclass(frozen=True, slots=True)
class Digest:
    """A validated content digest."""

    algorithm: str
    hex: str

    def __str__(self) -> str:
        return f"{self.algorithm}:{self.hex}"

    @classmethod
    def parse(cls, text: str) -> Digest:
        """Parse ``text`` or raise ``DIGEST_INVALID``.

        A string that follows the spec's general grammar but names an algorithm we do
        not support is reported as ``DIGEST_INVALID`` too.
        """
        match = _GRAMMAR.match(text) if len(text) <= _MAX_TEXT else None
        if match is None:
            raise RegistryError(OCIErrorCode.DIGEST_INVALID, "invalid digest format")
        algorithm, hex_part = match.group(1), match.group(2)
        length = _LENGTHS.get(algorithm)
        if length is None:
            raise RegistryError(
                OCIErrorCode.DIGEST_INVALID, f"unsupported digest algorithm {algorithm!r}"
            )
        if len(hex_part) != length or not _HEX.match(hex_part):
            raise RegistryError(OCIErrorCode.DIGEST_INVALID, f"invalid {algorithm} digest")
        return cls(algorithm, hex_part)

    @classmethod
    def of(cls, data: bytes, algorithm: str = "sha256") -> Digest:
        hasher = new_hasher(algorithm)
        hasher.update(data)
        return cls(algorithm, hasher.hexdigest())

    def matches(self, hasher: Hasher) -> bool:
        return hasher.hexdigest() == self.hex


def new_hasher(algorithm: str = "sha256") -> Hasher:
    if algorithm not in _LENGTHS:
        raise RegistryError(
            OCIErrorCode.DIGEST_INVALID, f"unsupported digest algorithm {algorithm!r}"
        )
    return hashlib.new(algorithm)
