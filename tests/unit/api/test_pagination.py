"""api.pagination: the page parameters and cursors, without a server."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest
from litestar.exceptions import ValidationException

from api.pagination import IDS, NAMES, NEWEST_FIRST, PageParams


def _named(exc: pytest.ExceptionInfo[ValidationException]) -> list[str]:
    extra = exc.value.extra
    assert isinstance(extra, list)
    return [entry["key"] for entry in extra]


def test_limit_defaults_and_bounds() -> None:
    assert PageParams.of(None, None, 1000).limit == 100
    assert PageParams.of(None, None, 10).limit == 10
    assert PageParams.of(1000, None, 1000).limit == 1000
    for bad in (0, -1, 1001):
        with pytest.raises(ValidationException) as exc:
            PageParams.of(bad, None, 1000)
        assert _named(exc) == ["limit"]


def test_cursors_round_trip_and_refuse_what_they_did_not_write() -> None:
    key = (datetime(2026, 12, 3, 7, 0, 1, 5, tzinfo=UTC), "gc-1")
    assert NEWEST_FIRST.load(NEWEST_FIRST.dump(key)) == key
    assert IDS.load(IDS.dump(42)) == 42
    assert NAMES.load("team/app") == "team/app"
    for cursor, text in ((IDS, "-1"), (IDS, "1e3"), (IDS, "٣"), (NEWEST_FIRST, "gc-1")):
        with pytest.raises(ValueError, match=re.escape(text)):
            cursor.load(text)


def test_a_bad_cursor_names_its_parameter() -> None:
    with pytest.raises(ValidationException) as exc:
        PageParams(10, "x", cursor_name="after").after(IDS)
    assert _named(exc) == ["after"]
    with pytest.raises(ValidationException) as exc:
        PageParams.of(10, "x" * 513, 1000)
    assert _named(exc) == ["last"]
    assert PageParams(10, None).after(IDS) is None
