"""Ed25519ph verification against RFC 8032's test vector and tampered inputs."""

from __future__ import annotations

import pytest

from core.signatures import load_key
from core.signatures_ed25519ph import verify

# RFC 8032, section 7.3 ("TEST abc").
PUBLIC = bytes.fromhex("ec172b93ad5e563bf4932c70e1245034c35467ef2efd4d64ebf819683467e2bf")
SIGNATURE = bytes.fromhex(
    "98a70222f0b8121aa9d30f813d683f809e462b469c7ff87639499bb94e6dae41"
    "31f85042463c2a355a2003d062adf5aaa10b8c61e636062aaad11c2a26083406"
)


def test_the_rfc_vector_verifies() -> None:
    assert verify(PUBLIC, SIGNATURE, b"abc")


@pytest.mark.parametrize(
    ("public", "signature", "message"),
    [
        (PUBLIC, SIGNATURE, b"abd"),
        (PUBLIC, SIGNATURE[:63] + bytes([SIGNATURE[63] ^ 1]), b"abc"),
        (PUBLIC, bytes([SIGNATURE[0] ^ 1]) + SIGNATURE[1:], b"abc"),
        (bytes([PUBLIC[0] ^ 1]) + PUBLIC[1:], SIGNATURE, b"abc"),
        (PUBLIC, SIGNATURE[:32] + (2**253).to_bytes(32, "little"), b"abc"),  # S >= L
        (PUBLIC[:31], SIGNATURE, b"abc"),
    ],
)
def test_anything_else_does_not(public: bytes, signature: bytes, message: bytes) -> None:
    assert not verify(public, signature, message)


def test_a_policy_ed25519_key_accepts_the_prehashed_form() -> None:
    pem = (
        "-----BEGIN PUBLIC KEY-----\n"
        "MCowBQYDK2VwAyEA7Bcrk61eVjv0kyxw4SRQNMNUZ+8u/U1k6/gZaDRn4r8=\n"
        "-----END PUBLIC KEY-----\n"
    )
    key = load_key("rfc", pem)
    assert key.verifies(SIGNATURE, b"abc")
    assert not key.verifies(SIGNATURE, b"abd")
