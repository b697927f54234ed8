"""Reaction to data-plane events delivered through the outbox."""

from __future__ import annotations

from temporalio import activity

from activities.contracts import HANDLE_EVENT, EventInput


class EventActivities:
    """Handles one event; idempotent (handling an event twice changes nothing twice)."""

    @activity.defn(name=HANDLE_EVENT)
    def handle_event(self, params: EventInput) -> str:
        """Acknowledge the event; webhooks, scans and quota warnings hook in here."""
        activity.logger.info(
            "event %s %s %s %s", params.event_id, params.kind, params.repository, params.digest
        )
        return params.kind
