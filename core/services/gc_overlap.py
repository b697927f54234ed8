"""The blob step's deletions, run beside its decisions instead of after each one.

The blob step of GC alternates two kinds of batch: a *decision* (lock due reviews, read
what references them, turn the unreferenced ones into tombstones) and a *deletion* (lock
a batch of tombstones, delete their objects from the store, drop the tombstones). They
work on different rows: a decision takes reviews in state ``review``, a deletion takes
committed tombstones (state ``deleting``, ``SKIP LOCKED`` on PostgreSQL). Run one after
the other, a batch costs the sum of the database's and the store's time; an object
store's delete request (SeaweedFS: about a second per 1,000 keys) and the next
decision's statements can overlap instead.

:class:`OverlappedDeletions` runs the deletions on one thread of its own while the
caller decides. Guarantees: it never runs two deletions at once; every deletion is one
call of the step given, with that step's own locking and transaction, so what the
collector guarantees per batch (``GarbageCollector.finish_tombstones``) holds unchanged;
leaving the ``with`` block stops it after the deletion in progress (none is cut short),
and a deletion's exception is raised there, in the caller's thread. Tombstones left when
it stops are the caller's to finish; :func:`collect_blobs_overlapped` is the whole loop
(the GC activity's and ``bench.gc``'s).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import datetime
from functools import partial
from types import TracebackType
from typing import TYPE_CHECKING, Final, Self

from core.services.gc_report import GcReport

if TYPE_CHECKING:
    from core.services.gc import GarbageCollector

#: Seconds the thread waits for the next decision when it found no tombstone.
IDLE_SECONDS: Final = 0.5


class OverlappedDeletions:
    """Repeats a deletion step on a thread until stopped (a context manager).

    Args:
        delete_batch: One deletion: takes a batch of tombstones, returns how many.
    """

    def __init__(self, delete_batch: Callable[[], int]) -> None:
        self._delete_batch = delete_batch
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="moorage-gc-deletions", daemon=True)
        #: Tombstones the thread has taken so far.
        self.taken = 0

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def wake(self) -> None:
        """A decision committed new tombstones: look for them now.

        Raises:
            BaseException: what a deletion raised (the thread has stopped).
        """
        if self._error is not None:
            raise self._error
        self._wake.set()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._stop.set()
        self._wake.set()
        self._thread.join()
        if self._error is not None and error is None:
            raise self._error

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                taken = self._delete_batch()
                self.taken += taken
                if taken == 0:
                    self._wake.wait(IDLE_SECONDS)
                    self._wake.clear()
        except BaseException as error:  # noqa: BLE001 - handed to the caller's thread
            self._error = error


def _no_heartbeat(_reviewed: int) -> None:
    """No heartbeat."""


def collect_blobs_overlapped(
    collector: GarbageCollector,
    due: datetime,
    batch_size: int,
    *,
    max_batches: int,
    run_id: str | None = None,
    heartbeat: Callable[[int], None] = _no_heartbeat,
) -> GcReport:
    """Decide due blob reviews a batch at a time while their objects are deleted beside.

    Decisions stop at the first batch that finds nothing due (or after ``max_batches``);
    then the tombstones still standing are finished here, at most ``max_batches``
    batches of them. ``heartbeat`` gets each decision's review count (``0`` for the
    final deletions). Returns the decisions' counters (reviewed, deleted, kept; no items).
    A tombstone whose object cannot be deleted is quarantined by
    ``finish_tombstones`` and not taken again by this loop.
    """
    reviewed = deleted = kept = 0
    with OverlappedDeletions(
        partial(collector.finish_tombstones, batch_size, run_id=run_id)
    ) as deletions:
        for _ in range(max_batches):
            batch = collector.collect_blobs(due, batch_size, False, run_id=run_id)
            reviewed, deleted, kept = (
                reviewed + batch.reviewed,
                deleted + batch.deleted,
                kept + batch.kept,
            )
            deletions.wake()
            heartbeat(batch.reviewed)
            if batch.reviewed == 0:
                break
    for _ in range(max_batches):
        if collector.finish_tombstones(batch_size, run_id=run_id) == 0:
            break
        heartbeat(0)
    return GcReport(reviewed=reviewed, deleted=deleted, kept=kept)
