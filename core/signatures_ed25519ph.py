"""Ed25519ph signature verification (RFC 8032, section 5.1), which ``cryptography`` lacks.

cosign's new bundle format signs with Ed25519 keys in the pre-hashed variant: the
signature covers ``SHA-512(message)`` under the domain prefix ``dom2(1, "")``. Only
verification is needed (public data, no secret-dependent timing). Points are in extended
coordinates; the check is the cofactorless one Go's ``crypto/ed25519`` makes: the encoding
of ``[S]B - [k]A`` must equal ``R``.
"""

from __future__ import annotations

import hashlib
from typing import Final

_P: Final = 2**255 - 19
_L: Final = 2**252 + 27742317777372353535851937790883648493
_D: Final = (-121665 * pow(121666, _P - 2, _P)) % _P
_SQRT_M1: Final = pow(2, (_P - 1) // 4, _P)
_DOM2_PH: Final = b"SigEd25519 no Ed25519 collisions" + bytes([1, 0])

Point = tuple[int, int, int, int]


def _add(a: Point, b: Point) -> Point:
    x1, y1, z1, t1 = a
    x2, y2, z2, t2 = b
    aa = (y1 - x1) * (y2 - x2) % _P
    bb = (y1 + x1) * (y2 + x2) % _P
    cc = t1 * 2 * _D * t2 % _P
    dd = z1 * 2 * z2 % _P
    e, f, g, h = bb - aa, dd - cc, dd + cc, bb + aa
    return (e * f % _P, g * h % _P, f * g % _P, e * h % _P)


def _multiply(scalar: int, point: Point) -> Point:
    result: Point = (0, 1, 1, 0)
    while scalar:
        if scalar & 1:
            result = _add(result, point)
        point = _add(point, point)
        scalar >>= 1
    return result


def _decode(data: bytes) -> Point | None:
    """The point of a 32-byte encoding, ``None`` when it is not one."""
    value = int.from_bytes(data, "little")
    sign, y = value >> 255, value & ((1 << 255) - 1)
    if y >= _P:
        return None
    x2 = (y * y - 1) * pow(_D * y * y + 1, _P - 2, _P) % _P
    if x2 == 0:
        if sign:
            return None
        return (0, y, 1, 0)
    x = pow(x2, (_P + 3) // 8, _P)
    if (x * x - x2) % _P:
        x = x * _SQRT_M1 % _P
    if (x * x - x2) % _P:
        return None
    if x & 1 != sign:
        x = _P - x
    return (x, y, 1, x * y % _P)


def _encode(point: Point) -> bytes:
    x, y, z, _ = point
    inverse = pow(z, _P - 2, _P)
    x, y = x * inverse % _P, y * inverse % _P
    return (y | ((x & 1) << 255)).to_bytes(32, "little")


_BASE_Y: Final = 4 * pow(5, _P - 2, _P) % _P
_BASE: Final = _decode(_BASE_Y.to_bytes(32, "little"))


def verify(public_key: bytes, signature: bytes, message: bytes) -> bool:
    """Whether ``signature`` is an Ed25519ph signature of ``message`` by ``public_key``."""
    if len(public_key) != 32 or len(signature) != 64 or _BASE is None:  # noqa: PLR2004
        return False
    point = _decode(public_key)
    r_bytes, s = signature[:32], int.from_bytes(signature[32:], "little")
    if point is None or s >= _L or _decode(r_bytes) is None:
        return False
    digest = hashlib.sha512(message).digest()
    k = int.from_bytes(hashlib.sha512(_DOM2_PH + r_bytes + public_key + digest).digest(), "little")
    negated = ((-point[0]) % _P, point[1], point[2], (-point[3]) % _P)
    candidate = _add(_multiply(s, _BASE), _multiply(k % _L, negated))
    return _encode(candidate) == r_bytes
