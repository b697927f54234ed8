"""The bytes an audit event's hash covers: the sorted, compact JSON of its fields.

Events stored before the hand-written encoding must keep verifying, so the encoding must
equal ``json.dumps(..., sort_keys=True, separators=(",", ":"))`` for every value an event
can hold: any text (quotes, backslashes, control and non-ASCII characters, surrogate
pairs), a missing project, any status, aware and naive times.
"""

from __future__ import annotations

import hashlib
import json
import random
from datetime import UTC, datetime, timedelta, timezone

from core.audit import GENESIS, AuditEvent, chain_hash

_ALPHABET = 'ab/:.-_ "\\\x00\x1f\x7f\u00e9\u2028\u2603\U0001d11e'


def _reference(event: AuditEvent) -> bytes:
    return json.dumps(event.as_dict(), sort_keys=True, separators=(",", ":")).encode()


def _text(rng: random.Random) -> str:
    return "".join(rng.choice(_ALPHABET) for _ in range(rng.randint(0, 10)))


def _event(rng: random.Random) -> AuditEvent:
    offset = timezone(timedelta(minutes=rng.randint(-720, 720)))
    time = datetime(2026, 1, 1, tzinfo=offset) + timedelta(microseconds=rng.randint(0, 10**13))
    return AuditEvent(
        time=time if rng.random() < 0.9 else time.replace(tzinfo=None),
        request_id=_text(rng),
        actor=_text(rng),
        actor_kind=_text(rng),
        auth_method=_text(rng),
        action=_text(rng),
        resource=_text(rng),
        project=None if rng.random() < 0.3 else _text(rng),
        result=_text(rng),
        status=rng.randint(-1, 999),
        client=_text(rng),
        user_agent=_text(rng),
    )


def test_canonical_bytes_equal_the_sorted_compact_json_of_the_fields() -> None:
    rng = random.Random(20261204)
    for _ in range(5_000):
        event = _event(rng)
        assert event.canonical() == _reference(event)


def test_a_pull_event_hashes_as_before() -> None:
    event = AuditEvent(
        time=datetime(2026, 12, 4, 3, 52, 57, 123456, tzinfo=UTC),
        request_id="r-1",
        actor="admin",
        actor_kind="user",
        auth_method="basic",
        action="pull_manifest",
        resource="p1/app:v1",
        project="p1",
        result="success",
        status=200,
        client="127.0.0.1",
        user_agent="skopeo/1.13",
    )
    expected = hashlib.sha256(GENESIS.encode() + b"\n" + _reference(event)).hexdigest()
    assert chain_hash(GENESIS, event) == expected
