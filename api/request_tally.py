"""What the API's requests added to its metrics since they were last published.

Recording a request straight into prometheus-client's label children costs six value
updates (in flight up and down, the counter, the histogram's sum and bucket, the bytes),
each behind a lock and, with several server workers, written to a memory-mapped file:
measured, about a tenth of a manifest GET's server CPU. A request's start and end are
each one record appended to a :class:`RequestTally`'s queue (a tuple; no lock, no
dictionary); :class:`api.metrics.ApiMetrics` takes the tally every
:data:`api.metrics.PUBLISH_SECONDS`, before it renders its own exposition and when the
app shuts down, and only then are the records summed, in one loop off the request.

Consistency: every record appended before a :meth:`RequestTally.take` begins is in that
take or an earlier one, and none is counted twice (``deque`` appends and pops are atomic,
a take pops exactly the records it found); the in-flight gauges a take reports are the
starts minus the ends of every record taken so far. The queue is bounded: past
:data:`PENDING` records (a publisher that stopped taking, say on a full disk), the
request that adds one sums the queue itself into what the next take returns, so memory
stays bounded and nothing is lost.
"""

from __future__ import annotations

import threading
from bisect import bisect_left
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    from collections.abc import Sequence

#: A request's labels: operation (route template), method, status.
Key = tuple[str, str, int]
#: The lengths of a start record and of an answer record (an end record is longer).
_START: Final = 2
_ANSWER: Final = 4
#: Records held before the request that adds one sums them (about 20 s of a busy worker).
PENDING: Final = 200_000


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
        #: Records not taken yet: ``(operation, upload)`` a start, ``(operation, method,
        #: status, seconds)`` an answer, ``(operation, method, status, seconds, upload,
        #: received, sent)`` the end of a started request.
        self._records: deque[tuple[Any, ...]] = deque()
        self._inflight: dict[str, int] = {}
        self._uploads = 0
        #: What a fold summed since the last take.
        self._folded: Taken | None = None

    def started(self, operation: str, *, upload: bool) -> None:
        """A request of ``operation`` arrived (``upload``: a blob upload request)."""
        records = self._records
        records.append((operation, upload))
        if len(records) > PENDING:
            self._fold()

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
        self._records.append((operation, method, status, seconds, upload, received, sent))

    def answered(self, operation: str, method: str, status: int, seconds: float) -> None:
        """A request (not counted in flight) was answered."""
        records = self._records
        records.append((operation, method, status, seconds))
        if len(records) > PENDING:
            self._fold()

    def take(self) -> Taken | None:
        """What was recorded since the last take (``None``: nothing), summed."""
        with self._lock:
            taken, self._folded = self._folded, None
            if self._records:
                taken = self._sum(taken or Taken())
            if taken is None:
                return None
            taken.inflight = dict(self._inflight)
            taken.uploads = self._uploads
        return taken

    def _fold(self) -> None:
        """Sum the queue into what the next take returns (the queue grew past its bound)."""
        with self._lock:
            self._folded = self._sum(self._folded or Taken())

    def _sum(self, taken: Taken) -> Taken:
        """Add the records queued now to ``taken`` (the caller holds the lock)."""
        records = self._records
        answered = taken.answered
        inflight = self._inflight
        pop = records.popleft
        for _ in range(len(records)):
            record = pop()
            operation = record[0]
            if len(record) == _START:
                inflight[operation] = inflight.get(operation, 0) + 1
                self._uploads += record[1]
                continue
            key = (operation, record[1], record[2])
            seconds = record[3]
            found = answered.get(key)
            if found is None:
                found = answered[key] = Answered(0, 0.0, [0] * (len(self._bounds) + 1))
            found.count += 1
            found.seconds += seconds
            found.buckets[bisect_left(self._bounds, seconds)] += 1
            if len(record) == _ANSWER:
                continue
            inflight[operation] = inflight.get(operation, 0) - 1
            self._uploads -= record[4]
            if record[5]:
                taken.received[operation] = taken.received.get(operation, 0) + record[5]
            if record[6]:
                taken.sent[operation] = taken.sent.get(operation, 0) + record[6]
        return taken
