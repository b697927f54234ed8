"""The trust subscriber's activity: verify the images a batch of events concerns."""

from __future__ import annotations

from temporalio import activity

from activities.heartbeats import keeps_heartbeating
from core.event_batches import EventBatch
from core.services.push_signing import PushSigner
from core.trust_verify import VERIFY_TRUST, TrustVerifier


class TrustActivities:
    """Verification (``core.trust_verify``) and the registry's signatures of pushes.

    Pushes are signed in projects whose trust policy asks (``core.services.push_signing``).
    """

    def __init__(self, verifier: TrustVerifier, signer: PushSigner) -> None:
        self._verifier, self._signer = verifier, signer

    @activity.defn(name=VERIFY_TRUST)
    @keeps_heartbeating
    def deliver_events_trust(self, params: EventBatch) -> int:
        """Verify every image the batch's events concern, then sign pushes; the verified count.

        Idempotent: each image's results are replaced as a whole from what is stored, so
        a retried batch stores the same results, and a signature already made is not made
        again. Heartbeats after each image.
        """
        verified = self._verifier.handle(params.events, activity.heartbeat)
        self._signer.handle(params.events, activity.heartbeat)
        return verified
