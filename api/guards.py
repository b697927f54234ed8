"""Role guards of the management API: who may reach a handler at all.

Guards run before the handler and before its body is read, so a caller without the role
learns nothing about the route's schema. The rules themselves live in ``core``
(``core.rbac``'s matrix through :meth:`AccessControl.require`, and
:func:`require_system_admin`); a guard only finds the caller and asks them. Answers:

- :func:`signed_in`: anonymous ``401`` (with the ``WWW-Authenticate`` challenge), bad
  credentials ``401``, throttled ``429``.
- :func:`system_admin`: as :func:`signed_in`, then ``403`` for anyone but a system
  administrator.
- :func:`project_permission` ``(resource, action)``: for the ``{project}`` path
  parameter, ``404`` when the project does not exist or the caller may not read it (the
  two answer alike), ``403`` when it may read it but its roles lack the permission.
  Anonymous callers are judged like anyone (public projects are readable); put
  :func:`signed_in` first where anonymous callers must get ``401``.

Adopting them: ``@get("/things", guards=[signed_in, project_permission("thing", "list")])``
(or ``guards=`` on a controller). The caller they find is kept on the request, so the
handler's ``caller`` dependency (``api.dependencies``) does not check credentials again.
Services keep their own checks: a guard is the door, not the only lock.
"""

from __future__ import annotations

from typing import Any

import anyio.to_thread
from litestar import Request
from litestar.connection import ASGIConnection
from litestar.handlers.base import BaseRouteHandler
from litestar.types import Guard

from api.context import identity_of, registry_of
from api.principal import api_caller, require_caller
from core.access import Identity
from core.services.access_control import require_system_admin


def _request(connection: ASGIConnection[Any, Any, Any, Any]) -> Request[Any, Any, Any]:
    if not isinstance(connection, Request):  # pragma: no cover - HTTP routes only
        raise TypeError("management guards serve HTTP requests")
    return connection


async def _caller(connection: ASGIConnection[Any, Any, Any, Any], *, anonymous: bool) -> Identity:
    request = _request(connection)
    registry = registry_of(request)
    if anonymous:
        return await api_caller(request, registry)
    return await require_caller(request, registry)


async def signed_in(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    """Any authenticated caller; anonymous ones get ``401``."""
    await _caller(connection, anonymous=False)


async def system_admin(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    """System administrators only (``401`` anonymous, ``403`` others)."""
    require_system_admin(await _caller(connection, anonymous=False))


def project_permission(resource: str, action: str) -> Guard:
    """A guard: the caller holds ``(resource, action)`` in the path's ``{project}``."""

    async def guard(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
        caller = await _caller(connection, anonymous=True)
        project = str(connection.path_params["project"])
        require = identity_of(registry_of(_request(connection))).access.require
        await anyio.to_thread.run_sync(require, caller, project, resource, action)

    guard.__name__ = f"project_permission_{resource}_{action}".replace("-", "_")
    return guard
