"""The subscriber registry: who receives data-plane events, and through which activity.

A subscriber is a typed contract: its ``kind`` (a short name that also names its batch
workflows), the event kinds it wants, and the name of the Temporal activity that receives
one :class:`core.event_batches.EventBatch` at a time. Webhooks, scanning, replication,
promotions and preheat each register one subscriber; the built-in ``log`` subscriber
(:data:`LOG`) keeps the path exercised when nothing else is configured.

Guarantees the dispatcher (``cli.outbox``) gives every subscriber:

- **exactly once per event id**: an outbox event is queued for a subscriber in the same
  transaction that marks it dispatched, and assigned to exactly one batch, whose workflow
  id is fixed when the batch is formed; a start repeated after a crash is a no-op;
- **batched**: up to ``event_batch_size`` events per batch; a partial batch waits at most
  ``event_batch_seconds`` after its oldest event was written;
- **ordered per repository**: a batch lists its events in outbox order, and a subscriber's
  next batch starts only after its previous batch's workflow closed.

The activity must be idempotent per event id: Temporal retries an attempt whose worker
died, so the same batch may reach the activity more than once (never a second batch with
the same event).

A subscriber may also have an :class:`Interest`: the events it could act on given what is
configured when they are dispatched (a webhook policy, a rule, scan on push). The
dispatcher queues only those for it, so a push into a project where nothing of a feature
is configured starts no workflow of that feature. The activity still checks what is
configured when it runs: the interest only spares it batches it would have dropped.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Hashable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Final, Protocol, TypeVar

from core import events
from core.event_batches import EventValue

#: Activity name of the built-in log subscriber.
LOG_EVENTS: Final = "deliver_events_log"

_KIND = re.compile(r"^[a-z][a-z0-9]{0,31}$")


@dataclass(frozen=True, slots=True)
class Subscriber:
    """One consumer of outbox events.

    Attributes:
        kind: Short lower-case name (``webhook``, ``scan``, ...); unique in a registry.
        events: The event kinds (``core.events``) it receives; others are never queued.
        activity: Name of the activity that takes one ``EventBatch`` and returns how many
            of its events it handled.
    """

    kind: str
    events: frozenset[str]
    activity: str

    def __post_init__(self) -> None:
        if not _KIND.fullmatch(self.kind):
            raise ValueError(f"subscriber kind {self.kind!r} must match {_KIND.pattern}")
        if not self.events:
            raise ValueError(f"subscriber {self.kind!r} wants no event kind")
        if not self.activity:
            raise ValueError(f"subscriber {self.kind!r} names no activity")


class Subscribers:
    """An immutable registry of subscribers, iterated in registration order."""

    def __init__(self, subscribers: Iterable[Subscriber]) -> None:
        self._by_kind: dict[str, Subscriber] = {}
        for subscriber in subscribers:
            if subscriber.kind in self._by_kind:
                raise ValueError(f"subscriber {subscriber.kind!r} registered twice")
            self._by_kind[subscriber.kind] = subscriber

    def __iter__(self) -> Iterator[Subscriber]:
        return iter(self._by_kind.values())

    def __len__(self) -> int:
        return len(self._by_kind)

    def get(self, kind: str) -> Subscriber | None:
        """The subscriber of ``kind``, if registered."""
        return self._by_kind.get(kind)

    def wanting(self, event_kind: str) -> list[Subscriber]:
        """The subscribers that receive events of ``event_kind``."""
        return [s for s in self._by_kind.values() if event_kind in s.events]


_Key = TypeVar("_Key", bound=Hashable)


class Interest(Protocol):
    """Which of a subscriber's pending events it could act on now.

    The dispatcher calls it once per poll, with the pending events of the subscriber's
    kinds in outbox order, before it queues them (within ``outbox_poll_seconds`` of their
    commit); the events whose ids it leaves out are never queued for that subscriber. It
    reads only, once or a few times per call, never per event: an exception fails the
    poll, and the events stay pending until a later poll queues them.
    """

    def __call__(self, pending: Sequence[EventValue]) -> Collection[int]: ...


def keyed_interest(
    key_of: Callable[[EventValue], _Key | None], wants: Callable[[_Key], bool]
) -> Interest:
    """The events whose key ``wants`` says yes to (asked once a key a call).

    ``key_of`` names what decides an event (a project, a project and a type); events it
    answers ``None`` for are left out.
    """

    def wanted(pending: Sequence[EventValue]) -> Collection[int]:
        answers: dict[_Key, bool] = {}
        ids: list[int] = []
        for event in pending:
            key = key_of(event)
            if key is None:
                continue
            if key not in answers:
                answers[key] = wants(key)
            if answers[key]:
                ids.append(event.event_id)
        return ids

    return wanted


def project_interest(wants: Callable[[int], bool]) -> Interest:
    """The events of the projects ``wants`` says yes to (asked once a project a call).

    Events without a project are left out.
    """
    return keyed_interest(lambda event: event.project_id, wants)


def all_or_nothing(wants: Callable[[], bool]) -> Interest:
    """Every event while ``wants`` says yes (asked once a call), none otherwise."""

    def wanted(pending: Sequence[EventValue]) -> Collection[int]:
        return [event.event_id for event in pending] if pending and wants() else []

    return wanted


#: The built-in subscriber: logs every artifact event and quota event it receives.
LOG: Final = Subscriber(
    "log",
    frozenset(events.ARTIFACT_EVENTS | {events.QUOTA_WARNING, events.QUOTA_EXCEEDED}),
    LOG_EVENTS,
)


def builtin_subscribers() -> Subscribers:
    """The subscribers every installation has (today: :data:`LOG`)."""
    return Subscribers([LOG])
