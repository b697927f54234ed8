"""Payload formats of webhook deliveries: the same event rendered five ways.

- ``cloudevents`` -- CloudEvents 1.0 structured JSON (``application/cloudevents+json``);
- ``cloudevents-binary`` -- CloudEvents 1.0 binary mode (``ce-*`` headers, JSON data);
- ``harbor`` -- Harbor's default JSON (``type``, ``occur_at``, ``operator``,
  ``event_data.resources`` and ``event_data.repository``), for existing receivers;
- ``distribution`` -- a distribution notification envelope (``{"events": [...]}``, media
  type ``application/vnd.docker.distribution.events.v1+json``), what Kraken consumes;
- ``slack`` -- a Slack incoming-webhook message (``{"text": ...}``).

Every format is a pure function of a :class:`WebhookMessage`, so a retry or a redelivery
sends the same body (the signature's timestamp is the only thing that changes).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, Final

from cloudevents.core.bindings.http import to_binary_event, to_structured_event
from cloudevents.core.v1.event import CloudEvent

from core.webhook_events import HARBOR_TYPES, WebhookEvent

#: Prefix of our CloudEvents ``type`` values.
TYPE_PREFIX: Final = "io.moorage."
DISTRIBUTION_MEDIA_TYPE: Final = "application/vnd.docker.distribution.events.v1+json"


class PayloadFormat(StrEnum):
    CLOUDEVENTS = "cloudevents"
    CLOUDEVENTS_BINARY = "cloudevents-binary"
    HARBOR = "harbor"
    DISTRIBUTION = "distribution"
    SLACK = "slack"


@dataclass(frozen=True, slots=True)
class WebhookMessage:
    """One event as a webhook delivers it.

    Attributes:
        message_id: The idempotency key (``webhook-id``, CloudEvents ``id``): the event's.
        type: The webhook event type (a :class:`WebhookEvent` value, or ``ping``).
        time: When the event happened (UTC).
        source: The CloudEvents ``source`` (``/projects/<p>/webhooks/<id>`` or
            ``/system/webhooks/<id>``).
        registry: The registry's host (for resource URLs), may be empty.
        data: The event's own details (run reports, quota usage).
    """

    message_id: str
    type: str
    time: datetime
    source: str
    registry: str = ""
    project: str | None = None
    repository: str | None = None
    digest: str | None = None
    tag: str | None = None
    operator: str | None = None
    media_type: str | None = None
    data: dict[str, Any] = field(default_factory=dict)

    def body(self) -> dict[str, Any]:
        """Our own event data (the CloudEvents ``data``)."""
        found: dict[str, Any] = {
            "project": self.project,
            "repository": self.repository,
            "digest": self.digest,
            "tag": self.tag,
        }
        if self.operator:
            found["operator"] = self.operator
        if self.data:
            found["details"] = self.data
        return {k: v for k, v in found.items() if v is not None}

    def resource_url(self) -> str | None:
        if not self.repository:
            return None
        reference = f":{self.tag}" if self.tag else (f"@{self.digest}" if self.digest else "")
        host = f"{self.registry}/" if self.registry else ""
        return f"{host}{self.repository}{reference}"


Rendered = tuple[dict[str, str], bytes]


def _dumps(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), sort_keys=True).encode()


def _cloudevent(message: WebhookMessage) -> CloudEvent:
    attributes: dict[str, Any] = {
        "id": message.message_id,
        "source": message.source,
        "type": TYPE_PREFIX + message.type,
        "specversion": "1.0",
        "time": message.time,
        "datacontenttype": "application/json",
    }
    if message.repository:
        attributes["subject"] = message.resource_url()
    return CloudEvent(attributes=attributes, data=message.body())


def _structured(message: WebhookMessage) -> Rendered:
    http = to_structured_event(_cloudevent(message))
    return dict(http.headers), http.body


def _binary(message: WebhookMessage) -> Rendered:
    http = to_binary_event(_cloudevent(message))
    return dict(http.headers), http.body


def _harbor(message: WebhookMessage) -> Rendered:
    namespace, _, name = (message.repository or "").partition("/")
    event_data: dict[str, Any] = {}
    if message.repository:
        event_data["resources"] = [
            {
                "digest": message.digest,
                "tag": message.tag,
                "resource_url": message.resource_url(),
            }
        ]
        event_data["repository"] = {
            "name": name,
            "namespace": namespace,
            "repo_full_name": message.repository,
        }
    if message.data:
        event_data["custom_attributes"] = message.data
    try:
        kind = HARBOR_TYPES[WebhookEvent(message.type)]
    except ValueError:
        kind = message.type.upper().replace(".", "_")
    payload = {
        "type": kind,
        "occur_at": int(message.time.timestamp()),
        "operator": message.operator or "",
        "event_data": event_data,
    }
    return {"content-type": "application/json"}, _dumps(payload)


_DISTRIBUTION_ACTIONS = {
    WebhookEvent.ARTIFACT_PUSHED: "push",
    WebhookEvent.TAG_PUSHED: "push",
    WebhookEvent.ARTIFACT_PULLED: "pull",
    WebhookEvent.ARTIFACT_DELETED: "delete",
    WebhookEvent.TAG_DELETED: "delete",
}


def _distribution_event(message: WebhookMessage) -> dict[str, Any]:
    try:
        action = _DISTRIBUTION_ACTIONS.get(WebhookEvent(message.type), message.type)
    except ValueError:
        action = message.type
    target: dict[str, Any] = {"repository": message.repository, "digest": message.digest}
    if message.media_type:
        target["mediaType"] = message.media_type
    if message.tag:
        target["tag"] = message.tag
    url = message.resource_url()
    if url and message.registry and message.repository and message.digest:
        target["url"] = (
            f"https://{message.registry}/v2/{message.repository}/manifests/{message.digest}"
        )
    event = {
        "id": message.message_id,
        "timestamp": message.time.isoformat(),
        "action": action,
        "target": {k: v for k, v in target.items() if v is not None},
        "source": {"addr": message.registry, "instanceID": message.source},
    }
    if message.operator:
        event["actor"] = {"name": message.operator}
    return event


def distribution_envelope(messages: Sequence[WebhookMessage]) -> Rendered:
    """One distribution notification envelope carrying an event per message, in order."""
    events = [_distribution_event(m) for m in messages]
    return {"content-type": DISTRIBUTION_MEDIA_TYPE}, _dumps({"events": events})


def _distribution(message: WebhookMessage) -> Rendered:
    return distribution_envelope([message])


def _slack(message: WebhookMessage) -> Rendered:
    what = message.resource_url() or message.project or "the registry"
    text = f"Moorage: {message.type} on {what}"
    if message.operator:
        text += f" by {message.operator}"
    if message.data:
        text += f"\n```{json.dumps(message.data, sort_keys=True)[:1500]}```"
    return {"content-type": "application/json"}, _dumps({"text": text})


_RENDERERS: Final[dict[PayloadFormat, Callable[[WebhookMessage], Rendered]]] = {
    PayloadFormat.CLOUDEVENTS: _structured,
    PayloadFormat.CLOUDEVENTS_BINARY: _binary,
    PayloadFormat.HARBOR: _harbor,
    PayloadFormat.DISTRIBUTION: _distribution,
    PayloadFormat.SLACK: _slack,
}


def render(payload_format: PayloadFormat, message: WebhookMessage) -> Rendered:
    """The headers (content type, ``ce-*``) and body of ``message`` in ``payload_format``."""
    return _RENDERERS[payload_format](message)
