"""Management writes authenticate before their body is read.

Litestar validates a handler's body before the handler runs, so a handler that
authenticates its caller first thing still answered an anonymous ``POST`` with a bad body
``400``, telling a stranger the route's schema. This guard runs before the body is read:
every write (``POST``, ``PUT``, ``PATCH``, ``DELETE``) under ``/api/v1`` without valid
credentials gets ``401`` (bad credentials ``401``, throttled ``429``), whatever its body.
The identity it finds is kept on the request, so the handler does not check the
credentials a second time (``api.principal.api_caller``).
"""

from __future__ import annotations

from typing import Any

from litestar import Request
from litestar.connection import ASGIConnection
from litestar.handlers.base import BaseRouteHandler

from api.context import registry_of
from api.principal import require_caller

_READS = frozenset({"GET", "HEAD", "OPTIONS"})
_MANAGEMENT = "/api/v1/"


async def authenticated_writes(
    connection: ASGIConnection[Any, Any, Any, Any], _handler: BaseRouteHandler
) -> None:
    """Refuse an anonymous management write with ``401`` before its body is validated."""
    if not isinstance(connection, Request) or connection.method in _READS:
        return
    if not connection.url.path.startswith(_MANAGEMENT):
        return
    await require_caller(connection, registry_of(connection))
