"""Reading an execution's pending tasks a page at a time (replication and preheat).

An execution's workflow gets the first page with its plan and asks for the next with a
:class:`PageRequest` (the tasks above the last id it started). Pages come from the
database in id order, so every pending task is handed out exactly once per execution
whatever the page size; a task settled meanwhile is not handed out.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypeVar

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class PageRequest:
    """The next page of an execution's pending tasks: ids above ``after``, at most ``limit``."""

    execution_id: str
    after: int
    limit: int


@dataclass(frozen=True, slots=True)
class TaskIds:
    """Pending task ids in id order, and whether more follow the last one."""

    tasks: list[int]
    more: bool


def first_page(pending: Sequence[T], paged: bool, size: int) -> tuple[list[T], bool]:
    """A plan's tasks: the first ``size`` of ``pending`` when ``paged``, and whether more follow.

    Unpaged (runs recorded before paging), every pending task and ``False``.
    """
    if paged and len(pending) > size:
        return list(pending[:size]), True
    return list(pending), False


def split_page(found: Sequence[T], limit: int) -> tuple[list[T], bool]:
    """A page read with ``limit + 1`` rows: its first ``limit``, and whether more follow."""
    return list(found[:limit]), len(found) > limit
