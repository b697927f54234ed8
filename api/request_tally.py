"""What the API's requests added to its metrics since they were last published.

Recording a request straight into prometheus-client's label children costs six value
updates (in flight up and down, the counter, the histogram's sum and bucket, the bytes),
each behind a lock and, with several server workers, written to a memory-mapped file:
measured, about a tenth of a manifest GET's server CPU. A :class:`RequestTally` is a few
dictionary updates under one lock; :class:`api.metrics.ApiMetrics` takes it and adds it to
the families every :data:`api.metrics.PUBLISH_SECONDS`, before it renders its own
exposition, and when the app shuts down.
"""

from __future__ import annotations

import threading
from bisect import bisect_left
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Sequence

#: A request's labels: operation (route template), method, status.
Key = tuple[str, str, int]


@dataclass(slots=True)
class Answered:
    """Requests of one key answered since the last take: count, seconds, per bucket."""

    count: int
    seconds: float
    #: Requests per histogram bucket (upper bounds as given, then ``+Inf``), not cumulative.
    buckets: list[int]


@dataclass(slots=True)
class Taken:
    """What a take found: the increments since the last one and the gauges' values now."""

    answered: dict[Key, Answered] = field(default_factory=dict)
    received: dict[str, int] = field(default_factory=dict)
    sent: dict[str, int] = field(default_factory=dict)
    #: Requests in flight by operation, every operation seen so far (absolute values).
    inflight: dict[str, int] = field(default_factory=dict)
    uploads: int = 0


class RequestTally:
    """Counts requests between publications; safe to use from any thread."""

    def __init__(self, bounds: Sequence[float]) -> None:
        """Count durations into buckets with these upper bounds (``+Inf`` comes on top)."""
        self._bounds = tuple(bounds)
        self._lock = threading.Lock()
        self._taken = Taken()
        self._inflight: dict[str, int] = {}
        self._uploads = 0
        self._changed = False

    def started(self, operation: str, *, upload: bool) -> None:
        """A request of ``operation`` arrived (``upload``: a blob upload request)."""
        with self._lock:
            self._inflight[operation] = self._inflight.get(operation, 0) + 1
            if upload:
                self._uploads += 1
            self._changed = True

    def ended(
        self,
        operation: str,
        method: str,
        status: int,
        seconds: float,
        *,
        upload: bool,
        received: int,
        sent: int,
    ) -> None:
        """A request that :meth:`started` was answered."""
        with self._lock:
            self._inflight[operation] = self._inflight.get(operation, 0) - 1
            if upload:
                self._uploads -= 1
            self._answer((operation, method, status), seconds)
            taken = self._taken
            if received:
                taken.received[operation] = taken.received.get(operation, 0) + received
            if sent:
                taken.sent[operation] = taken.sent.get(operation, 0) + sent

    def answered(self, operation: str, method: str, status: int, seconds: float) -> None:
        """A request (not counted in flight) was answered."""
        with self._lock:
            self._answer((operation, method, status), seconds)

    def _answer(self, key: Key, seconds: float) -> None:
        """Count one answer (the caller holds the lock)."""
        answered = self._taken.answered.get(key)
        if answered is None:
            answered = Answered(0, 0.0, [0] * (len(self._bounds) + 1))
            self._taken.answered[key] = answered
        answered.count += 1
        answered.seconds += seconds
        answered.buckets[bisect_left(self._bounds, seconds)] += 1
        self._changed = True

    def take(self) -> Taken | None:
        """What changed since the last take (``None``: nothing), and start counting anew."""
        with self._lock:
            if not self._changed:
                return None
            taken, self._taken = self._taken, Taken()
            taken.inflight = dict(self._inflight)
            taken.uploads = self._uploads
            self._changed = False
        return taken
