"""Keyset windows over lists a store returns whole.

A keyset page is "the first ``count`` items whose key comes after ``after``" in the
list's fixed order. Stores that page in SQL (projects, users, repositories, tags, the
audit log) answer that directly. Small lists the stores return whole (a project's
members and robots, a user's tokens, trusted issuers, run histories) are cut here with
the same rule, so every list of the management API pages alike: an item added or
removed between two pages never shifts the others, and no item is served twice.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime
from typing import TypeVar

_ItemT = TypeVar("_ItemT")
#: The keys lists are ordered by: ids, names, and (created_at, id) for run histories.
_KeyT = TypeVar("_KeyT", int, str, tuple[datetime, str])


def window(
    items: Iterable[_ItemT],
    key: Callable[[_ItemT], _KeyT],
    after: _KeyT | None,
    count: int | None,
    *,
    descending: bool = False,
) -> list[_ItemT]:
    """The first ``count`` items (all when ``None``) whose key comes after ``after``.

    Items are ordered by ``key`` (newest first when ``descending``); "after" follows that
    order, so with ``descending`` it means a smaller key.
    """
    ordered = sorted(items, key=key, reverse=descending)
    if after is not None:
        cursor = after
        if descending:
            ordered = [item for item in ordered if key(item) < cursor]
        else:
            ordered = [item for item in ordered if cursor < key(item)]
    return ordered if count is None else ordered[:count]
