"""Reading an execution's pending tasks a page at a time (replication and preheat).

An execution's workflow gets the first page with its plan and asks for the next with a
:class:`PageRequest` (the tasks above the last id it started). Pages come from the
database in id order, so every pending task is handed out exactly once per execution
whatever the page size; a task settled meanwhile is not handed out.
"""

from __future__ import annotations

from dataclasses import dataclass


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
