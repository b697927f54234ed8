"""Promotion activities: evaluate the gates, copy the image, record the outcome.

Every activity is idempotent: evaluation only reads; the copy links and stores what the
target lacks (``core.services.promotion_copy``), so a retry after a worker crash ends in
the same state; the outcome's audit event is written before its activity completes (a
retried attempt may write it a second time: at least once), and so is its
``promotion.finished`` outbox event (once per run).
"""

from __future__ import annotations

from temporalio import activity
from temporalio.exceptions import ApplicationError

from core.audit import AuditEvent
from core.errors import RegistryError
from core.ports import Clock
from core.promotion import (
    COPY_IMAGE,
    EVALUATE_GATES,
    PROMOTION_REFUSED,
    RECORD_OUTCOME,
    CopyInput,
    CopyResult,
    Evaluation,
    OutcomeInput,
    PromotionRequest,
)
from core.services.audit_log import AuditLog
from core.services.promotion_copy import PromotionCopier
from core.services.promotion_outcomes import PromotionOutcomes
from core.services.promotions import PromotionService


class PromotionActivities:
    def __init__(
        self,
        service: PromotionService,
        copier: PromotionCopier,
        audit: AuditLog,
        clock: Clock,
        outcomes: PromotionOutcomes,
    ) -> None:
        self._service = service
        self._copier = copier
        self._audit = audit
        self._clock = clock
        self._outcomes = outcomes

    @activity.defn(name=EVALUATE_GATES)
    def promotion_evaluate(self, params: PromotionRequest) -> Evaluation:
        """The automatic gates over stored results (reads only)."""
        return self._service.evaluate(params)

    @activity.defn(name=COPY_IMAGE)
    def promotion_copy(self, params: CopyInput) -> CopyResult:
        """Copy by digest; a refusal (immutable tag, quota, missing source) is final."""
        try:
            return self._copier.copy(params)
        except RegistryError as refused:
            raise ApplicationError(
                refused.message or str(refused.code), type=PROMOTION_REFUSED, non_retryable=True
            ) from refused

    @activity.defn(name=RECORD_OUTCOME)
    def promotion_record(self, params: OutcomeInput) -> None:
        """Write the promotion's audit event (actor: who requested it) and its outbox event.

        The ``promotion.finished`` event (``core.services.promotion_outcomes``) is written
        once per run, however often this activity is retried.
        """
        outcome = params
        request = outcome.request
        self._audit.record(
            AuditEvent(
                time=self._clock.now(),
                request_id=request.id,
                actor=request.requested_by,
                actor_kind="promotion",
                auth_method="workflow",
                action=f"promotion.{outcome.status}",
                resource=(
                    f"{request.source_repository}@{request.source_digest} -> "
                    f"{request.target_repository}:{request.target_tag}"
                ),
                project=request.target_repository.partition("/")[0],
                result=outcome.reason[:512] or outcome.status,
                status=200 if outcome.status == "promoted" else 409,
                client="",
                user_agent="",
            )
        )
        # NOTE: written before the activity completes, not by the periodic writer: a
        # worker killed afterwards must not lose it (a retry may write it twice).
        self._audit.flush()
        info = activity.info()
        self._outcomes.announce(outcome, info.workflow_run_id or info.activity_id)
