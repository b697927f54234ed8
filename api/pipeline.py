"""The ``/v2`` request pipeline: the one way into the OCI data plane.

Every request under ``/v2`` comes here first (``MoorageApp`` hands them over). It matches
the route once (``api.oci_routes``), records the request for the hooks
(:class:`~core.pipeline.OCIRequest`, ``scope["moorage_oci"]``), runs the request-start
hooks, then lets the manifest fast path (``api.manifest_shortcut``) answer what it can and
the framework's routing (``api.controllers.oci``) everything else, and finally runs the
request-end hooks (audit among them) with the status sent. A request body that stalls
(``api.receive_limits``) is answered ``408`` on either path. Both paths authenticate with
the same parser and grant check, and call the same manifest and blob hook points
(``api.hooks``), so a hook never depends on which path answered.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from api.audit_middleware import request_headers
from api.context import Registry
from api.credentials import scheme_of
from api.hooks import OCI_KEY, send_oci_error
from api.manifest_shortcut import ManifestShortcuts
from api.oci_routes import match_path
from api.principal import AUDIT_KEY
from api.receive_limits import BODY_METHODS, BodyTimeoutError
from core.errors import RegistryError
from core.pipeline import OCIRequest, request_ended, request_started

ASGI = Callable[[Any, Any, Any], Awaitable[None]]


def is_oci(scope: Any) -> bool:
    """Whether an ASGI scope is a ``/v2`` HTTP request (the pipeline's to answer)."""
    path: str = scope.get("path", "")
    return scope["type"] == "http" and (path == "/v2" or path.startswith("/v2/"))


class OCIPipeline:
    """Runs every ``/v2`` request through the hook points, on the fast or the full path."""

    def __init__(self, registry: Registry, full: ASGI, fast: ManifestShortcuts | None) -> None:
        self._registry = registry
        self._full = full
        #: The manifest fast path (``None``: every request takes the full path).
        self.fast = fast

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        path: str = scope["path"]
        found = match_path(path)
        client = scope.get("client")
        request_id, authorization, user_agent = request_headers(scope)
        request = OCIRequest(
            method=scope["method"],
            path=path,
            route=found.route,
            repository=found.name,
            reference=found.arg,
            request_id=request_id,
            client=client[0] if client else "",
            user_agent=user_agent,
            auth_scheme=scheme_of(authorization),
            headers=scope.get("headers", ()),
        )
        scope[OCI_KEY] = request
        scope[AUDIT_KEY] = request.notes
        request_id_bytes = request_id.encode()
        status = 500

        counts_body = request.method != "HEAD"

        async def sending(message: Any) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
                headers = message.get("headers", [])
                if counts_body:
                    request.sent = _content_length(headers)
                message["headers"] = [*headers, (b"x-request-id", request_id_bytes)]
            await send(message)

        if request.method in BODY_METHODS:
            receive = _counting(receive, request)

        hooks = self._registry.hooks
        try:
            if hooks.request_start:
                try:
                    await request_started(hooks, request)
                except RegistryError as refused:
                    await send_oci_error(sending, request.method, refused)
                    return
            await self._dispatch(scope, request, receive, sending)
        finally:
            await request_ended(hooks, request, status)

    async def _dispatch(self, scope: Any, request: OCIRequest, receive: Any, send: Any) -> None:
        """The fast path if it answers, else the full path."""
        try:
            if self.fast is not None:
                going_on = await self.fast.answer(scope, request, receive, send)
                if going_on is None:
                    return
                receive = going_on
            await self._full(scope, receive, send)
        except BodyTimeoutError as stalled:  # NOTE: the full path answers its own
            await send_oci_error(send, request.method, stalled)


def _content_length(headers: Any) -> int:
    """The ``Content-Length`` of a response's headers (0 when absent or malformed)."""
    for key, value in headers:
        if key == b"content-length":
            return int(value) if value.isdigit() else 0
    return 0


def _counting(receive: Any, request: OCIRequest) -> Any:
    """``receive`` that adds the body bytes it hands on to ``request.received``."""

    async def counted() -> Any:
        message = await receive()
        request.received += len(message.get("body", b""))
        return message

    return counted
