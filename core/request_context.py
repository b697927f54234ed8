"""The HTTP request a piece of code runs for, as log lines name it.

The API sets :data:`CURRENT` when a request starts (the ``/v2`` request-start hook, the
middleware elsewhere); the context variable follows the request into the threads it
hands work to (``anyio.to_thread`` copies the context), so every log line written for the
request carries its id, route and caller. Nothing here is read on the request path.
"""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from core.access import Identity
from core.request_spans import RequestSpan


@dataclass(slots=True)
class RequestContext:
    """One request: its id, route template, method, and where authentication notes the caller."""

    request_id: str
    route: str
    method: str
    #: The request's notes (``identity``: the authenticated caller; ``attempted``: the
    #: user name of credentials that failed).
    notes: dict[str, Any]
    #: With tracing on, a request that is not sampled: the ``traceparent`` its client sent
    #: (not sampled either) or ``""``; work it hands on stays unsampled (``core.trace_context``).
    unsampled: str | None = None
    #: With tracing on, a sampled request's server span: its ids for log lines and for the
    #: work it hands on (``core.trace_context``). On the ``/v2`` path the span is not made
    #: current in OpenTelemetry's context (``api.tracing``); this is where it is found.
    span: RequestSpan | None = None

    @property
    def principal(self) -> str:
        """The caller's subject, the user name it tried, or ``""`` (anonymous)."""
        identity = self.notes.get("identity")
        if isinstance(identity, Identity):
            return identity.subject
        return str(self.notes.get("attempted", ""))


#: The request the running code serves (``None`` outside requests).
CURRENT: ContextVar[RequestContext | None] = ContextVar("moorage_request", default=None)
