"""A small, bounded CBOR decoder (RFC 8949) for COSE envelopes, and the encodings COSE signs.

Decodes unsigned and negative integers, byte and text strings (definite length), arrays,
maps, tags, ``false``/``true``/``null``; refuses indefinite lengths, floats and anything
nested deeper than ``max_depth`` or longer than the input. Tags come back as
:class:`Tagged`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

_SIMPLE: Final = {20: False, 21: True, 22: None}


class CborError(ValueError):
    """The input is not CBOR this decoder accepts."""


@dataclass(frozen=True, slots=True)
class Tagged:
    tag: int
    value: Any


def loads(data: bytes, max_depth: int = 16) -> Any:
    """The one CBOR item ``data`` holds (trailing bytes are refused)."""
    value, end = _item(data, 0, max_depth)
    if end != len(data):
        raise CborError("trailing bytes after the CBOR item")
    return value


def _argument(data: bytes, at: int, info: int) -> tuple[int, int]:
    if info < 24:  # noqa: PLR2004 - the argument is the additional information itself
        return info, at
    sizes = {24: 1, 25: 2, 26: 4, 27: 8}
    if info not in sizes:
        raise CborError("indefinite lengths are not supported")
    end = at + sizes[info]
    if end > len(data):
        raise CborError("truncated CBOR")
    return int.from_bytes(data[at:end], "big"), end


def _item(data: bytes, at: int, depth: int) -> tuple[Any, int]:
    if depth < 0:
        raise CborError("CBOR nested too deeply")
    if at >= len(data):
        raise CborError("truncated CBOR")
    major, info = data[at] >> 5, data[at] & 0x1F
    if major == 7:  # noqa: PLR2004
        if info not in _SIMPLE:
            raise CborError("floats and other simple values are not supported")
        return _SIMPLE[info], at + 1
    value, at = _argument(data, at + 1, info)
    if major == 0:
        return value, at
    if major == 1:
        return -1 - value, at
    if major in {2, 3}:
        end = at + value
        if end > len(data):
            raise CborError("truncated CBOR string")
        chunk = data[at:end]
        return (chunk if major == 2 else chunk.decode("utf-8")), end  # noqa: PLR2004
    return _nested(data, at, depth, major, value)


def _nested(data: bytes, at: int, depth: int, major: int, value: int) -> tuple[Any, int]:
    """An array (4), a map (5) or a tagged item (6) whose head was read."""
    if major == 4:  # noqa: PLR2004
        items = []
        for _ in range(min(value, len(data))):
            item, at = _item(data, at, depth - 1)
            items.append(item)
        return items, at
    if major == 5:  # noqa: PLR2004
        mapping: dict[Any, Any] = {}
        for _ in range(min(value, len(data))):
            key, at = _item(data, at, depth - 1)
            mapping[key], at = _item(data, at, depth - 1)
        return mapping, at
    inner, at = _item(data, at, depth - 1)
    return Tagged(value, inner), at


def _head(major: int, length: int) -> bytes:
    if length < 24:  # noqa: PLR2004
        return bytes([major << 5 | length])
    for info, size in ((24, 1), (25, 2), (26, 4), (27, 8)):
        if length < 1 << (8 * size):
            return bytes([major << 5 | info]) + length.to_bytes(size, "big")
    raise CborError("length too large")


def sig_structure(protected: bytes, payload: bytes) -> bytes:
    """COSE_Sign1's to-be-signed bytes: ``["Signature1", protected, h'', payload]``."""
    context = b"Signature1"
    return (
        _head(4, 4)
        + _head(3, len(context))
        + context
        + _head(2, len(protected))
        + protected
        + _head(2, 0)
        + _head(2, len(payload))
        + payload
    )
