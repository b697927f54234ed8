"""Registry tokens: issue, verify, rotation and rejection of foreign tokens."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import jwt
import pytest

from core.access import Scope
from core.passwords import hash_password, verify_password
from core.tokens import KEY_ACTIVATION_SECONDS, InvalidTokenError, SigningKey, TokenService

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
    assert stored.startswith("$argon2id$")
    assert verify_password("s3cret", stored)
    assert not verify_password("wrong", stored)
    assert not verify_password("s3cret", "garbage")


def _aged(key: SigningKey, created_at: datetime) -> SigningKey:
    return SigningKey(key.kid, key.private_key, created_at)


def test_a_new_key_signs_only_after_every_process_could_load_it() -> None:
    """Publish before use: a process that loaded the keys before a rotation accepts
    every token another process issues after it."""
    now = datetime.now(UTC)
    added = now - timedelta(seconds=KEY_ACTIVATION_SECONDS - 1)
    old = _aged(SigningKey.generate(), added - timedelta(days=30))
    new = _aged(SigningKey.generate(), added)
    stale = TokenService([old], issuer="moorage", audience="moorage", ttl=300)
    installation = [old, new]
    fresh = TokenService(
        installation, issuer="moorage", audience="moorage", ttl=300, loader=lambda: installation
    )
    soon = fresh.issue("a", [SCOPE], False, now)
    assert jwt.get_unverified_header(soon.token)["kid"] == old.kid
    assert stale.verify(soon.token).subject == "a"
    later = added + timedelta(seconds=KEY_ACTIVATION_SECONDS)
    assert fresh.signing_key(later) == new
    assert {key["kid"] for key in fresh.jwks()["keys"]} == {old.kid, new.kid}


def test_the_first_key_signs_at_once_and_a_stale_process_reloads_for_an_unknown_key() -> None:
    now = datetime.now(UTC)
    first = _aged(SigningKey.generate(), now)
    assert _service(first).signing_key(now) == first  # nothing older: the only key signs
    keys = [first]
    verifier = TokenService(
        [first], issuer="moorage", audience="moorage", ttl=300, loader=lambda: list(keys)
    )
    second = _aged(SigningKey.generate(), now - timedelta(seconds=KEY_ACTIVATION_SECONDS))
    keys.append(second)
    token = _service(first, second).issue("b", [], False, now).token
    assert jwt.get_unverified_header(token)["kid"] == second.kid
    time.sleep(1.05)  # the unknown-key reload is rate-limited to one a second
    assert verifier.verify(token).subject == "b"


def test_recent_verifications_skip_only_repeated_successes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from core import passwords

    calls: list[str] = []
    real = passwords.verify_password

    def counted(secret: str, stored: str) -> bool:
        calls.append(secret)
        return real(secret, stored)

    monkeypatch.setattr(passwords, "verify_password", counted)
    recent = passwords.RecentVerifications(ttl_seconds=60)
    stored = hash_password("right")
    assert recent.verify("right", stored)
    assert recent.verify("right", stored)
    assert calls == ["right"]  # the second success came from memory
    assert not recent.verify("wrong", stored)
    assert not recent.verify("wrong", stored)
    assert calls == ["right", "wrong", "wrong"]  # every wrong guess pays the slow hash
    changed = hash_password("right")  # same password, new salt: a reset
    assert recent.verify("right", changed)
    assert calls[-1] == "right"  # a new stored hash never matches an old entry
    expired = passwords.RecentVerifications(ttl_seconds=0)
    assert expired.verify("right", stored)
    assert expired.verify("right", stored)
    assert calls[-2:] == ["right", "right"]
    other = hash_password("other")  # the password was changed
    assert not recent.verify("right", other)
    assert calls[-1] == "right"
    bounded = passwords.RecentVerifications(ttl_seconds=60, max_entries=2)
    hashes = [hash_password(f"pw{index}") for index in range(3)]
    for index, each in enumerate(hashes):
        assert bounded.verify(f"pw{index}", each)
    del calls[:]
    assert bounded.verify("pw2", hashes[2])  # the newest is remembered
    assert bounded.verify("pw0", hashes[0])  # the oldest made room for it (bounded memory)
    assert calls == ["pw0"]


def test_a_token_may_live_longer_than_the_service_lifetime_when_asked() -> None:
    """A token handed to a long job (preheat) outlives the usual lifetime, and only it."""
    now = datetime.now(UTC)
    service = _service(SigningKey.generate())
    long = service.issue("job", [SCOPE], False, now - timedelta(hours=1), ttl=7200)
    assert long.expires_in == 7200
    assert service.verify(long.token).access == [SCOPE]  # issued an hour ago, still valid
    usual = service.issue("client", [SCOPE], False, now - timedelta(hours=1))
    assert usual.expires_in == 300
    with pytest.raises(InvalidTokenError):
        service.verify(usual.token)
    with pytest.raises(ValueError, match="at least one second"):
        service.issue("job", [SCOPE], False, now, ttl=0)
