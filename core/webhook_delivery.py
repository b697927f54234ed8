"""One delivery attempt: the message, its signed request, and what the answer means.

Pure functions over a policy and a delivery; the activity (``activities.webhooks``) does
the I/O. The request carries the rendered payload, the Standard Webhooks headers (every
live secret signs), ``idempotency-key`` equal to ``webhook-id`` (the event id) and the
policy's auth header. Secrets and the auth header are never part of what is logged.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final, Protocol

from core.sealing import SecretBox
from core.webhook_payloads import WebhookMessage, render
from core.webhook_signing import signed_headers
from core.webhooks import Delivery, WebhookPolicy, auth_header, signing_secrets

USER_AGENT: Final = "Moorage-Webhooks/1"


def message_id(event_id: int) -> str:
    """The ``webhook-id`` of an event (stable across retries and redeliveries)."""
    return f"evt_{event_id}"


def _details(raw: Any) -> dict[str, Any]:
    if not isinstance(raw, str) or not raw:
        return {}
    try:
        value = json.loads(raw)
    except ValueError:
        return {"value": raw}
    return value if isinstance(value, dict) else {"value": value}


def message_of(policy: WebhookPolicy, delivery: Delivery, registry: str) -> WebhookMessage:
    """The message a delivery sends."""
    event = delivery.event
    repository = event.get("repository")
    details = _details(event.get("data"))
    project = repository.partition("/")[0] if repository else details.get("project")
    operator = details.pop("operator", None)
    media_type = details.pop("media_type", None)
    return WebhookMessage(
        message_id=message_id(delivery.event_id),
        type=delivery.type,
        time=delivery.event_time,
        source=policy.source,
        registry=registry,
        project=project or policy.project,
        repository=repository,
        digest=event.get("digest"),
        tag=event.get("tag"),
        operator=operator if isinstance(operator, str) else None,
        media_type=media_type if isinstance(media_type, str) else None,
        data=details,
    )


def ping_message(policy: WebhookPolicy, registry: str) -> WebhookMessage:
    """A test message (type ``ping``, a fresh id) for the policy's target."""
    return WebhookMessage(
        message_id=f"ping_{uuid.uuid4().hex}",
        type="ping",
        time=datetime.now(UTC),
        source=policy.source,
        registry=registry,
        project=policy.project,
        data={"policy": policy.name},
    )


@dataclass(frozen=True, slots=True)
class SignedRequest:
    headers: dict[str, str]
    body: bytes


def signed_request(
    box: SecretBox, policy: WebhookPolicy, message: WebhookMessage, now: datetime | None = None
) -> SignedRequest:
    """The headers and body of one attempt, signed with the policy's live secrets."""
    when = now or datetime.now(UTC)
    headers, body = render(policy.payload_format, message)
    secrets = signing_secrets(box, policy, when)
    headers = {k.lower(): v for k, v in headers.items()}
    headers |= signed_headers(secrets, message.message_id, int(when.timestamp()), body)
    headers["idempotency-key"] = message.message_id
    headers["user-agent"] = USER_AGENT
    auth = auth_header(box, policy)
    if auth is not None:
        headers[auth[0]] = auth[1]
    return SignedRequest(headers, body)


class TransportError(Exception):
    """A delivery got no HTTP answer (connection refused or closed, timeout); says why."""


@dataclass(frozen=True, slots=True)
class Answer:
    """A receiver's answer: status, ``Retry-After`` and the first bytes of the body."""

    status: int
    retry_after: str | None
    body: bytes


class WebhookHttp(Protocol):
    """How deliveries reach targets (``adapters.webhook_http``: SSRF-safe, no redirects)."""

    async def post(self, url: str, headers: Mapping[str, str], body: bytes) -> Answer:
        """POST ``body`` and return the answer (a 3xx too: never followed).

        Raises:
            OutboundRefusedError: The destination is not allowed (``core.outbound``).
            TransportError: No answer came.
        """
        ...
