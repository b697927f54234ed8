"""Metrics, access log, log context and trace span of every HTTP request.

``/v2`` requests are observed by the pipeline's request-start and request-end hooks
(:meth:`RequestObserver.around` puts them first and last), everything else Litestar
routes by :class:`ObserveMiddleware`. Both record the same families (``api.metrics``),
write one ``moorage.access`` line per request and set the request's log context
(``core.request_context``) and, when tracing is on, its server span.

Access lines go through :mod:`logging` unless the process hands the app a cheaper writer
of the same lines (``cli.access_lines``, when it writes JSON logs itself).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, replace
from typing import Any, Final, Protocol

from litestar.types import ASGIApp, Message, Receive, Send

from api.audit_middleware import REQUEST_ID_KEY, request_id_of
from api.metrics import ApiMetrics
from api.tracing import RequestTracer, Span
from core.observability_settings import ObservabilitySettings
from core.pipeline import Hooks, OCIRequest, OCIRoute
from core.request_context import CURRENT, RequestContext
from core.request_spans import RequestSpanSink

access_log = logging.getLogger("moorage.access")

#: The route template of each ``/v2`` endpoint (the ``operation`` label).
OCI_TEMPLATES: Final = {
    OCIRoute.PING: "/v2/",
    OCIRoute.CATALOG: "/v2/_catalog",
    OCIRoute.TAGS: "/v2/{name}/tags/list",
    OCIRoute.MANIFEST: "/v2/{name}/manifests/{reference}",
    OCIRoute.UPLOADS: "/v2/{name}/blobs/uploads/",
    OCIRoute.UPLOAD: "/v2/{name}/blobs/uploads/{uuid}",
    OCIRoute.BLOB: "/v2/{name}/blobs/{digest}",
    OCIRoute.REFERRERS: "/v2/{name}/referrers/{digest}",
    OCIRoute.UNKNOWN: "/v2/{unknown}",
}
_UPLOAD_ROUTES: Final = frozenset({OCIRoute.UPLOADS, OCIRoute.UPLOAD})
_TOKEN_ROUTES: Final = frozenset({"/auth/token"})
_STATE: Final = "moorage_observed"
_UNAUTHORIZED: Final = 401


class AccessLines(Protocol):
    """Writes the access line of each answered request (logger ``moorage.access``)."""

    def write(self, context: RequestContext, status: int, seconds: float, path: str) -> None:
        """Write (or buffer) the line of one request answered with ``status``."""

    def close(self) -> None:
        """Write anything buffered (the app shuts down)."""


class LoggedAccess:
    """Access lines as log records, through whatever handlers the process has."""

    def write(self, context: RequestContext, status: int, seconds: float, path: str) -> None:
        """Log the line at INFO with ``status``, ``duration_ms`` and ``path`` as extras."""
        access_log.info(
            "%s %s %d",
            context.method,
            path,
            status,
            extra={"status": status, "duration_ms": round(seconds * 1000, 3), "path": path},
        )

    def close(self) -> None:
        """Nothing is buffered."""


@dataclass(slots=True)
class _Observed:
    """What the start of a request left for its end."""

    started: float
    context: RequestContext
    upload: bool
    span: Span | None


class RequestObserver:
    """Observes requests: metrics (optional), access log (optional), log context, trace."""

    def __init__(
        self,
        metrics: ApiMetrics | None,
        *,
        access: AccessLines | None,
        tracer: RequestTracer | None = None,
    ) -> None:
        self.metrics = metrics
        self.access = access
        self.tracer = tracer

    def close(self) -> None:
        """Write what the access lines, metrics and request spans still hold (shutdown)."""
        if self.access is not None:
            self.access.close()
        if self.metrics is not None:
            self.metrics.close()
        if self.tracer is not None:
            self.tracer.close()

    def around(self, hooks: Hooks) -> Hooks:
        """``hooks`` with this observer's start hook first and end hook last."""
        return replace(
            hooks,
            request_start=(self.started, *hooks.request_start),
            request_end=(*hooks.request_end, self.ended),
        )

    async def started(self, request: OCIRequest, /) -> None:
        """The ``/v2`` request-start hook."""
        operation = OCI_TEMPLATES[request.route]
        context = RequestContext(request.request_id, operation, request.method, request.notes)
        CURRENT.set(context)
        upload = request.route in _UPLOAD_ROUTES
        span = (
            None
            if self.tracer is None
            else self.tracer.start(
                request.method, operation, request.headers, context, current=False
            )
        )
        request.notes[_STATE] = _Observed(time.perf_counter(), context, upload, span)
        if self.metrics is not None:
            self.metrics.started(operation, upload=upload)

    async def ended(self, request: OCIRequest, status: int, /) -> None:
        """The ``/v2`` request-end hook."""
        observed = request.notes.get(_STATE)
        if not isinstance(observed, _Observed):
            return
        seconds = time.perf_counter() - observed.started
        operation = observed.context.route
        metrics = self.metrics
        if metrics is not None:
            metrics.ended(
                operation,
                request.method,
                status,
                seconds,
                upload=observed.upload,
                received=request.received,
                sent=request.sent,
            )
            if status == _UNAUTHORIZED:
                metrics.auth_failures.labels("v2").inc()
        if self.access is not None:
            self.access.write(observed.context, status, seconds, request.path)
        if observed.span is not None:
            observed.span.finish(status)


class ObserveMiddleware:
    """Observes the requests Litestar routes itself (``/api/v1``, ``/auth``, health)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Receive, send: Send) -> None:
        path = str(scope.get("path", ""))
        observer = scope["app"].state.get("observer")
        if scope["type"] != "http" or path.startswith("/v2") or observer is None:
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        method = str(scope["method"])
        operation = str(scope.get("path_template") or "unrouted")
        slot = scope.get("moorage_audit")
        notes: dict[str, Any] = slot if isinstance(slot, dict) else {}
        request_id = scope.get(REQUEST_ID_KEY) or request_id_of(scope)
        context = RequestContext(request_id, operation, method, notes)
        CURRENT.set(context)
        tracer = observer.tracer
        span = (
            None if tracer is None else tracer.start(method, operation, scope["headers"], context)
        )
        status = 500

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            seconds = time.perf_counter() - started
            _record(observer, operation, method, status, seconds)
            if observer.access is not None:
                observer.access.write(context, status, seconds, path)
            if span is not None:
                span.finish(status)


def _record(
    observer: RequestObserver, operation: str, method: str, status: int, seconds: float
) -> None:
    metrics = observer.metrics
    if metrics is None:
        return
    metrics.observe(operation, method, status, seconds)
    if status == _UNAUTHORIZED:
        metrics.auth_failures.labels("token" if operation in _TOKEN_ROUTES else "api").inc()
    elif operation in _TOKEN_ROUTES and status < 300:  # noqa: PLR2004 - any 2xx
        metrics.tokens_issued.labels("token").inc()


def build_observer(
    settings: ObservabilitySettings,
    access_lines: AccessLines | None = None,
    request_spans: RequestSpanSink | None = None,
) -> RequestObserver:
    """The observer an app's settings ask for.

    ``access_lines`` writes the access lines when they are on (default: through logging).
    Sampled requests' spans go to ``request_spans``; with tracing on but no sink, nothing
    is traced.
    """
    metrics = ApiMetrics() if settings.metrics.enabled else None
    tracing = settings.tracing
    tracer = (
        RequestTracer(request_spans, tracing.sample_ratio)
        if tracing.enabled and request_spans is not None
        else None
    )
    access = (access_lines or LoggedAccess()) if settings.logs.access else None
    return RequestObserver(metrics, access=access, tracer=tracer)
