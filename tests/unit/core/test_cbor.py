"""The bounded CBOR decoder COSE envelopes go through."""

from __future__ import annotations

import pytest

from core.signatures_cbor import CborError, Tagged, loads, sig_structure


def test_the_items_cose_uses_decode() -> None:
    # 18([h'a10126', {33: [h'01']}, h'7b7d', h'00'])
    data = bytes.fromhex("d28443a10126a11821814101427b7d4100")
    assert loads(data) == Tagged(18, [bytes.fromhex("a10126"), {33: [b"\x01"]}, b"{}", b"\x00"])
    assert loads(bytes.fromhex("a10126")) == {1: -7}
    assert loads(bytes.fromhex("83f5f4f6")) == [True, False, None]
    assert loads(bytes.fromhex("6161")) == "a"


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (bytes.fromhex("9f01ff"), "indefinite"),
        (bytes.fromhex("5a0000ffff00"), "truncated"),
        (bytes.fromhex("0101"), "trailing"),
        (bytes.fromhex("f93c00"), "floats"),
        (b"\x81" * 10_000 + b"\x01", "nested too deeply"),
    ],
)
def test_bad_input_is_refused(data: bytes, reason: str) -> None:
    with pytest.raises(CborError, match=reason):
        loads(data)


def test_the_sig_structure_is_cose_sign1s() -> None:
    encoded = sig_structure(b"\xa1\x01\x26", b"{}")
    assert loads(encoded) == ["Signature1", b"\xa1\x01\x26", b"", b"{}"]
