"""One audit event per request on every audited path.

``/v2`` requests are recorded by the pipeline's request-end hook (:class:`AuditRecorder`,
registered by ``create_app``); ``/auth/`` and ``/api/v1/`` by the ASGI middleware here.
Both hand the request a slot (``scope["moorage_audit"]``) where authentication notes the
caller, capture the response status, add ``X-Request-ID``, and enqueue the event after
the response (the audit writer thread stores it; the request pays a queue append).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from litestar.types import ASGIApp, Message, Receive, Scope, Send

from api.context import Registry
from api.credentials import scheme_of
from api.request_ids import new_request_id
from core.access import Identity
from core.audit import AuditEvent, classify, classify_oci, result_of
from core.pipeline import OCIRequest

#: Audited by the middleware (``/v2`` is audited by the pipeline).
AUDITED = ("/auth/", "/api/v1/")
SKIPPED = ("/api/v1/schema",)
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
#: Where the request id sent back in ``X-Request-ID`` is kept for inner middleware (logs);
#: the key the middleware below writes.
REQUEST_ID_KEY = "moorage_request_id"


def header_of(scope: Scope, name: bytes) -> str:
    for key, value in scope.get("headers", []):
        if key.lower() == name:
            return bytes(value).decode("latin-1")
    return ""


def _actor(slot: dict[str, Any], scheme: str) -> tuple[str, str, str]:
    identity = slot.get("identity")
    if isinstance(identity, Identity):
        return identity.subject, str(identity.kind), str(identity.method)
    attempted = str(slot.get("attempted", ""))
    return attempted, "unauthenticated" if scheme else "anonymous", scheme or "none"


class AuditMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = str(scope.get("path", ""))
        if str(scope["type"]) != "http" or not path.startswith(AUDITED) or path.startswith(SKIPPED):
            await self.app(scope, receive, send)
            return
        request_id = request_id_of(scope)
        scope["moorage_request_id"] = request_id  # type: ignore[typeddict-unknown-key]
        slot: dict[str, Any] = {}
        scope["moorage_audit"] = slot  # type: ignore[typeddict-unknown-key]
        status = 500

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
                headers = list(message.get("headers", []))
                headers.append((b"x-request-id", request_id.encode()))
                message["headers"] = headers
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            record_request(scope["app"].state["registry"], scope, slot, request_id, status)


def request_id_of(scope: Scope) -> str:
    """The client's ``X-Request-ID`` if it is well formed, else a new random one."""
    return _request_id(header_of(scope, b"x-request-id"))


def _request_id(given: str) -> str:
    return given if given and _REQUEST_ID.match(given) else new_request_id()


def request_headers(scope: Scope) -> tuple[str, str, str]:
    """``(request id, Authorization, User-Agent)`` of a request, its headers read once.

    The request id is :func:`request_id_of`'s; a header that is absent is ``""``, one
    sent twice is its first value, as :func:`header_of` gives them.
    """
    given = authorization = user_agent = None
    for key, value in scope.get("headers", []):
        name = key.lower()
        if name == b"authorization":
            if authorization is None:
                authorization = bytes(value).decode("latin-1")
        elif name == b"user-agent":
            if user_agent is None:
                user_agent = bytes(value).decode("latin-1")
        elif name == b"x-request-id" and given is None:
            given = bytes(value).decode("latin-1")
    return _request_id(given or ""), authorization or "", user_agent or ""


def _event(
    classified: tuple[str, str, str | None],
    actor: tuple[str, str, str],
    request_id: str,
    status: int,
    client: str,
    user_agent: str,
) -> AuditEvent:
    action, resource, project = classified
    return AuditEvent(
        time=datetime.now(UTC),
        request_id=request_id,
        actor=actor[0][:512],
        actor_kind=actor[1],
        auth_method=actor[2],
        action=action[:64],
        resource=resource[:1024],
        project=project[:63] if project else None,
        result=result_of(status),
        status=status,
        client=client[:64],
        user_agent=user_agent[:512],
    )


def record_request(
    registry: Registry, scope: Scope, slot: dict[str, Any], request_id: str, status: int
) -> None:
    """Queue the audit event of one answered request (``slot`` names the caller)."""
    if registry.identity is None:
        return
    scheme = scheme_of(header_of(scope, b"authorization"))
    client = scope.get("client")
    event = _event(
        classify(str(scope.get("method", "")), str(scope["path"])),
        _actor(slot, scheme),
        request_id,
        status,
        client[0] if client else "",
        header_of(scope, b"user-agent"),
    )
    registry.identity.audit.record(event)


class AuditRecorder:
    """The request-end hook that records a ``/v2`` request's audit event."""

    def __init__(self, registry: Registry) -> None:
        self._registry = registry

    async def __call__(self, request: OCIRequest, status: int, /) -> None:
        identity = self._registry.identity
        if identity is None:
            return
        event = _event(
            classify_oci(
                request.method,
                request.path,
                request.route,
                request.repository,
                request.reference,
            ),
            _actor(request.notes, request.auth_scheme),
            request.request_id,
            status,
            request.client,
            request.user_agent,
        )
        identity.audit.record(event)
