"""Webhook activities: record a batch's deliveries, and send one target's deliveries.

``deliver_events_webhook`` is the webhook subscriber's activity (``core.subscribers``):
it writes one pending delivery per (event, subscribed policy), idempotently, then wakes
each touched policy's target workflow (signal-with-start, one workflow per policy). It
returns as soon as that is done, so a slow or failing target never holds up the batches
behind it: retry state lives in the delivery rows, not in the batch's run.

``send_webhook_deliveries`` sends a policy's due deliveries oldest first, one at a time
(ordered per target, so per repository), and stops at the first that must wait. Each
attempt reads the policy anew, after its delivery was read, so it is signed with the
secrets of that moment (a redelivery queued after a rotation carries the new secret's
signature too) and a pause or disable takes effect at the next attempt. It
heartbeats while it works; a worker killed mid-request loses that attempt, Temporal runs
the activity again and the delivery is sent again (at least once; receivers dedupe on
``webhook-id``).
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Final
from urllib.parse import urlsplit

import anyio.to_thread
from temporalio import activity

from activities.heartbeats import heartbeating, keeps_heartbeating
from core import events
from core.event_batches import EventBatch, EventValue
from core.outbound import OutboundRefusedError
from core.sealing import SecretBox
from core.settings import Settings
from core.webhook_delivery import TransportError, WebhookHttp, message_of, signed_request
from core.webhook_events import (
    DELIVER_WEBHOOKS,
    SEND_WEBHOOKS,
    TARGET_WORKFLOW,
    WAKE_SIGNAL,
    SendResult,
    subscription_of,
    target_workflow_id,
)
from core.webhook_retry import Verdict, next_attempt, retry_after, should_pause, verdict
from core.webhooks import (
    Delivery,
    DeliveryAttempt,
    DeliveryStatus,
    NewDelivery,
    WebhookPolicy,
    WebhookStore,
    excerpt,
)

#: Seconds between heartbeats of a sending activity.
HEARTBEAT_EVERY: Final = 2.0
#: Pending deliveries read at once (and successes logged at once).
PAGE: Final = 100


def registry_host(settings: Settings) -> str:
    return urlsplit(settings.public_url).netloc if settings.public_url else ""


class WebhookActivities:
    """The webhook subscriber's activities (async: they wait on HTTP and on Temporal)."""

    def __init__(
        self,
        settings: Settings,
        store: WebhookStore,
        box: Callable[[], SecretBox],
        http: Callable[[], WebhookHttp],
    ) -> None:
        """Build the activities; ``box`` and ``http`` are made on first use.

        (A worker may start before the installation's master key exists.)
        """
        self._settings = settings.webhooks
        self._store = store
        self._make_box, self._make_http = box, http
        self._registry = registry_host(settings)

    @functools.cached_property
    def _box(self) -> SecretBox:
        return self._make_box()

    @functools.cached_property
    def _http(self) -> WebhookHttp:
        return self._make_http()

    # -- the subscriber ---------------------------------------------------------------

    def _record(self, batch: EventBatch) -> list[tuple[int, str]]:
        """Write the batch's deliveries; return the policies to wake.

        Every policy an event of the batch matched is woken, also when its deliveries
        were already written (a retry after a crash between the write and the wake).
        """
        wanted: list[NewDelivery] = []
        wake: list[int] = []
        cache: dict[tuple[int | None, str], list[WebhookPolicy]] = {}
        for event in batch.events:
            if event.kind == events.WEBHOOK_WAKE:
                if event.data and event.data.isdigit() and int(event.data) not in wake:
                    wake.append(int(event.data))
                continue
            subscription = subscription_of(event)
            if subscription is None:
                continue
            project_id, kind = subscription
            key = (project_id, str(kind))
            if key not in cache:
                cache[key] = self._store.subscribed(project_id, str(kind))
            wanted += [_delivery(p.id, str(kind), event) for p in cache[key]]
        self._store.add_deliveries(wanted, datetime.now(UTC))
        keys = {p.id: p.key for found in cache.values() for p in found}
        for policy_id in wake:
            if policy_id not in keys and (policy := self._store.policy(policy_id)) is not None:
                keys[policy_id] = policy.key
        matched = list(dict.fromkeys(d.policy_id for d in wanted))
        order = matched + [w for w in wake if w not in matched]
        return [(policy_id, keys[policy_id]) for policy_id in order if policy_id in keys]

    @activity.defn(name=DELIVER_WEBHOOKS)
    @keeps_heartbeating
    async def deliver_events_webhook(self, batch: EventBatch) -> int:
        """Record the batch's deliveries and wake the targets; return the batch's size."""
        policies = await anyio.to_thread.run_sync(self._record, batch)
        client = activity.client()
        queue = activity.info().task_queue
        for policy_id, key in policies:
            await client.start_workflow(
                TARGET_WORKFLOW,
                policy_id,
                id=target_workflow_id(policy_id, key),
                task_queue=queue,
                start_signal=WAKE_SIGNAL,
            )
        return len(batch.events)

    # -- a target's sending -------------------------------------------------------------

    async def _attempt(
        self, policy: WebhookPolicy, delivery: Delivery
    ) -> tuple[DeliveryAttempt, str | None]:
        """One HTTP attempt: its log record and the answer's ``Retry-After``, if any."""
        message = message_of(policy, delivery, self._registry)
        request = signed_request(self._box, policy, message)
        started, now = time.monotonic(), datetime.now(UTC)
        status: int | None = None
        error: str | None = None
        text: str | None = None
        retry_header: str | None = None
        try:
            answer = await self._http.post(policy.url, request.headers, request.body)
            status, retry_header = answer.status, answer.retry_after
            text = excerpt(answer.body, self._settings.response_excerpt_bytes)
        except OutboundRefusedError as exc:
            error = f"refused: {exc}"
        except TransportError as exc:
            error = str(exc)[:1024]
        latency = int((time.monotonic() - started) * 1000)
        return DeliveryAttempt(now, status, latency, error, text), retry_header

    def _outcome(
        self,
        policy: WebhookPolicy,
        delivery: Delivery,
        attempt: DeliveryAttempt,
        retry_header: str | None,
    ) -> float | None:
        """Record the attempt; return seconds until this delivery is due again, if pending.

        ``None``: the delivery is finished (delivered, or given up at the maximum age).
        """
        status = attempt.status_code
        now = attempt.attempted_at
        judged = verdict(status)
        if judged is Verdict.DELIVERED:
            self._store.record_attempts([(delivery.id, attempt, DeliveryStatus.DELIVERED, None)])
            if policy.failing_since is not None:
                self._store.set_target_state(policy.id, failing_since=None, paused_reason=None)
            return None
        failing_since = policy.failing_since or now
        if judged is Verdict.GONE:
            self._store.record_attempts([(delivery.id, attempt, DeliveryStatus.PENDING, now)])
            self._store.set_target_state(
                policy.id,
                failing_since=failing_since,
                paused_reason=f"disabled: the target answered 410 Gone at {now.isoformat()}",
                disable=True,
            )
            return 0.0
        step = next_attempt(
            attempts=delivery.attempts + 1,
            event_time=delivery.event_time,
            now=now,
            throttle=retry_after(status, retry_header, now),
            settings=self._settings,
        )
        if step.at is None:
            self._store.record_attempts([(delivery.id, attempt, DeliveryStatus.FAILED, None)])
        else:
            self._store.record_attempts([(delivery.id, attempt, DeliveryStatus.PENDING, step.at)])
        pause = should_pause(failing_since, now, self._settings)
        reason = None
        if pause:
            last = f"HTTP {status}" if status is not None else (attempt.error or "no answer")
            reason = f"paused: failing since {failing_since.isoformat()} (last: {last})"
        self._store.set_target_state(
            policy.id, failing_since=failing_since, paused_reason=reason, pause=pause
        )
        if step.at is None:
            return None
        return max(0.0, (step.at - now).total_seconds())

    def _record_delivered(self, delivered: list[tuple[int, DeliveryAttempt]]) -> None:
        """Log the buffered successful attempts in one transaction, and clear the buffer."""
        if delivered:
            self._store.record_attempts(
                [(delivery_id, a, DeliveryStatus.DELIVERED, None) for delivery_id, a in delivered]
            )
            delivered.clear()

    @activity.defn(name=SEND_WEBHOOKS)
    async def send_webhook_deliveries(self, policy_id: int) -> SendResult:
        """Send the policy's due deliveries in order, up to one round's worth.

        Successes are logged a page at a time (a crash before that only sends them again:
        at least once); a failure is logged at once, with the target's health, and ends
        the round with the time the failed delivery is due again.
        """
        sent = 0
        delivered: list[tuple[int, DeliveryAttempt]] = []
        async with heartbeating(HEARTBEAT_EVERY):
            try:
                while sent < self._settings.send_round:
                    size = min(PAGE, self._settings.send_round - sent)
                    page = await anyio.to_thread.run_sync(self._store.pending, policy_id, size)
                    if not page:
                        return SendResult(sent, more=False, wait_seconds=None)
                    for delivery in page:
                        # NOTE: the policy is read for each attempt, after the delivery was
                        # read: a delivery queued after a secret rotation (a redelivery) is
                        # signed with the rotated secrets, never with ones read before it.
                        policy = await anyio.to_thread.run_sync(self._store.policy, policy_id)
                        if policy is None or not policy.enabled or policy.paused:
                            return SendResult(sent, more=False, wait_seconds=None)
                        now = datetime.now(UTC)
                        due = delivery.next_attempt_at
                        if due is not None and due > now:
                            return SendResult(sent, False, (due - now).total_seconds())
                        attempt, retry_header = await self._attempt(policy, delivery)
                        healthy = policy.failing_since is None
                        if healthy and verdict(attempt.status_code) is Verdict.DELIVERED:
                            delivered.append((delivery.id, attempt))
                            sent += 1
                            continue
                        await anyio.to_thread.run_sync(self._record_delivered, delivered)
                        wait_for = await anyio.to_thread.run_sync(
                            self._outcome, policy, delivery, attempt, retry_header
                        )
                        if wait_for is not None:
                            return SendResult(sent, more=False, wait_seconds=wait_for)
                        sent += 1
                    await anyio.to_thread.run_sync(self._record_delivered, delivered)
            finally:
                await anyio.to_thread.run_sync(self._record_delivered, delivered)
        return SendResult(sent, more=True, wait_seconds=None)


def _delivery(policy_id: int, kind: str, event: EventValue) -> NewDelivery:
    return NewDelivery(
        policy_id=policy_id,
        event_id=event.event_id,
        type=kind,
        repository=event.repository,
        event={
            "event_id": event.event_id,
            "kind": event.kind,
            "project_id": event.project_id,
            "repository": event.repository,
            "digest": event.digest,
            "tag": event.tag,
            "data": event.data,
            "created_at": event.created_at,
        },
        event_time=datetime.fromisoformat(event.created_at),
    )
