"""Management API: webhook policies, their delivery log, redelivery and test pings.

Per project under ``/api/v1/projects/{p}/webhooks`` (project admins manage, maintainers
read: Harbor's ``notification-policy`` rights) and system-wide under ``/api/v1/webhooks``
(system administrators). ``POST`` answers the signing secret once; the secret and the
auth header are never answered again (``has_auth_header`` says whether one is set).
"""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any

import anyio.to_thread
from litestar import Controller, Request, Response, delete, get, post, put
from litestar.di import NamedDependency
from litestar.params import FromPath, FromQuery, JSONBody
from pydantic import BaseModel, ConfigDict, Field

from api.context import registry_of
from api.pagination import IDS, Page, PageParams
from api.principal import api_caller, require_caller
from api.webhook_wiring import webhook_box_of, webhook_http_of, webhooks_of
from core.errors import InvalidInputError
from core.outbound import OutboundRefusedError
from core.paging import window
from core.webhook_delivery import TransportError, ping_message, signed_request
from core.webhook_events import WebhookEvent
from core.webhook_payloads import PayloadFormat
from core.webhook_retry import Verdict, verdict
from core.webhooks import Delivery, DeliveryStatus, WebhookPolicy, WebhookService, excerpt

_EXCERPT = 1024


class WebhookIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=128)
    url: str = Field(min_length=1, max_length=2048)
    events: list[WebhookEvent] = Field(min_length=1, max_length=32)
    payload_format: PayloadFormat = PayloadFormat.CLOUDEVENTS
    #: ``Name: value`` or a bare ``Authorization`` value; on update ``None`` keeps the
    #: stored one and ``""`` removes it.
    auth_header: str | None = Field(default=None, max_length=4096)
    enabled: bool = True


class WebhookOut(BaseModel):
    id: int
    project: str | None
    name: str
    url: str
    events: list[str]
    payload_format: str
    enabled: bool
    paused: bool
    paused_reason: str | None
    failing_since: str | None
    has_auth_header: bool
    secret_rotating_until: str | None
    created_by: str
    created_at: str
    #: The signing secret, answered once (on creation and rotation).
    secret: str | None = None

    @classmethod
    def of(cls, policy: WebhookPolicy, secret: str | None = None) -> WebhookOut:
        return cls(
            id=policy.id,
            project=policy.project,
            name=policy.name,
            url=policy.url,
            events=list(policy.events),
            payload_format=str(policy.payload_format),
            enabled=policy.enabled,
            paused=policy.paused,
            paused_reason=policy.paused_reason,
            failing_since=_iso(policy.failing_since),
            has_auth_header=policy.auth_header_sealed is not None,
            secret_rotating_until=_iso(policy.previous_secret_until),
            created_by=policy.created_by,
            created_at=policy.created_at.isoformat(),
            secret=secret,
        )


class AttemptOut(BaseModel):
    attempted_at: str
    status_code: int | None
    latency_ms: int
    error: str | None
    response_excerpt: str | None


class DeliveryOut(BaseModel):
    id: int
    event_id: int
    generation: int
    type: str
    repository: str | None
    event_time: str
    status: str
    attempts: int
    next_attempt_at: str | None
    last_status_code: int | None
    last_error: str | None
    finished_at: str | None
    history: list[AttemptOut]

    @classmethod
    def of(cls, delivery: Delivery) -> DeliveryOut:
        return cls(
            id=delivery.id,
            event_id=delivery.event_id,
            generation=delivery.generation,
            type=delivery.type,
            repository=delivery.repository,
            event_time=delivery.event_time.isoformat(),
            status=str(delivery.status),
            attempts=delivery.attempts,
            next_attempt_at=_iso(
                delivery.next_attempt_at if delivery.status == "pending" else None
            ),
            last_status_code=delivery.last_status_code,
            last_error=delivery.last_error,
            finished_at=_iso(delivery.finished_at),
            history=[
                AttemptOut(
                    attempted_at=a.attempted_at.isoformat(),
                    status_code=a.status_code,
                    latency_ms=a.latency_ms,
                    error=a.error,
                    response_excerpt=a.response_excerpt,
                )
                for a in delivery.history
            ],
        )


class WebhookPage(Page[WebhookOut]):
    """Webhook policies, by id."""


class DeliveryPage(Page[DeliveryOut]):
    """A policy's deliveries, newest first."""


def _policy_id(policy: WebhookPolicy) -> int:
    return policy.id


def _delivery_id(delivery: Delivery) -> int:
    return delivery.id


class RedeliverIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    event_id: int | None = None
    since: datetime | None = None
    until: datetime | None = None


class RedeliverOut(BaseModel):
    queued: int


class SecretOut(BaseModel):
    secret: str
    previous_valid_until: str | None


class PingOut(BaseModel):
    delivered: bool
    status_code: int | None
    latency_ms: int
    error: str | None
    response_excerpt: str | None


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _service(request: Request[Any, Any, Any]) -> WebhookService:
    return webhooks_of(registry_of(request))


class _Operations:
    """The webhook operations, for one scope (a project, or ``None``: system-wide)."""

    @staticmethod
    async def policies(
        request: Request[Any, Any, Any], project: str | None, page: PageParams
    ) -> Response[WebhookPage]:
        caller = await api_caller(request, registry_of(request))
        service = _service(request)

        def fetch(after: int | None, count: int) -> list[WebhookPolicy]:
            return window(service.policies(caller, project), _policy_id, after, count)

        found = await page.fetch(fetch, key=_policy_id, cursor=IDS)
        return found.respond(request, WebhookPage, [WebhookOut.of(p) for p in found.items])

    @staticmethod
    async def create(
        request: Request[Any, Any, Any], project: str | None, data: WebhookIn
    ) -> Response[WebhookOut]:
        caller = await require_caller(request, registry_of(request))
        created = await anyio.to_thread.run_sync(_service(request).create, caller, project, data)
        return Response(WebhookOut.of(created.policy, created.secret), status_code=201)

    @staticmethod
    async def read(request: Request[Any, Any, Any], project: str | None, hook: int) -> WebhookOut:
        caller = await api_caller(request, registry_of(request))
        policy = await anyio.to_thread.run_sync(_service(request).get, caller, project, hook)
        return WebhookOut.of(policy)

    @staticmethod
    async def update(
        request: Request[Any, Any, Any], project: str | None, hook: int, data: WebhookIn
    ) -> WebhookOut:
        caller = await require_caller(request, registry_of(request))
        service = _service(request)
        policy = await anyio.to_thread.run_sync(service.update, caller, project, hook, data)
        return WebhookOut.of(policy)

    @staticmethod
    async def remove(request: Request[Any, Any, Any], project: str | None, hook: int) -> None:
        caller = await require_caller(request, registry_of(request))
        await anyio.to_thread.run_sync(_service(request).delete, caller, project, hook)

    @staticmethod
    async def resume(request: Request[Any, Any, Any], project: str | None, hook: int) -> WebhookOut:
        caller = await require_caller(request, registry_of(request))
        policy = await anyio.to_thread.run_sync(_service(request).resume, caller, project, hook)
        return WebhookOut.of(policy)

    @staticmethod
    async def rotate(request: Request[Any, Any, Any], project: str | None, hook: int) -> SecretOut:
        caller = await require_caller(request, registry_of(request))
        service = _service(request)
        secret = await anyio.to_thread.run_sync(service.rotate_secret, caller, project, hook)
        policy = await anyio.to_thread.run_sync(service.get, caller, project, hook)
        return SecretOut(secret=secret, previous_valid_until=_iso(policy.previous_secret_until))

    @staticmethod
    async def deliveries(
        request: Request[Any, Any, Any],
        project: str | None,
        hook: int,
        page: PageParams,
        status: str | None,
    ) -> Response[DeliveryPage]:
        if status is not None and status not in set(DeliveryStatus):
            raise InvalidInputError("status is pending, delivered or failed", field="status")
        caller = await api_caller(request, registry_of(request))
        service = _service(request)

        def fetch(before: int | None, count: int) -> list[Delivery]:
            # Newest first: the cursor is the smallest id of the page before.
            return list(
                service.deliveries(
                    caller, project, hook, limit=count, before_id=before, status=status
                )
            )

        found = await page.fetch(fetch, key=_delivery_id, cursor=IDS)
        return found.respond(request, DeliveryPage, [DeliveryOut.of(d) for d in found.items])

    @staticmethod
    async def redeliver(
        request: Request[Any, Any, Any], project: str | None, hook: int, data: RedeliverIn
    ) -> Response[RedeliverOut]:
        caller = await require_caller(request, registry_of(request))
        service = _service(request)
        queued = await anyio.to_thread.run_sync(
            lambda: service.redeliver(
                caller, project, hook, event_id=data.event_id, since=data.since, until=data.until
            )
        )
        return Response(RedeliverOut(queued=queued), status_code=202)

    @staticmethod
    async def ping(request: Request[Any, Any, Any], project: str | None, hook: int) -> PingOut:
        """Send a signed ``ping`` now and answer what the target said (nothing is stored)."""
        registry = registry_of(request)
        caller = await require_caller(request, registry)
        policy = await anyio.to_thread.run_sync(
            _service(request).ping_target, caller, project, hook
        )
        message = ping_message(policy, request.url.netloc)
        signed = await anyio.to_thread.run_sync(
            signed_request, webhook_box_of(registry), policy, message
        )
        started = time.monotonic()
        try:
            answer = await webhook_http_of(registry).post(policy.url, signed.headers, signed.body)
        except (OutboundRefusedError, TransportError) as exc:
            prefix = "refused: " if isinstance(exc, OutboundRefusedError) else ""
            latency = int((time.monotonic() - started) * 1000)
            return PingOut(
                delivered=False,
                status_code=None,
                latency_ms=latency,
                error=f"{prefix}{exc}",
                response_excerpt=None,
            )
        return PingOut(
            delivered=verdict(answer.status) is Verdict.DELIVERED,
            status_code=answer.status,
            latency_ms=int((time.monotonic() - started) * 1000),
            error=None,
            response_excerpt=excerpt(answer.body, _EXCERPT),
        )


_OPS = _Operations()


class ProjectWebhookController(Controller):
    path = "/api/v1/projects/{project:str}/webhooks"
    tags = ["webhooks"]  # noqa: RUF012

    @get("/", summary="Webhook policies of a project")
    async def list_webhooks(
        self,
        request: Request[Any, Any, Any],
        project: FromPath[str],
        page: NamedDependency[PageParams],
    ) -> Response[WebhookPage]:
        return await _OPS.policies(request, project, page)

    @post("/", summary="Create a webhook policy (answers its signing secret once)")
    async def create_webhook(
        self, request: Request[Any, Any, Any], project: FromPath[str], data: JSONBody[WebhookIn]
    ) -> Response[WebhookOut]:
        return await _OPS.create(request, project, data)

    @get("/{hook:int}", summary="One webhook policy")
    async def read_webhook(
        self, request: Request[Any, Any, Any], project: FromPath[str], hook: FromPath[int]
    ) -> WebhookOut:
        return await _OPS.read(request, project, hook)

    @put("/{hook:int}", summary="Replace a webhook policy's settings")
    async def update_webhook(
        self,
        request: Request[Any, Any, Any],
        project: FromPath[str],
        hook: FromPath[int],
        data: JSONBody[WebhookIn],
    ) -> WebhookOut:
        return await _OPS.update(request, project, hook, data)

    @delete("/{hook:int}", summary="Delete a webhook policy and its delivery log")
    async def delete_webhook(
        self, request: Request[Any, Any, Any], project: FromPath[str], hook: FromPath[int]
    ) -> None:
        await _OPS.remove(request, project, hook)

    @post("/{hook:int}/resume", summary="Enable a paused or disabled webhook", status_code=200)
    async def resume_webhook(
        self, request: Request[Any, Any, Any], project: FromPath[str], hook: FromPath[int]
    ) -> WebhookOut:
        return await _OPS.resume(request, project, hook)

    @post("/{hook:int}/secret", summary="Rotate the signing secret", status_code=200)
    async def rotate_secret(
        self, request: Request[Any, Any, Any], project: FromPath[str], hook: FromPath[int]
    ) -> SecretOut:
        return await _OPS.rotate(request, project, hook)

    @get("/{hook:int}/deliveries", summary="Delivery log, newest first")
    async def list_deliveries(
        self,
        request: Request[Any, Any, Any],
        project: FromPath[str],
        hook: FromPath[int],
        page: NamedDependency[PageParams],
        status: FromQuery[str | None] = None,
    ) -> Response[DeliveryPage]:
        return await _OPS.deliveries(request, project, hook, page, status)

    @post("/{hook:int}/redeliver", summary="Deliver one event or a time range again")
    async def redeliver(
        self,
        request: Request[Any, Any, Any],
        project: FromPath[str],
        hook: FromPath[int],
        data: JSONBody[RedeliverIn],
    ) -> Response[RedeliverOut]:
        return await _OPS.redeliver(request, project, hook, data)

    @post("/{hook:int}/ping", summary="Send a signed test ping now", status_code=200)
    async def ping_webhook(
        self, request: Request[Any, Any, Any], project: FromPath[str], hook: FromPath[int]
    ) -> PingOut:
        return await _OPS.ping(request, project, hook)


class SystemWebhookController(Controller):
    path = "/api/v1/webhooks"
    tags = ["webhooks"]  # noqa: RUF012

    @get("/", summary="System-wide webhook policies")
    async def list_webhooks(
        self, request: Request[Any, Any, Any], page: NamedDependency[PageParams]
    ) -> Response[WebhookPage]:
        return await _OPS.policies(request, None, page)

    @post("/", summary="Create a system-wide webhook policy")
    async def create_webhook(
        self, request: Request[Any, Any, Any], data: JSONBody[WebhookIn]
    ) -> Response[WebhookOut]:
        return await _OPS.create(request, None, data)

    @get("/{hook:int}", summary="One system-wide webhook policy")
    async def read_webhook(
        self, request: Request[Any, Any, Any], hook: FromPath[int]
    ) -> WebhookOut:
        return await _OPS.read(request, None, hook)

    @put("/{hook:int}", summary="Replace a system-wide webhook policy's settings")
    async def update_webhook(
        self, request: Request[Any, Any, Any], hook: FromPath[int], data: JSONBody[WebhookIn]
    ) -> WebhookOut:
        return await _OPS.update(request, None, hook, data)

    @delete("/{hook:int}", summary="Delete a system-wide webhook policy")
    async def delete_webhook(self, request: Request[Any, Any, Any], hook: FromPath[int]) -> None:
        await _OPS.remove(request, None, hook)

    @post("/{hook:int}/resume", summary="Enable a paused or disabled webhook", status_code=200)
    async def resume_webhook(
        self, request: Request[Any, Any, Any], hook: FromPath[int]
    ) -> WebhookOut:
        return await _OPS.resume(request, None, hook)

    @post("/{hook:int}/secret", summary="Rotate the signing secret", status_code=200)
    async def rotate_secret(
        self, request: Request[Any, Any, Any], hook: FromPath[int]
    ) -> SecretOut:
        return await _OPS.rotate(request, None, hook)

    @get("/{hook:int}/deliveries", summary="Delivery log, newest first")
    async def list_deliveries(
        self,
        request: Request[Any, Any, Any],
        hook: FromPath[int],
        page: NamedDependency[PageParams],
        status: FromQuery[str | None] = None,
    ) -> Response[DeliveryPage]:
        return await _OPS.deliveries(request, None, hook, page, status)

    @post("/{hook:int}/redeliver", summary="Deliver one event or a time range again")
    async def redeliver(
        self, request: Request[Any, Any, Any], hook: FromPath[int], data: JSONBody[RedeliverIn]
    ) -> Response[RedeliverOut]:
        return await _OPS.redeliver(request, None, hook, data)

    @post("/{hook:int}/ping", summary="Send a signed test ping now", status_code=200)
    async def ping_webhook(self, request: Request[Any, Any, Any], hook: FromPath[int]) -> PingOut:
        return await _OPS.ping(request, None, hook)
