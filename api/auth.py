"""Authentication and authorization at the HTTP edge.

The data plane accepts registry bearer tokens (from ``/auth/token``) or no credentials
(anonymous pulls of public projects); a missing or insufficient grant answers ``401``
with the ``WWW-Authenticate`` challenge that sends clients to the token service. The
management API takes HTTP Basic credentials of local accounts.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

import anyio.to_thread
from litestar import Request

from api.context import Registry
from core.access import (
    ANONYMOUS,
    AuthMethod,
    Identity,
    Scope,
    allowed_repository_actions,
    from_description,
)
from core.errors import ForbiddenError, OCIErrorCode, RegistryError
from core.tokens import InvalidTokenError


def base_url(request: Request[Any, Any, Any], registry: Registry) -> str:
    if registry.settings.public_url:
        return registry.settings.public_url.rstrip("/")
    return str(request.base_url).rstrip("/")


def challenge(
    request: Request[Any, Any, Any], registry: Registry, scope: Scope | None
) -> RegistryError:
    realm = f"{base_url(request, registry)}/auth/token"
    value = f'Bearer realm="{realm}",service="{registry.settings.auth.service}"'
    detail = None
    if scope is not None:
        value += f',scope="{scope}"'
        detail = [
            {"Type": scope.type, "Name": scope.name, "Action": action}
            for action in sorted(scope.actions)
        ]
    return RegistryError(OCIErrorCode.UNAUTHORIZED, detail=detail).with_headers(
        **{"WWW-Authenticate": value}
    )


def basic_credentials(request: Request[Any, Any, Any]) -> tuple[str, str] | None:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    username, sep, password = decoded.partition(":")
    return (username, password) if sep else None


def _bearer(request: Request[Any, Any, Any]) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    return value.strip() if scheme.lower() == "bearer" and value.strip() else None


def token_grants(
    request: Request[Any, Any, Any], registry: Registry
) -> tuple[Identity, list[Scope]] | None:
    """The identity and access of the request's bearer token; ``None`` without one."""
    token = _bearer(request)
    if token is None:
        return None
    try:
        claims = registry.auth.tokens.verify(token)
    except InvalidTokenError:
        return None
    identity = from_description(claims.subject, claims.admin, AuthMethod.TOKEN, claims.principal)
    slot: Any = request.scope.get("moorage_audit")
    if isinstance(slot, dict):
        slot["identity"] = identity
    return identity, claims.access


async def authorize(request: Request[Any, Any, Any], registry: Registry, scope: Scope) -> Identity:
    """Check that the request may perform every action of ``scope``; return its identity."""
    grants = token_grants(request, registry)
    if grants is not None:
        identity, access = grants
        held: set[str] = set()
        for entry in access:
            if entry.type == scope.type and entry.name == scope.name:
                held |= entry.actions
        if "*" in held and scope.type == "repository":
            held |= {"pull", "push", "delete"}
        if scope.actions <= held:
            return identity
        raise challenge(request, registry, scope).with_headers(
            **{"WWW-Authenticate": _insufficient(request, registry, scope)}
        )
    if scope.type == "repository" and scope.actions == {"pull"}:
        project = await anyio.to_thread.run_sync(
            registry.projects.find, scope.name.partition("/")[0]
        )
        allowed = allowed_repository_actions(ANONYMOUS, project, create_on_push=False)
        if "pull" in allowed:
            return ANONYMOUS
    raise challenge(request, registry, scope)


def _insufficient(request: Request[Any, Any, Any], registry: Registry, scope: Scope) -> str:
    realm = f"{base_url(request, registry)}/auth/token"
    return (
        f'Bearer realm="{realm}",service="{registry.settings.auth.service}",'
        f'scope="{scope}",error="insufficient_scope"'
    )


async def require_admin(request: Request[Any, Any, Any], registry: Registry) -> Identity:
    """A system administrator for the management API (any credential ``/api`` accepts)."""
    from api.principal import api_caller  # noqa: PLC0415 - api.principal imports this module

    identity: Identity | None = await api_caller(request, registry)
    if identity is None or identity.anonymous:
        raise RegistryError(OCIErrorCode.UNAUTHORIZED).with_headers(
            **{"WWW-Authenticate": 'Basic realm="moorage"'}
        )
    if identity is None:
        raise RegistryError(OCIErrorCode.UNAUTHORIZED, "invalid credentials").with_headers(
            **{"WWW-Authenticate": 'Basic realm="moorage"'}
        )
    if not identity.is_admin:
        raise ForbiddenError("system administrator rights are required")
    return identity
