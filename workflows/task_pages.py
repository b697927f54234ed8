"""An execution's pending tasks, run a page at a time by one workflow run.

Executions (replication, preheat) store their tasks in the database when they plan; their
workflow reads the pending ones in id order a page at a time (a local activity) and runs
each, a bounded number at once. A run stops starting tasks once it started
``run_tasks`` (at the end of a page) or when Temporal suggests it, waits for the tasks it
started and hands back the id of the last one: its workflow then continues as new from
there. So neither a payload nor a run's history grows with the number of tasks.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Final, Generic, Protocol, TypeVar

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from core.task_pages import PageRequest

#: Bound of reading a page of tasks.
PAGE_TIMEOUT: Final = timedelta(minutes=1)
PAGE_RETRY: Final = RetryPolicy(maximum_interval=timedelta(seconds=30))


class TaskPage(Protocol):
    """Pending task ids in id order, and whether more follow the last one."""

    @property
    def tasks(self) -> list[int]: ...

    @property
    def more(self) -> bool: ...


PageT = TypeVar("PageT", bound=TaskPage)


@dataclass(frozen=True)
class Paging(Generic[PageT]):
    """How an execution's workflow pages: its id, the reading activity, the sizes."""

    execution_id: str
    #: The local activity that answers a ``core.task_pages.PageRequest`` with a page.
    activity: str
    page_type: type[PageT]
    concurrency: int
    page_tasks: int
    run_tasks: int

    async def next_page(self, after: int) -> PageT:
        """The pending tasks after the id ``after`` (a local activity: one read)."""
        found: PageT = await workflow.execute_local_activity(
            self.activity,
            PageRequest(self.execution_id, after, self.page_tasks),
            result_type=self.page_type,
            start_to_close_timeout=PAGE_TIMEOUT,
            retry_policy=PAGE_RETRY,
        )
        return found


async def run_pages(
    page: PageT,
    paging: Paging[PageT],
    *,
    after: int,
    run_one: Callable[[PageT, int], Awaitable[None]],
) -> int | None:
    """Run ``page`` and the pages after it; ``None`` once all ran, else where to continue.

    ``after`` is the id the first page was read after (0 for the first run's plan).
    ``run_one(page, index)`` runs the task at ``index`` of ``page``, at most
    ``paging.concurrency`` at once; the next page is read while the last tasks of a page
    still run. When ``page.more`` and this run started ``paging.run_tasks`` tasks or
    Temporal suggests continuing as new, the id of the last task started is returned.
    Whatever ends the loop (its end, that return, a cancellation, an error a task
    raised), every task started has settled first; the first error a task raised is
    raised.
    """
    gate = asyncio.Semaphore(max(paging.concurrency, 1))
    running: list[asyncio.Task[None]] = []

    async def one(found: PageT, index: int) -> None:
        try:
            await run_one(found, index)
        finally:
            gate.release()

    started = 0
    try:
        while True:
            for index, task_id in enumerate(page.tasks):
                await gate.acquire()
                running = [task for task in running if not task.done()]
                running.append(asyncio.create_task(one(page, index)))
                after = task_id
                started += 1
            if not page.more:
                await _settle(running)
                return None
            if started >= paging.run_tasks or workflow.info().is_continue_as_new_suggested():
                await _settle(running)
                return after
            page = await paging.next_page(after)
    except BaseException:
        # NOTE: cancelled (stopped) or failing: every task started settles first
        for task in running:
            task.cancel()
        await asyncio.gather(*running, return_exceptions=True)
        raise


async def _settle(running: list[asyncio.Task[None]]) -> None:
    """Wait for every task in ``running``; the first error any of them raised, raised."""
    outcomes = await asyncio.gather(*running, return_exceptions=True)
    for outcome in outcomes:
        if isinstance(outcome, BaseException):
            raise outcome
