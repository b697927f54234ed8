"""Local passwords hashed by the scrypt code keep working and become argon2id on login."""

from __future__ import annotations

import secrets
from typing import Any

import pytest

from api.context import Registry
from core.passwords import needs_rehash, verify_password
from tests.api.oci import OCIClient

#: A hash written by the scrypt code that stored every password before argon2id
#: (``core.passwords`` at the time: N=2**14, r=8, p=1), of :data:`SCRYPT_PASSWORD`.
SCRYPT_PASSWORD = "legacy-scrypt-password-1"
SCRYPT_HASH = (
    "scrypt$16384$8$1$8EmChZi6yykrn+2AjMFPKA==$asVVGuYGQnlKnkxLubt4iPhl5sMUDU65mKzEEOjBRuY="
)


def _registry(oci: OCIClient) -> Registry:
    registry: Registry = oci.client.app.state["registry"]  # type: ignore[attr-defined]
    return registry


def _user_with_scrypt_hash(oci: OCIClient) -> str:
    """A local account as a database of the scrypt era holds it."""
    username = f"legacy-{secrets.token_hex(4)}"
    with _registry(oci).metadata.write() as session:
        session.users.upsert(username, SCRYPT_HASH, is_admin=False)
        session.commit()
    return username


def _stored_hash(oci: OCIClient, username: str) -> str:
    with _registry(oci).metadata.read() as session:
        user = session.users.get(username)
    assert user is not None
    return user.password_hash


def _token_request(oci: OCIClient, username: str, password: str) -> Any:
    return oci.client.get("/auth/token", params={"service": "moorage"}, auth=(username, password))


def _api_request(oci: OCIClient, username: str, password: str) -> Any:
    return oci.client.get("/api/v1/projects", auth=(username, password))


@pytest.mark.parametrize("login", [_token_request, _api_request], ids=["auth-token", "api-v1"])
def test_a_scrypt_hash_works_and_is_upgraded_to_argon2id_on_login(
    oci: OCIClient, login: Any
) -> None:
    username = _user_with_scrypt_hash(oci)
    assert login(oci, username, "not-the-password").status_code == 401
    assert _stored_hash(oci, username) == SCRYPT_HASH  # a failed login changes nothing

    assert login(oci, username, SCRYPT_PASSWORD).status_code == 200

    upgraded = _stored_hash(oci, username)
    assert upgraded.startswith("$argon2id$v=19$")
    assert not needs_rehash(upgraded)
    assert verify_password(SCRYPT_PASSWORD, upgraded)
    assert login(oci, username, SCRYPT_PASSWORD).status_code == 200
    assert _stored_hash(oci, username) == upgraded  # a current hash is not rewritten
    assert login(oci, username, "not-the-password").status_code == 401


def test_the_rehash_never_overwrites_a_password_changed_meanwhile(oci: OCIClient) -> None:
    username = _user_with_scrypt_hash(oci)
    with _registry(oci).metadata.write() as session:
        session.users.upsert(username, "changed-hash", is_admin=False)
        assert not session.users.replace_password_hash(username, SCRYPT_HASH, "rehashed")
        assert session.users.replace_password_hash(username, "changed-hash", "rehashed")
        session.commit()
    assert _stored_hash(oci, username) == "rehashed"
