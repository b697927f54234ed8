"""Last pull time of manifests, for retention by pull time.

A pull is a ``GET`` of a manifest on ``/v2`` (by tag or digest); for an index, only
the index itself counts. Recording is bookkeeping, never part of the pull: the write
runs after the response is computed, in its own short write transaction, and a write
that fails or finds the database busy is logged and dropped (a later pull retries).

Cost bound: a pull writes only when the stored pull time is older than the
granularity (or unset), and the conditional ``UPDATE`` repeats that test under the
row's lock, so a hot manifest changes its row at most once per granularity however
many processes serve it. Within a process, a claim per manifest keeps concurrent pulls
of the same stale manifest from queueing several write transactions.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import datetime, timedelta
from functools import partial
from typing import Final, Protocol

from core.ports import Clock

logger = logging.getLogger(__name__)

#: Manifests whose claims a process remembers before it forgets them all at once.
MAX_CLAIMS: Final = 4096


class WriteContentionError(Exception):
    """The database could not take a short write promptly (locks held by others)."""


class PullTimeStore(Protocol):
    def record_pull(self, manifest_id: int, now: datetime, stale_before: datetime) -> bool:
        """Set the manifest's pull time to ``now`` if unset or not after ``stale_before``.

        Runs one short write transaction of its own that waits only briefly for locks.

        Returns:
            Whether the row changed (``False``: fresh already, or the manifest is gone).

        Raises:
            WriteContentionError: The write could not start or finish within its short wait.
        """


def pull_is_due(pulled_at: datetime | None, now: datetime, granularity: timedelta) -> bool:
    """Whether a pull at ``now`` must be written, given the stored pull time."""
    return pulled_at is None or now - pulled_at >= granularity


class PullRecorder:
    """Decides which pulls to write and writes them best effort."""

    def __init__(self, store: PullTimeStore, granularity_seconds: int, clock: Clock) -> None:
        self._store = store
        self._granularity = timedelta(seconds=granularity_seconds)
        self._clock = clock
        self._lock = threading.Lock()
        self._claims: dict[int, datetime] = {}

    def deferred(self, manifest_id: int, pulled_at: datetime | None) -> Callable[[], None] | None:
        """The write to run once the pull's response is computed, or ``None`` if not due.

        Cheap and non-blocking (no I/O): it compares times and claims the manifest, so a
        concurrent pull of the same manifest in this process gets ``None``.
        """
        now = self._clock.now()
        if not pull_is_due(pulled_at, now, self._granularity):
            return None
        with self._lock:
            claimed = self._claims.get(manifest_id)
            if claimed is not None and not pull_is_due(claimed, now, self._granularity):
                return None
            if len(self._claims) >= MAX_CLAIMS:
                self._claims.clear()
            self._claims[manifest_id] = now
        return partial(self._write, manifest_id, now)

    def _write(self, manifest_id: int, now: datetime) -> None:
        try:
            self._store.record_pull(manifest_id, now, now - self._granularity)
        except WriteContentionError as error:
            logger.info("pull time of manifest %d not recorded: %s", manifest_id, error)
            self._release(manifest_id, now)
        except Exception:  # bookkeeping after the response: logged, never raised
            logger.warning("pull time of manifest %d not recorded", manifest_id, exc_info=True)
            self._release(manifest_id, now)

    def _release(self, manifest_id: int, now: datetime) -> None:
        with self._lock:
            if self._claims.get(manifest_id) == now:
                del self._claims[manifest_id]
