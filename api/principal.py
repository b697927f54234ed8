"""Who is calling the management API, and the note the audit middleware reads.

``/api/v1`` accepts HTTP Basic (local password, personal access token, robot secret,
Keycloak service-account client id and secret) and Bearer tokens from Keycloak or a
trusted issuer. Registry tokens from ``/auth/token`` are not accepted here: they are
for ``/v2/`` only.
"""

from __future__ import annotations

from typing import Any

import anyio.to_thread
from litestar import Request

from api.context import Registry, identity_of
from api.credentials import Basic, Bearer, parse
from core.access import ANONYMOUS, Identity
from core.errors import OCIErrorCode, RegistryError
from core.services.authenticator import may_use_api

AUDIT_KEY = "moorage_audit"
#: Where the caller found once per request is kept (see ``api.write_guard``).
_CALLER_KEY = "moorage_caller"
_CHALLENGE = {"WWW-Authenticate": 'Basic realm="moorage", Bearer realm="moorage"'}


def note(request: Request[Any, Any, Any], identity: Identity | None = None, **extra: str) -> None:
    """Tell the audit middleware who the caller is (and anything else it should record)."""
    slot: Any = request.scope.get(AUDIT_KEY)
    if isinstance(slot, dict):
        if identity is not None:
            slot["identity"] = identity
        slot.update(extra)


def client_address(request: Request[Any, Any, Any]) -> str:
    return request.client.host if request.client else ""


async def api_caller(request: Request[Any, Any, Any], registry: Registry) -> Identity:
    """The caller's identity; anonymous without credentials, 401 for bad ones.

    Credentials are checked once per request: the identity is kept on the request.
    """
    known = request.state.get(_CALLER_KEY)
    if isinstance(known, Identity):
        return known
    services = identity_of(registry)
    credentials = parse(request.headers.get("authorization"))
    identity: Identity | None
    if isinstance(credentials, Basic):
        note(request, attempted=credentials.username)
        identity = await anyio.to_thread.run_sync(
            services.authenticator.basic,
            credentials.username,
            credentials.password,
            client_address(request),
        )
    elif isinstance(credentials, Bearer):
        identity = await anyio.to_thread.run_sync(services.authenticator.bearer, credentials.token)
    else:
        return ANONYMOUS
    if identity is None or not may_use_api(identity):
        raise RegistryError(OCIErrorCode.UNAUTHORIZED, "invalid credentials").with_headers(
            **_CHALLENGE
        )
    note(request, identity)
    request.state[_CALLER_KEY] = identity
    return identity


async def require_caller(request: Request[Any, Any, Any], registry: Registry) -> Identity:
    """Like :func:`api_caller`, but anonymous callers get 401."""
    identity = await api_caller(request, registry)
    if identity.anonymous:
        raise RegistryError(OCIErrorCode.UNAUTHORIZED).with_headers(**_CHALLENGE)
    return identity
