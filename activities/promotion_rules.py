"""The promotion-rule subscriber's activity (``core.subscribers``).

``deliver_events_promotion`` reads the enabled rules of the batch's projects, and for
every tag event a rule selects starts one promotion workflow (``workflows.promotions``)
with the rule's deterministic id (``core.promotion_rules.rule_promotion_id``) under
Temporal's reject-duplicate id policy: a batch retried after a worker died, or an event
delivered again, finds the promotion started and starts nothing. Each start writes one
``promotion_rule.fired`` audit event whose actor is the pusher.
"""

from __future__ import annotations

import anyio.to_thread
from temporalio import activity
from temporalio.common import WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError

from activities.heartbeats import keeps_heartbeating
from activities.search_attributes import search_values, typed_search_attributes
from core.audit import AuditEvent
from core.event_batches import EventBatch
from core.ports import Clock
from core.promotion import PROMOTION_WORKFLOW, promotion_memo
from core.promotion_rules import (
    DELIVER_EVENTS_PROMOTION,
    Fired,
    PromotionRuleStore,
    fired_by,
)
from core.services.audit_log import AuditLog


class PromotionRuleActivities:
    def __init__(self, store: PromotionRuleStore, audit: AuditLog, clock: Clock) -> None:
        self._store = store
        self._audit = audit
        self._clock = clock

    def _fired(self, batch: EventBatch) -> list[Fired]:
        projects = [e.project_id for e in batch.events if e.project_id is not None]
        rules = self._store.enabled_of(projects)
        return fired_by(rules, batch.events) if rules else []

    @activity.defn(name=DELIVER_EVENTS_PROMOTION)
    @keeps_heartbeating
    async def deliver_events_promotion(self, batch: EventBatch) -> int:
        """Start the promotion of every rule the batch's tag events fire (once each)."""
        fired = await anyio.to_thread.run_sync(self._fired, batch)
        client = activity.client()
        queue = activity.info().task_queue
        started: list[Fired] = []
        for item in fired:
            request = item.request
            search = search_values(
                project=request.target_repository.partition("/")[0],
                repository=request.target_repository,
                digest=request.source_digest,
            )
            try:
                await client.start_workflow(
                    PROMOTION_WORKFLOW,
                    request,
                    id=request.id,
                    task_queue=queue,
                    id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
                    search_attributes=typed_search_attributes(search),
                    memo=promotion_memo(request),
                )
            except WorkflowAlreadyStartedError:
                continue
            started.append(item)
        if started:
            await anyio.to_thread.run_sync(self._record, started)
        return len(batch.events)

    def _record(self, started: list[Fired]) -> None:
        for item in started:
            request, pusher = item.request, item.pusher
            self._audit.record(
                AuditEvent(
                    time=self._clock.now(),
                    request_id=request.id,
                    actor=pusher.name if pusher is not None else "",
                    actor_kind=pusher.kind if pusher is not None else "unknown",
                    auth_method="event",
                    action="promotion_rule.fired",
                    resource=(
                        f"{request.source_repository}@{request.source_digest} -> "
                        f"{request.target_repository}:{request.target_tag}"
                    ),
                    project=item.rule.project,
                    result=item.rule.actor,
                    status=202,
                    client="",
                    user_agent="",
                )
            )
        self._audit.flush()
