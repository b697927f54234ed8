"""The stored key ring of a project's promotion signatures (no I/O)."""

from __future__ import annotations

import json

from core.promotion_signing import RetiredKey, StoredKey


def test_a_body_from_before_rotation_is_version_one_with_nothing_retired() -> None:
    old = json.dumps({"sealed": "v1.k.n.c", "public_pem": "PEM-1"})
    stored = StoredKey.load(old)
    assert (stored.sealed, stored.public_pem, stored.version, stored.retired) == (
        "v1.k.n.c",
        "PEM-1",
        1,
        (),
    )


def test_rotation_keeps_the_public_halves_in_order_and_round_trips() -> None:
    first = StoredKey("s1", "PEM-1", created_at="t0")
    second = first.rotated("s2", "PEM-2", "t1")
    third = second.rotated("s3", "PEM-3", "t2")
    assert (third.sealed, third.public_pem, third.version, third.created_at) == (
        "s3",
        "PEM-3",
        3,
        "t2",
    )
    assert third.retired == (
        RetiredKey(1, "PEM-1", "t0", "t1"),
        RetiredKey(2, "PEM-2", "t1", "t2"),
    )
    assert StoredKey.load(third.dump()) == third
    assert "s1" not in third.dump()  # a retired key's private half is gone
