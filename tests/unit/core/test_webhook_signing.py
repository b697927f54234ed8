"""Standard Webhooks signatures, checked by an independent implementation."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from standardwebhooks import Webhook
from standardwebhooks.exceptions import WebhookVerificationError

from core.webhook_signing import new_secret, signature, signed_headers


def _headers(secrets: list[str], body: bytes, when: datetime | None = None) -> dict[str, str]:
    stamp = int((when or datetime.now(UTC)).timestamp())
    return signed_headers(secrets, "evt_42", stamp, body)


def test_the_standardwebhooks_package_verifies_our_signature() -> None:
    secret, body = new_secret(), json.dumps({"type": "artifact.pushed"}).encode()
    assert Webhook(secret).verify(body, _headers([secret], body)) == {"type": "artifact.pushed"}


def test_our_signature_equals_the_reference_implementations() -> None:
    secret, body = new_secret(), b'{"a":1}'
    when = datetime(2026, 12, 3, 8, 0, tzinfo=UTC)
    expected = Webhook(secret).sign("evt_7", when, body.decode())
    assert signature(secret, "evt_7", int(when.timestamp()), body) == expected


def test_a_changed_body_or_another_secret_does_not_verify() -> None:
    secret, body = new_secret(), b'{"a":1}'
    headers = _headers([secret], body)
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(b'{"a":2}', headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(new_secret()).verify(body, headers)


def test_an_old_timestamp_is_refused_by_receivers() -> None:
    secret, body = new_secret(), b"{}"
    headers = _headers([secret], body, datetime.now(UTC) - timedelta(minutes=10))
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(body, headers)


def test_during_rotation_both_secrets_sign_and_each_verifies() -> None:
    new, old, body = new_secret(), new_secret(), b'{"x":true}'
    headers = _headers([new, old], body)
    assert len(headers["webhook-signature"].split(" ")) == 2
    assert Webhook(new).verify(body, headers) == {"x": True}
    assert Webhook(old).verify(body, headers) == {"x": True}


def test_ids_with_dots_and_foreign_secrets_are_refused() -> None:
    with pytest.raises(ValueError, match="must not contain"):
        signature(new_secret(), "a.b", 1, b"")
    with pytest.raises(ValueError, match="whsec_"):
        signature("plain-secret", "a", 1, b"")
    with pytest.raises(ValueError, match="at least one"):
        signed_headers([], "a", 1, b"")
