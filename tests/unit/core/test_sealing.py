"""Sealed secrets open only under their key and context; rotation keeps old values open."""

from __future__ import annotations

import pytest

from core.sealing import SealError, SecretBox

OLD = b"o" * 32
NEW = b"n" * 32


def test_round_trip_and_context_binding() -> None:
    box = SecretBox([OLD])
    sealed = box.seal(b"s3cret", "webhook:1:secret")
    assert b"s3cret" not in sealed.encode()
    assert box.open(sealed, "webhook:1:secret") == b"s3cret"
    with pytest.raises(SealError):
        box.open(sealed, "webhook:2:secret")


def test_rotation_opens_old_values_and_reports_reseal() -> None:
    sealed = SecretBox([OLD]).seal(b"v", "c")
    rotated = SecretBox([NEW, OLD])
    assert rotated.open(sealed, "c") == b"v"
    assert rotated.needs_reseal(sealed)
    assert not rotated.needs_reseal(rotated.seal(b"v", "c"))
    with pytest.raises(SealError, match="not configured"):
        SecretBox([NEW]).open(sealed, "c")


def test_tampering_and_short_keys_are_refused() -> None:
    box = SecretBox([OLD])
    sealed = box.seal(b"v", "c")
    tampered = sealed[:-2] + ("A" if sealed[-2] != "A" else "B") + sealed[-1]
    with pytest.raises(SealError):
        box.open(tampered, "c")
    with pytest.raises(ValueError):
        SecretBox([b"short"])
