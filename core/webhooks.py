"""Webhook policies and their delivery log: the rules, the records and the store port.

A policy belongs to a project (its members' events) or is system-wide (``project_id``
``None``: every project's events and the system events, administrators only). It names
the event types it wants, a target URL (checked against the outbound policy when it is
created or changed, and again at each delivery), an optional ``Authorization``-style
header and a payload format. Its signing secret and auth header are stored sealed
(``core.sealing``) and never returned after creation; rotating the secret keeps the old
one signing for the overlap period.

Deliveries: one row per (policy, event, generation); generation 0 is written when the
event reaches the webhook subscriber (idempotent: a repeated batch adds nothing), a
redelivery adds the next generation. A policy's deliveries are sent oldest first, one at a
time, by that policy's workflow (``workflows.webhooks``): so in order per target, and so
per repository. Every attempt is logged with status, latency and a response excerpt.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any, Protocol

from core.access import Identity
from core.errors import ConflictError, ForbiddenError, InvalidInputError, NotFoundError
from core.outbound import OutboundPolicy, OutboundRefusedError, parse_destination
from core.sealing import SecretBox
from core.services.access_control import AccessControl
from core.webhook_events import SYSTEM, WebhookEvent
from core.webhook_payloads import PayloadFormat
from core.webhook_settings import WebhookSettings
from core.webhook_signing import new_secret

_RESOURCE = "notification-policy"
_MAX_EXCERPT = 64 * 1024
_NAME_MAX = 128


class DeliveryStatus(StrEnum):
    PENDING = "pending"
    DELIVERED = "delivered"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class WebhookPolicy:
    """A stored policy (sealed values included: never hand these to a caller).

    Attributes:
        key: Random id of the policy's sealed values (their sealing context).
        paused_reason: Why delivery is paused or the policy was disabled by delivery
            (410, failing too long); ``None`` while it delivers.
        failing_since: First failed attempt since the last success.
    """

    id: int
    key: str
    project_id: int | None
    project: str | None
    name: str
    url: str
    events: tuple[str, ...]
    payload_format: PayloadFormat
    enabled: bool
    paused: bool
    paused_reason: str | None
    failing_since: datetime | None
    secret_sealed: str
    previous_secret_sealed: str | None
    previous_secret_until: datetime | None
    auth_header_sealed: str | None
    created_by: str
    created_at: datetime
    updated_at: datetime

    @property
    def source(self) -> str:
        """The CloudEvents ``source`` of its deliveries."""
        if self.project is None:
            return f"/system/webhooks/{self.id}"
        return f"/projects/{self.project}/webhooks/{self.id}"


@dataclass(frozen=True, slots=True)
class DeliveryAttempt:
    attempted_at: datetime
    status_code: int | None
    latency_ms: int
    error: str | None
    response_excerpt: str | None


@dataclass(frozen=True, slots=True)
class Delivery:
    """One event to one policy (a generation: 0 first, then one per redelivery).

    Attributes:
        event: The event by value (``core.event_batches.EventValue`` fields, JSON).
        next_attempt_at: When it is tried next while pending.
    """

    id: int
    policy_id: int
    event_id: int
    generation: int
    type: str
    repository: str | None
    event: dict[str, Any]
    event_time: datetime
    status: DeliveryStatus
    attempts: int
    next_attempt_at: datetime | None
    last_status_code: int | None
    last_error: str | None
    created_at: datetime
    finished_at: datetime | None
    history: tuple[DeliveryAttempt, ...] = ()


@dataclass(frozen=True, slots=True)
class NewDelivery:
    policy_id: int
    event_id: int
    type: str
    repository: str | None
    event: dict[str, Any]
    event_time: datetime


class WebhookStore(Protocol):
    """Webhook policies and deliveries in the metadata database.

    Every method is one transaction; ``add_deliveries`` is idempotent per
    (policy, event, generation).
    """

    def add_policy(self, policy: WebhookPolicy) -> WebhookPolicy:
        """Store a new policy (its ``id`` is assigned); ``ConflictError`` on a taken name."""
        ...

    def policy(self, policy_id: int) -> WebhookPolicy | None: ...
    def policies(self, project_id: int | None) -> list[WebhookPolicy]:
        """A project's policies, or the system-wide ones for ``None``."""
        ...

    def save_policy(self, policy: WebhookPolicy) -> None: ...
    def set_target_state(
        self,
        policy_id: int,
        *,
        failing_since: datetime | None,
        paused_reason: str | None,
        pause: bool = False,
        disable: bool = False,
    ) -> None:
        """Record delivery health only (never touches what a caller configured)."""
        ...

    def delete_policy(self, policy_id: int) -> None: ...
    def subscribed(self, project_id: int | None, event_type: str) -> list[WebhookPolicy]:
        """Enabled policies that want ``event_type`` of that project (and system-wide ones)."""
        ...

    def wants(self, event_type: str) -> bool:
        """Whether any enabled policy wants ``event_type``."""
        ...

    def add_deliveries(self, deliveries: Sequence[NewDelivery], now: datetime) -> list[int]:
        """Add generation-0 deliveries not yet there; return the policies that got some."""
        ...

    def pending(self, policy_id: int, limit: int) -> list[Delivery]:
        """The policy's oldest ``limit`` pending deliveries, oldest first."""
        ...

    def record_attempts(
        self,
        attempts: Sequence[tuple[int, DeliveryAttempt, DeliveryStatus, datetime | None]],
    ) -> None:
        """Log attempts and set their deliveries' states, in one transaction.

        Each item: delivery id, the attempt, the new status, the next attempt's time.
        """
        ...

    def deliveries(
        self, policy_id: int, *, limit: int, before_id: int | None, status: str | None
    ) -> list[Delivery]:
        """The policy's deliveries, newest first, with their attempts."""
        ...

    def redeliver(
        self, policy_id: int, event_id: int | None, since: datetime | None, until: datetime | None
    ) -> int:
        """Add the next generation of the latest deliveries of the event (or time range)."""
        ...

    def pending_count(self, policy_id: int) -> int: ...


class PolicyIn(Protocol):
    """The fields of a create or update request (``api.controllers.webhooks``)."""

    name: str
    url: str
    events: list[WebhookEvent]
    payload_format: PayloadFormat
    auth_header: str | None
    enabled: bool


@dataclass(frozen=True, slots=True)
class CreatedPolicy:
    """A created policy and its signing secret (shown this once)."""

    policy: WebhookPolicy
    secret: str


def secret_context(policy: WebhookPolicy | str, what: str) -> str:
    key = policy if isinstance(policy, str) else policy.key
    return f"webhook:{key}:{what}"


def check_events(events: Sequence[str]) -> tuple[str, ...]:
    """The distinct event types, in enum order; refuses none or unknown ones."""
    if not events:
        raise InvalidInputError("a webhook policy wants at least one event type", field="events")
    wanted: list[str] = []
    for value in events:
        try:
            kind = WebhookEvent(value)
        except ValueError as exc:
            raise InvalidInputError(f"unknown event type {value!r}", field="events") from exc
        if kind not in wanted:
            wanted.append(kind)
    return tuple(str(k) for k in WebhookEvent if k in wanted)


class WebhookService:
    """Policies as callers manage them, and the delivery log.

    Project policies need ``notification-policy`` rights in the project (project admins;
    maintainers read); system-wide ones need a system administrator. A project the
    caller cannot read answers 404 like a missing one.
    """

    def __init__(
        self,
        store: WebhookStore,
        access: AccessControl,
        box: SecretBox,
        outbound: OutboundPolicy,
        settings: WebhookSettings,
        wake: Callable[[int], None],
    ) -> None:
        """Build the service.

        ``wake(policy_id)`` tells the policy's target workflow deliveries are due (it
        writes a ``webhook.wake`` outbox event, so the wake survives any crash).
        """
        self._store, self._access, self._box = store, access, box
        self._outbound, self._settings, self._wake = outbound, settings, wake

    # -- access ---------------------------------------------------------------------

    def _scope(self, caller: Identity, project: str | None, action: str) -> int | None:
        if project is None:
            if not caller.is_admin:
                raise ForbiddenError("only system administrators manage system-wide webhooks")
            return None
        return self._access.require(caller, project, _RESOURCE, action).id

    def _owned(
        self, caller: Identity, project: str | None, policy_id: int, action: str
    ) -> WebhookPolicy:
        project_id = self._scope(caller, project, action)
        policy = self._store.policy(policy_id)
        if policy is None or policy.project_id != project_id:
            raise NotFoundError(f"webhook {policy_id} not found")
        return policy

    # -- policies -------------------------------------------------------------------

    def _check_url(self, url: str) -> str:
        try:
            parse_destination(url, self._outbound)
        except OutboundRefusedError as exc:
            raise InvalidInputError(str(exc), field="url") from exc
        return url

    def create(self, caller: Identity, project: str | None, data: PolicyIn) -> CreatedPolicy:
        """Create a policy; returns it with its new ``whsec_`` secret (shown once)."""
        project_id = self._scope(caller, project, "create")
        events = check_events(data.events)
        if project is not None and any(WebhookEvent(e) in SYSTEM for e in events):
            raise InvalidInputError("system events go to system-wide webhooks only", field="events")
        url = self._check_url(data.url)
        key, secret, now = uuid.uuid4().hex, new_secret(), datetime.now(UTC)
        auth = data.auth_header
        policy = WebhookPolicy(
            id=0,
            key=key,
            project_id=project_id,
            project=project,
            name=_name(data.name),
            url=url,
            events=events,
            payload_format=PayloadFormat(data.payload_format),
            enabled=data.enabled,
            paused=False,
            paused_reason=None,
            failing_since=None,
            secret_sealed=self._box.seal(secret.encode(), secret_context(key, "secret")),
            previous_secret_sealed=None,
            previous_secret_until=None,
            auth_header_sealed=(
                self._box.seal(auth.encode(), secret_context(key, "auth")) if auth else None
            ),
            created_by=caller.subject,
            created_at=now,
            updated_at=now,
        )
        return CreatedPolicy(self._store.add_policy(policy), secret)

    def policies(self, caller: Identity, project: str | None) -> list[WebhookPolicy]:
        return self._store.policies(self._scope(caller, project, "list"))

    def get(self, caller: Identity, project: str | None, policy_id: int) -> WebhookPolicy:
        return self._owned(caller, project, policy_id, "read")

    def update(
        self, caller: Identity, project: str | None, policy_id: int, data: PolicyIn
    ) -> WebhookPolicy:
        """Replace the policy's settings; ``auth_header`` ``None`` keeps the stored one.

        Enabling a policy clears its pause (it delivers again, from its oldest pending
        delivery on).
        """
        policy = self._owned(caller, project, policy_id, "update")
        events = check_events(data.events)
        if policy.project_id is not None and any(WebhookEvent(e) in SYSTEM for e in events):
            raise InvalidInputError("system events go to system-wide webhooks only", field="events")
        auth = policy.auth_header_sealed
        if data.auth_header is not None:
            auth = (
                self._box.seal(data.auth_header.encode(), secret_context(policy, "auth"))
                if data.auth_header
                else None
            )
        changed = replace(
            policy,
            name=_name(data.name),
            url=self._check_url(data.url),
            events=events,
            payload_format=PayloadFormat(data.payload_format),
            enabled=data.enabled,
            auth_header_sealed=auth,
            updated_at=datetime.now(UTC),
        )
        if (data.enabled and not policy.enabled) or (data.enabled and policy.paused):
            changed = replace(changed, paused=False, paused_reason=None, failing_since=None)
        self._store.save_policy(changed)
        return changed

    def resume(self, caller: Identity, project: str | None, policy_id: int) -> WebhookPolicy:
        """Enable a disabled or paused policy again (its pending deliveries are sent)."""
        policy = self._owned(caller, project, policy_id, "update")
        changed = replace(
            policy,
            enabled=True,
            paused=False,
            paused_reason=None,
            failing_since=None,
            updated_at=datetime.now(UTC),
        )
        self._store.save_policy(changed)
        self._wake(policy.id)
        return changed

    def delete(self, caller: Identity, project: str | None, policy_id: int) -> None:
        self._owned(caller, project, policy_id, "delete")
        self._store.delete_policy(policy_id)

    def rotate_secret(self, caller: Identity, project: str | None, policy_id: int) -> str:
        """A new signing secret; the old one signs too for the overlap period."""
        policy = self._owned(caller, project, policy_id, "update")
        secret, now = new_secret(), datetime.now(UTC)
        overlap = timedelta(seconds=self._settings.secret_overlap_seconds)
        self._store.save_policy(
            replace(
                policy,
                secret_sealed=self._box.seal(secret.encode(), secret_context(policy, "secret")),
                previous_secret_sealed=policy.secret_sealed if overlap else None,
                previous_secret_until=now + overlap if overlap else None,
                updated_at=now,
            )
        )
        return secret

    # -- delivery log -----------------------------------------------------------------

    def deliveries(
        self,
        caller: Identity,
        project: str | None,
        policy_id: int,
        *,
        limit: int,
        before_id: int | None,
        status: str | None,
    ) -> list[Delivery]:
        self._owned(caller, project, policy_id, "read")
        return self._store.deliveries(policy_id, limit=limit, before_id=before_id, status=status)

    def redeliver(
        self,
        caller: Identity,
        project: str | None,
        policy_id: int,
        *,
        event_id: int | None,
        since: datetime | None,
        until: datetime | None,
    ) -> int:
        """Queue one event, or every event of a time range, for delivery again.

        Returns how many deliveries were queued; the target's workflow is woken.
        """
        self._owned(caller, project, policy_id, "update")
        if event_id is None and since is None:
            raise InvalidInputError("name an event_id or a since time", field="event_id")
        queued = self._store.redeliver(policy_id, event_id, since, until)
        if queued:
            self._wake(policy_id)
        return queued

    def ping_target(self, caller: Identity, project: str | None, policy_id: int) -> WebhookPolicy:
        """The policy a test ping goes to, if the caller may update it."""
        return self._owned(caller, project, policy_id, "update")

    # -- secrets (delivery side) --------------------------------------------------------

    def signing_secrets(self, policy: WebhookPolicy, now: datetime) -> list[str]:
        return signing_secrets(self._box, policy, now)


def signing_secrets(box: SecretBox, policy: WebhookPolicy, now: datetime) -> list[str]:
    """The secrets that sign a delivery now: the current one, then one in its overlap."""
    found = [box.open(policy.secret_sealed, secret_context(policy, "secret")).decode()]
    if (
        policy.previous_secret_sealed
        and policy.previous_secret_until is not None
        and now < policy.previous_secret_until
    ):
        found.append(
            box.open(policy.previous_secret_sealed, secret_context(policy, "secret")).decode()
        )
    return found


def auth_header(box: SecretBox, policy: WebhookPolicy) -> tuple[str, str] | None:
    """(name, value) of the policy's auth header, opened; ``Name: value`` or a bare value."""
    if not policy.auth_header_sealed:
        return None
    text = box.open(policy.auth_header_sealed, secret_context(policy, "auth")).decode()
    name, sep, value = text.partition(":")
    if sep and name and " " not in name.strip():
        return name.strip(), value.strip()
    return "Authorization", text.strip()


def _name(name: str) -> str:
    text = name.strip()
    if not 1 <= len(text) <= _NAME_MAX:
        raise InvalidInputError("a webhook name has 1 to 128 characters", field="name")
    return text


def excerpt(body: bytes, limit: int) -> str:
    """The first ``limit`` bytes of a response as text (for the delivery log)."""
    return body[: min(limit, _MAX_EXCERPT)].decode("utf-8", "replace")


def event_json(text: str) -> dict[str, Any]:
    value = json.loads(text)
    return value if isinstance(value, dict) else {}


__all__ = [
    "ConflictError",
    "CreatedPolicy",
    "Delivery",
    "DeliveryAttempt",
    "DeliveryStatus",
    "NewDelivery",
    "WebhookPolicy",
    "WebhookService",
    "WebhookStore",
    "auth_header",
    "check_events",
    "signing_secrets",
]
