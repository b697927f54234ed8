"""The trust subscriber's activity: verify the images a batch of events concerns."""

from __future__ import annotations

from temporalio import activity

from activities.heartbeats import keeps_heartbeating
from core.event_batches import EventBatch
from core.trust_verify import VERIFY_TRUST, TrustVerifier


class TrustActivities:
    """Signature and attestation verification (``core.trust_verify``)."""

    def __init__(self, verifier: TrustVerifier) -> None:
        self._verifier = verifier

    @activity.defn(name=VERIFY_TRUST)
    @keeps_heartbeating
    def deliver_events_trust(self, params: EventBatch) -> int:
        """Verify every image the batch's events concern; return how many.

        Idempotent: each image's results are replaced as a whole from what is stored, so
        a retried batch stores the same results. Heartbeats after each image.
        """
        return self._verifier.handle(params.events, activity.heartbeat)
