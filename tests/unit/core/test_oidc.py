"""External JWT rules in core, with the issuer's keys given by a fake ``SigningKeys`` port."""

from __future__ import annotations

import time
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from core.oidc import ExternalTokenError, JwtVerifier, looks_like_jwt, unverified_issuer

ISSUER, AUDIENCE = "https://issuer.test", "moorage"
KEY = ec.generate_private_key(ec.SECP256R1())
SECRET = "a-shared-secret-of-thirty-two-bytes"


class OneKey:
    """The issuer publishes one key; tokens naming another ``kid`` are unknown."""

    def __init__(self) -> None:
        self.asked: list[str] = []

    def key_for(self, token: str) -> Any:
        self.asked.append(token)
        if jwt.get_unverified_header(token).get("kid") != "k1":
            raise ExternalTokenError("unknown kid")
        return KEY.public_key()


def _token(key: Any = KEY, algorithm: str = "ES256", kid: str = "k1", **claims: Any) -> str:
    now = int(time.time())
    body = {"iss": ISSUER, "aud": AUDIENCE, "sub": "ci", "iat": now, "exp": now + 60} | claims
    return jwt.encode(body, key, algorithm=algorithm, headers={"kid": kid})


def test_a_token_signed_by_the_issuers_key_verifies_with_the_key_from_the_port() -> None:
    keys = OneKey()
    token = _token()
    assert JwtVerifier(ISSUER, AUDIENCE, keys).verify(token)["sub"] == "ci"
    assert keys.asked == [token]


@pytest.mark.parametrize(
    "token",
    [
        pytest.param(_token(key=ec.generate_private_key(ec.SECP256R1())), id="other key"),
        pytest.param(_token(kid="k2"), id="unknown kid"),
        pytest.param(_token(key=SECRET, algorithm="HS256"), id="hs256"),
        pytest.param(_token(aud="another"), id="audience"),
        pytest.param(_token(iss="https://other.test"), id="issuer"),
        pytest.param(_token(exp=int(time.time()) - 120), id="expired"),
        pytest.param(_token(sub=None), id="no subject"),
    ],
)
def test_tokens_off_in_one_point_are_refused(token: str) -> None:
    with pytest.raises(ExternalTokenError):
        JwtVerifier(ISSUER, AUDIENCE, OneKey()).verify(token)


def test_jwt_shape_and_unverified_issuer() -> None:
    token = _token()
    assert looks_like_jwt(token)
    assert not looks_like_jwt("mrp_key_secret")
    assert not looks_like_jwt("a..c")
    assert unverified_issuer(token) == ISSUER
    assert unverified_issuer("not-a-jwt") is None
