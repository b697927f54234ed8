"""Public keys of a trust policy and raw signature checks (``cryptography`` only).

A key is what ``cosign.pub`` holds: a PEM ``PUBLIC KEY`` (PKIX SubjectPublicKeyInfo).
Nothing in a cosign signature says which algorithm made it, so the algorithm follows the
key: ECDSA with the curve's hash (P-256/SHA-256, P-384/SHA-384, P-521/SHA-512) over a DER
signature, RSA (at least 2048 bits) with PKCS#1 v1.5 or PSS over SHA-256, Ed25519 (pure, or
pre-hashed Ed25519ph as cosign's bundles use, ``core.signatures_ed25519ph``).
A key is known by its fingerprint: ``sha256:`` and the hex SHA-256 of its DER encoding,
so two policy entries holding the same key count as one signer.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Final

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa

from core import signatures_ed25519ph as ed25519ph

#: Smallest RSA key accepted.
RSA_MIN_BITS: Final = 2048
_CURVE_HASHES: Final[dict[str, type[hashes.HashAlgorithm]]] = {
    "secp256r1": hashes.SHA256,
    "secp384r1": hashes.SHA384,
    "secp521r1": hashes.SHA512,
}
_PEM_MAX: Final = 16 * 1024

PublicKey = ec.EllipticCurvePublicKey | rsa.RSAPublicKey | ed25519.Ed25519PublicKey


class UnusableKeyError(ValueError):
    """A policy key that cannot be used (not PEM, unsupported type or size)."""


@dataclass(frozen=True, slots=True)
class TrustKey:
    """One named public key of a trust policy.

    Attributes:
        name: The policy's name for it (what results and refusals mention).
        fingerprint: ``sha256:<hex of the DER SubjectPublicKeyInfo>``.
        algorithm: ``ecdsa-p256``, ``rsa-3072``, ``ed25519``...
    """

    name: str
    fingerprint: str
    algorithm: str
    key: PublicKey

    def verifies(self, signature: bytes, data: bytes) -> bool:
        """Whether ``signature`` is this key's signature over ``data``."""
        try:
            _verify(self.key, signature, data)
        except (InvalidSignature, ValueError):
            return False
        return True


def load_key(name: str, pem: str) -> TrustKey:
    """The key of a PEM ``PUBLIC KEY``; raises :class:`UnusableKeyError` with the reason."""
    if len(pem) > _PEM_MAX:
        raise UnusableKeyError(f"key {name!r} is longer than {_PEM_MAX} characters")
    try:
        key = serialization.load_pem_public_key(pem.encode("ascii"))
    except (ValueError, UnicodeEncodeError, UnsupportedAlgorithm) as exc:
        raise UnusableKeyError(f"key {name!r} is not a PEM public key") from exc
    algorithm = _algorithm(name, key)
    der = key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    assert isinstance(key, PublicKey)  # noqa: S101 - _algorithm refused the others
    return TrustKey(name, "sha256:" + hashlib.sha256(der).hexdigest(), algorithm, key)


def _algorithm(name: str, key: object) -> str:
    if isinstance(key, ec.EllipticCurvePublicKey):
        if key.curve.name not in _CURVE_HASHES:
            raise UnusableKeyError(f"key {name!r}: curve {key.curve.name} is not supported")
        return "ecdsa-p" + key.curve.name[4:7]
    if isinstance(key, rsa.RSAPublicKey):
        if key.key_size < RSA_MIN_BITS:
            raise UnusableKeyError(f"key {name!r}: RSA keys need at least {RSA_MIN_BITS} bits")
        return f"rsa-{key.key_size}"
    if isinstance(key, ed25519.Ed25519PublicKey):
        return "ed25519"
    raise UnusableKeyError(f"key {name!r}: only ECDSA, RSA and Ed25519 keys are supported")


def _verify(key: PublicKey, signature: bytes, data: bytes) -> None:
    if isinstance(key, ec.EllipticCurvePublicKey):
        key.verify(signature, data, ec.ECDSA(_CURVE_HASHES[key.curve.name]()))
    elif isinstance(key, rsa.RSAPublicKey):
        try:
            key.verify(signature, data, padding.PKCS1v15(), hashes.SHA256())
        except InvalidSignature:
            pss = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=padding.PSS.AUTO)
            key.verify(signature, data, pss, hashes.SHA256())
    else:
        try:
            key.verify(signature, data)
        except InvalidSignature:
            # NOTE: cosign's bundles sign with Ed25519 keys pre-hashed (Ed25519ph).
            raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
            if not ed25519ph.verify(raw, signature, data):
                raise


def signers_of(keys: list[TrustKey], signature: bytes, data: bytes) -> list[TrustKey]:
    """The keys under which ``signature`` verifies ``data`` (distinct by fingerprint)."""
    found: dict[str, TrustKey] = {}
    for key in keys:
        if key.fingerprint not in found and key.verifies(signature, data):
            found[key.fingerprint] = key
    return list(found.values())


def pae(payload_type: str, payload: bytes) -> bytes:
    """DSSE's pre-authentication encoding: what a DSSE signature signs."""
    kind = payload_type.encode("utf-8")
    return b"DSSEv1 %d %s %d %s" % (len(kind), kind, len(payload), payload)
