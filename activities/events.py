"""Subscriber activities of the event fan-out (``core.subscribers``)."""

from __future__ import annotations

from temporalio import activity

from activities.contracts import HANDLE_EVENT, EventInput
from activities.heartbeats import keeps_heartbeating
from core.event_batches import EventBatch
from core.subscribers import LOG_EVENTS


class EventActivities:
    """The built-in subscriber's activity; idempotent (it only logs)."""

    @activity.defn(name=LOG_EVENTS)
    @keeps_heartbeating
    def deliver_events_log(self, batch: EventBatch) -> int:
        """Log each event of the batch, in order; return how many there were."""
        for event in batch.events:
            activity.logger.info(
                "event %s %s %s %s %s",
                event.event_id,
                event.kind,
                event.repository,
                event.digest,
                event.tag,
            )
        return len(batch.events)

    @activity.defn(name=HANDLE_EVENT)
    def handle_event(self, params: EventInput) -> str:
        """Former per-event handler, kept for runs of ``ArtifactEventWorkflow`` in flight."""
        activity.logger.info(
            "event %s %s %s %s", params.event_id, params.kind, params.repository, params.digest
        )
        return params.kind
