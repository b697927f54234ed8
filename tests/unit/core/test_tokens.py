"""Registry tokens: issue, verify, rotation and rejection of foreign tokens."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import jwt
import pytest

from core.access import Scope
from core.passwords import hash_password, verify_password
from core.tokens import InvalidTokenError, SigningKey, TokenService

SCOPE = Scope("repository", "team/app", frozenset({"pull"}))


def _service(*keys: SigningKey, audience: str = "moorage") -> TokenService:
    return TokenService(list(keys), issuer="moorage", audience=audience, ttl=300)


def test_roundtrip_and_rotation() -> None:
    now = datetime.now(UTC)  # NOTE: at run time: the module may be imported minutes earlier
    old, new = SigningKey.generate(), SigningKey.generate()
    issued = _service(old).issue("alice", [SCOPE], admin=False, now=now)
    claims = _service(old, new).verify(issued.token)
    assert (claims.subject, claims.access, claims.admin) == ("alice", [SCOPE], False)
    assert (
        jwt.get_unverified_header(_service(old, new).issue("a", [], False, now).token)["kid"]
        == new.kid
    )
    assert {key["kid"] for key in _service(old, new).jwks()["keys"]} == {old.kid, new.kid}


def test_rejections() -> None:
    now = datetime.now(UTC)
    key = SigningKey.generate()
    service = _service(key)
    with pytest.raises(InvalidTokenError):
        service.verify(_service(SigningKey.generate()).issue("a", [], False, now).token)
    with pytest.raises(InvalidTokenError):
        service.verify(_service(key, audience="other").issue("a", [], False, now).token)
    with pytest.raises(InvalidTokenError):
        service.verify(service.issue("a", [], False, now - timedelta(hours=1)).token)
    forged = jwt.encode({"sub": "a"}, "k" * 32, algorithm="HS256", headers={"kid": key.kid})
    with pytest.raises(InvalidTokenError):
        service.verify(forged)
    with pytest.raises(InvalidTokenError):
        service.verify("not.a.token")


def test_key_pem_roundtrip() -> None:
    key = SigningKey.generate()
    assert SigningKey.from_pem(key.kid, key.to_pem()).public_jwk() == key.public_jwk()


def test_passwords() -> None:
    stored = hash_password("s3cret")
    assert stored.startswith("scrypt$")
    assert verify_password("s3cret", stored)
    assert not verify_password("wrong", stored)
    assert not verify_password("s3cret", "garbage")
