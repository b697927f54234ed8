"""The event types webhook policies subscribe to, and how outbox events map onto them.

Types a policy may name (:class:`WebhookEvent`): the artifact and tag events, quota
events, finished retention runs, finished scans (``core.scan_events``), signature
verdicts (``core.trust_events``), finished promotions
(``core.services.promotion_outcomes``) and the system events of finished GC runs and
replication executions (``core.replication_events``). Every type is emitted: each
feature writes its outbox event in the transaction of the state it announces (a
promotion's, which has no row of its own, in its last activity). The webhook subscriber
(:data:`WEBHOOK_SUBSCRIBER`) receives every outbox kind of :data:`OUTBOX_TYPES` and the
``webhook.wake`` requests of redeliveries and resumed targets.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Final

from core import events
from core.event_batches import EventValue
from core.subscribers import Interest, Subscriber, keyed_interest

#: Activity of the webhook subscriber (``activities.webhooks``).
DELIVER_WEBHOOKS: Final = "deliver_events_webhook"
#: Activity a target's workflow sends due deliveries with.
SEND_WEBHOOKS: Final = "send_webhook_deliveries"
#: Workflow type of one target's delivery loop (``workflows.webhooks``).
TARGET_WORKFLOW: Final = "WebhookTargetWorkflow"
#: Signal that tells a target's workflow new deliveries are due.
WAKE_SIGNAL: Final = "wake"


class WebhookEvent(StrEnum):
    """What a webhook policy can subscribe to."""

    ARTIFACT_PUSHED = "artifact.pushed"
    ARTIFACT_PULLED = "artifact.pulled"
    ARTIFACT_DELETED = "artifact.deleted"
    TAG_PUSHED = "tag.pushed"
    TAG_DELETED = "tag.deleted"
    QUOTA_WARNING = "quota.warning"
    QUOTA_EXCEEDED = "quota.exceeded"
    RETENTION_FINISHED = "retention.finished"
    GC_FINISHED = "gc.finished"
    SCAN_COMPLETED = "scan.completed"
    SCAN_FAILED = "scan.failed"
    SIGNATURE_VERIFIED = "signature.verified"
    SIGNATURE_REFUSED = "signature.refused"
    REPLICATION_FINISHED = "replication.finished"
    PROMOTION_FINISHED = "promotion.finished"


#: Outbox event kind -> the webhook event type it is delivered as.
OUTBOX_TYPES: Final[dict[str, WebhookEvent]] = {
    events.MANIFEST_PUSHED: WebhookEvent.ARTIFACT_PUSHED,
    events.MANIFEST_PULLED: WebhookEvent.ARTIFACT_PULLED,
    events.MANIFEST_DELETED: WebhookEvent.ARTIFACT_DELETED,
    events.TAG_CREATED: WebhookEvent.TAG_PUSHED,
    events.TAG_MOVED: WebhookEvent.TAG_PUSHED,
    events.TAG_DELETED: WebhookEvent.TAG_DELETED,
    events.QUOTA_WARNING: WebhookEvent.QUOTA_WARNING,
    events.QUOTA_EXCEEDED: WebhookEvent.QUOTA_EXCEEDED,
    events.RETENTION_FINISHED: WebhookEvent.RETENTION_FINISHED,
    events.GC_FINISHED: WebhookEvent.GC_FINISHED,
    events.SCAN_COMPLETED: WebhookEvent.SCAN_COMPLETED,
    events.SCAN_FAILED: WebhookEvent.SCAN_FAILED,
    events.SIGNATURE_VERIFIED: WebhookEvent.SIGNATURE_VERIFIED,
    events.SIGNATURE_REFUSED: WebhookEvent.SIGNATURE_REFUSED,
    events.REPLICATION_FINISHED: WebhookEvent.REPLICATION_FINISHED,
    events.PROMOTION_FINISHED: WebhookEvent.PROMOTION_FINISHED,
}

#: System events: only system-wide policies receive them (replication policies are the
#: installation's, like GC).
SYSTEM: Final = frozenset({WebhookEvent.GC_FINISHED, WebhookEvent.REPLICATION_FINISHED})

#: Harbor's event type names of ours (its ``type`` field in the Harbor JSON format).
HARBOR_TYPES: Final[dict[WebhookEvent, str]] = {
    WebhookEvent.ARTIFACT_PUSHED: "PUSH_ARTIFACT",
    WebhookEvent.ARTIFACT_PULLED: "PULL_ARTIFACT",
    WebhookEvent.ARTIFACT_DELETED: "DELETE_ARTIFACT",
    WebhookEvent.TAG_PUSHED: "PUSH_ARTIFACT",
    WebhookEvent.TAG_DELETED: "DELETE_ARTIFACT",
    WebhookEvent.QUOTA_WARNING: "QUOTA_WARNING",
    WebhookEvent.QUOTA_EXCEEDED: "QUOTA_EXCEED",
    WebhookEvent.RETENTION_FINISHED: "TAG_RETENTION",
    WebhookEvent.GC_FINISHED: "GC_FINISHED",
    WebhookEvent.SCAN_COMPLETED: "SCANNING_COMPLETED",
    WebhookEvent.SCAN_FAILED: "SCANNING_FAILED",
    WebhookEvent.SIGNATURE_VERIFIED: "SIGNATURE_VERIFIED",
    WebhookEvent.SIGNATURE_REFUSED: "SIGNATURE_REFUSED",
    WebhookEvent.REPLICATION_FINISHED: "REPLICATION",
    WebhookEvent.PROMOTION_FINISHED: "PROMOTION",
}

#: The webhook subscriber of the event fan-out (``core.subscribers``).
WEBHOOK_SUBSCRIBER: Final = Subscriber(
    "webhook", frozenset(OUTBOX_TYPES) | {events.WEBHOOK_WAKE}, DELIVER_WEBHOOKS
)


def subscription_of(event: EventValue) -> tuple[int | None, WebhookEvent] | None:
    """Whose policies may subscribe to ``event``, and to which type.

    Its project (``None``: the system-wide policies, for system events) and its webhook
    type; ``None`` for a kind no policy names.
    """
    kind = OUTBOX_TYPES.get(event.kind)
    if kind is None:
        return None
    return (None if kind in SYSTEM else event.project_id), kind


def webhook_interest(subscribed: Callable[[int | None, str], Sequence[object]]) -> Interest:
    """The webhook subscriber's interest: events an enabled policy subscribes to.

    And every ``webhook.wake`` request. ``subscribed`` (the store's) is asked once per
    project and type a call.
    """

    def key_of(event: EventValue) -> tuple[int | None, str] | None:
        if event.kind == events.WEBHOOK_WAKE:
            return None, events.WEBHOOK_WAKE
        found = subscription_of(event)
        return None if found is None else (found[0], str(found[1]))

    def wants(key: tuple[int | None, str]) -> bool:
        project, event_type = key
        # NOTE: a wake's deliveries are recorded already: it always goes through
        return event_type == events.WEBHOOK_WAKE or bool(subscribed(project, event_type))

    return keyed_interest(key_of, wants)


def target_workflow_id(policy_id: int, key: str) -> str:
    """The id of the one workflow that sends a policy's deliveries.

    ``webhook-target-<policy id>-<policy key>``: the random key keeps ids apart between
    databases sharing one Temporal namespace (or a database restored from a backup),
    whose policy ids repeat.
    """
    return f"webhook-target-{policy_id}-{key}"


@dataclass(frozen=True, slots=True)
class SendResult:
    """What one round of a target's sending did.

    Attributes:
        sent: Deliveries that got a final outcome this round.
        more: Due deliveries are left (the round stopped at its size).
        wait_seconds: The oldest pending delivery is due in this many seconds;
            ``None``: nothing pending, or the target is paused or disabled.
    """

    sent: int
    more: bool
    wait_seconds: float | None
