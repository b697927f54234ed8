"""Range and Content-Range parsing of the data plane."""

from __future__ import annotations

import pytest

from api.http import content_range, parse_range
from core.errors import RegistryError


def test_parse_range() -> None:
    assert parse_range(None, 10) is None
    assert parse_range("bytes=0-4", 10) == (0, 4)
    assert parse_range("bytes=5-", 10) == (5, 9)
    assert parse_range("bytes=-3", 10) == (7, 9)
    assert parse_range("bytes=8-100", 10) == (8, 9)
    assert parse_range("items=0-1", 10) is None
    for bad in ("bytes=10-12", "bytes=5-2", "bytes=x-y", "bytes=5"):
        with pytest.raises(RegistryError) as caught:
            parse_range(bad, 10)
        assert caught.value.status == 416


def test_content_range() -> None:
    assert content_range(None) is None
    assert content_range("0-99") == (0, 99)
    assert content_range("bytes 100-199/*") == (100, 199)
    for bad in ("abc", "5-2", "-5"):
        with pytest.raises(RegistryError):
            content_range(bad)
