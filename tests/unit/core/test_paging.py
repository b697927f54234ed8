"""core.paging.window: keyset windows over whole lists."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from core.paging import window


def _same(value: int) -> int:
    return value


def test_window_starts_after_the_key_in_order() -> None:
    assert window([5, 1, 3, 2, 4], _same, None, 2) == [1, 2]
    assert window([5, 1, 3, 2, 4], _same, 2, 2) == [3, 4]
    assert window([5, 1, 3, 2, 4], _same, 4, 2) == [5]
    assert window([5, 1, 3, 2, 4], _same, 5, 2) == []


def test_a_removed_cursor_item_shifts_nothing() -> None:
    assert window([1, 2, 4, 5], _same, 3, 10) == [4, 5]


def test_descending_windows_go_to_smaller_keys() -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    runs = [(now + timedelta(seconds=s), f"r{s}") for s in (1, 3, 2)]
    runs.append((now + timedelta(seconds=3), "r0"))

    def key(run: tuple[datetime, str]) -> tuple[datetime, str]:
        return run

    first = window(runs, key, None, 2, descending=True)
    assert [r[1] for r in first] == ["r3", "r0"]
    rest = window(runs, key, first[-1], 2, descending=True)
    assert [r[1] for r in rest] == ["r2", "r1"]


def test_no_count_means_everything_after() -> None:
    assert window(["b", "a", "c"], str, "a", None) == ["b", "c"]
