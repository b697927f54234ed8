"""argon2id hashes, the scrypt hashes written before them, and when to rehash."""

from __future__ import annotations

import pytest
from argon2 import PasswordHasher, Type

from core.passwords import RecentVerifications, hash_password, needs_rehash, verify_password

#: Written by the scrypt code (N=2**14, r=8, p=1) that stored every hash before argon2id.
SCRYPT_PASSWORD = "legacy-scrypt-password-1"
SCRYPT_HASH = (
    "scrypt$16384$8$1$8EmChZi6yykrn+2AjMFPKA==$asVVGuYGQnlKnkxLubt4iPhl5sMUDU65mKzEEOjBRuY="
)


def test_new_hashes_are_argon2id_and_current() -> None:
    stored = hash_password("s3cret")
    assert stored.startswith("$argon2id$v=19$")
    assert verify_password("s3cret", stored)
    assert not verify_password("s3cret ", stored)
    assert not needs_rehash(stored)
    assert hash_password("s3cret") != stored  # salted


def test_scrypt_hashes_still_verify_and_need_a_rehash() -> None:
    assert verify_password(SCRYPT_PASSWORD, SCRYPT_HASH)
    assert not verify_password("wrong", SCRYPT_HASH)
    assert needs_rehash(SCRYPT_HASH)


def test_argon2_hashes_with_other_parameters_verify_and_need_a_rehash() -> None:
    weaker = PasswordHasher(time_cost=1, memory_cost=8 * 1024, parallelism=1, type=Type.ID)
    argon2i = PasswordHasher(time_cost=2, memory_cost=19 * 1024, parallelism=1, type=Type.I)
    for stored in (weaker.hash("pw"), argon2i.hash("pw")):
        assert verify_password("pw", stored)
        assert needs_rehash(stored)


@pytest.mark.parametrize(
    "stored",
    ["", "garbage", "scrypt$x$8$1$AA==$AA==", "$argon2id$v=19$m=1,t=1,p=1$bad", "bcrypt$2b$"],
)
def test_malformed_hashes_match_nothing(stored: str) -> None:
    assert not verify_password("", stored)
    assert not verify_password("pw", stored)
    assert needs_rehash(stored)


def test_recent_verifications_accept_both_formats_and_never_a_wrong_secret() -> None:
    recent = RecentVerifications(ttl_seconds=60)
    current = hash_password("pw")
    for stored, secret in ((SCRYPT_HASH, SCRYPT_PASSWORD), (current, "pw")):
        assert recent.verify(secret, stored)
        assert recent.verify(secret, stored)  # from memory
        assert not recent.verify(secret + "x", stored)
