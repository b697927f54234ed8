"""The webhook event types: what outbox events map to."""

from __future__ import annotations

import pytest

from core import events
from core.errors import InvalidInputError
from core.webhook_events import OUTBOX_TYPES, SYSTEM, WEBHOOK_SUBSCRIBER, WebhookEvent
from core.webhooks import check_events


def test_every_type_a_policy_may_name_is_emitted() -> None:
    assert set(OUTBOX_TYPES.values()) == set(WebhookEvent)
    assert {WebhookEvent.GC_FINISHED, WebhookEvent.REPLICATION_FINISHED} == SYSTEM


def test_the_subscriber_wants_the_mapped_kinds_and_wake_requests() -> None:
    assert WEBHOOK_SUBSCRIBER.events == frozenset(OUTBOX_TYPES) | {events.WEBHOOK_WAKE}
    assert OUTBOX_TYPES[events.TAG_MOVED] is WebhookEvent.TAG_PUSHED
    assert OUTBOX_TYPES[events.MANIFEST_PULLED] is WebhookEvent.ARTIFACT_PULLED


def test_policy_event_lists_are_checked_and_normalised() -> None:
    assert check_events(["tag.pushed", "artifact.pushed", "tag.pushed"]) == (
        "artifact.pushed",
        "tag.pushed",
    )
    with pytest.raises(InvalidInputError, match="unknown event type"):
        check_events(["artifact.exploded"])
    with pytest.raises(InvalidInputError, match="at least one"):
        check_events([])
