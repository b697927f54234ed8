"""Group commit: concurrent write transactions of one process share one commit.

On SQLite every write transaction of every process queues on one lock, so at high
concurrency the cost of a small write is mostly the queue: taking the process and file
locks, ``BEGIN IMMEDIATE``, ``COMMIT``, and waking the next thread. Here callers hand in
their work; the first caller to get the combiner lock drains the queue and runs every
queued piece of work in one transaction, each inside its own savepoint, then commits once
and wakes the callers. The others find their work done when they get the lock (or wait
for it while another caller runs it).

A batch first runs without savepoints; if some work raises, the transaction is rolled
back and the batch runs again with each work in its own savepoint. So a work may run
more than once (it must have no effects outside its session), and:

Guarantees, per piece of work: the writes of exactly one run are kept, serially with all
other writers; if it raises, nothing of it is stored and the exception goes to its
caller alone; its result is returned only after the shared transaction committed. If the
commit itself fails, every caller of the batch whose work had succeeded gets that error
and nothing of the batch is stored.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from sqlalchemy import Connection

_T = TypeVar("_T")

#: Most pieces of work per transaction (bounds how long one commit keeps others waiting).
BATCH_MAX = 64


@dataclass
class _Work(Generic[_T]):
    run: Callable[[Connection], _T]
    done: threading.Event = field(default_factory=threading.Event)
    result: Any = None
    error: BaseException | None = None


class GroupCommit:
    """Runs write work of this process in shared transactions (see the module text)."""

    def __init__(self, open_writer: Callable[[], Any]) -> None:
        #: A context manager factory yielding a writer connection under the write lock.
        self._open_writer = open_writer
        self._queue: deque[_Work[Any]] = deque()
        self._combiner = threading.Lock()

    def run(self, work: Callable[[Connection], _T]) -> _T:
        """Run ``work`` on a writer connection inside a shared transaction; see module."""
        item: _Work[_T] = _Work(work)
        self._queue.append(item)
        while not item.done.is_set():
            with self._combiner:
                if not item.done.is_set():
                    self._combine()
        if item.error is not None:
            raise item.error
        result: _T = item.result
        return result

    def _combine(self) -> None:
        batch: list[_Work[Any]] = []
        while self._queue and len(batch) < BATCH_MAX:
            batch.append(self._queue.popleft())
        if not batch:
            return
        try:
            with self._open_writer() as connection:
                # NOTE: first without savepoints (two statements less per caller); only a
                # batch in which some work failed runs again, each work in a savepoint.
                if not _attempt(connection, batch, savepoints=False):
                    _attempt(connection, batch, savepoints=True)
        except BaseException as exc:  # noqa: BLE001 - the whole batch failed to commit
            for item in batch:
                if item.error is None:
                    item.error = exc
                    item.result = None
        finally:
            for item in batch:
                item.done.set()


def _attempt(connection: Connection, batch: list[_Work[Any]], *, savepoints: bool) -> bool:
    """Run the batch in one transaction and commit it; False if it was rolled back.

    Without savepoints the first failure rolls everything back (False), unless the batch
    is that one work, whose error is then final. With savepoints a failure undoes only
    its own work and the rest commits.
    """
    transaction = connection.begin()
    try:
        for item in batch:
            savepoint = connection.begin_nested() if savepoints else None
            try:
                item.result = item.run(connection)
            except BaseException as exc:  # noqa: BLE001 - handed to its caller
                item.error = exc
                if savepoint is None:
                    transaction.rollback()
                    if len(batch) == 1:
                        return True
                    item.error = None
                    return False
                savepoint.rollback()
            else:
                if savepoint is not None:
                    savepoint.commit()
        transaction.commit()
        return True
    finally:
        if transaction.is_active:
            transaction.rollback()
