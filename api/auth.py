"""Authentication and authorization at the ``/v2`` edge.

The data plane accepts registry bearer tokens (from ``/auth/token``), HTTP Basic
credentials of any identity the token service accepts (users, robots, personal access
tokens; same authenticator, login limits and audit), or no credentials (anonymous pulls
of public projects). A Basic caller holds, per request, what the token service would
grant it (``core.access.grant``); a token holds what it was granted. Both are read with
``core.access``'s one grant check.

Answers: without credentials (or with an invalid token), ``401`` with the
``WWW-Authenticate`` challenge that sends clients to the token service; wrong Basic
credentials, ``401`` ``UNAUTHORIZED`` (``429`` once throttled); credentials that lack a
right, an error naming the missing action and repository (``401`` with
``error="insufficient_scope"`` for a token, ``403`` ``DENIED`` for Basic credentials).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Any

import anyio.to_thread
from litestar import Request

from api.context import Registry, identity_of
from api.credentials import Basic, Bearer, parse
from api.principal import client_address, note
from core.access import (
    ANONYMOUS,
    AuthMethod,
    Identity,
    Scope,
    allowed_repository_actions,
    from_description,
    grant,
    missing_actions,
)
from core.errors import OCIErrorCode, RegistryError
from core.tokens import InvalidTokenError


def base_url(request: Request[Any, Any, Any], registry: Registry) -> str:
    if registry.settings.public_url:
        return registry.settings.public_url.rstrip("/")
    return str(request.base_url).rstrip("/")


def _realm(request: Request[Any, Any, Any], registry: Registry) -> str:
    realm = f"{base_url(request, registry)}/auth/token"
    return f'Bearer realm="{realm}",service="{registry.settings.auth.service}"'


def challenge(
    request: Request[Any, Any, Any], registry: Registry, scope: Scope | None
) -> RegistryError:
    value = _realm(request, registry)
    detail = None
    if scope is not None:
        value += f',scope="{scope}"'
        detail = _detail(scope, scope.actions)
    return RegistryError(OCIErrorCode.UNAUTHORIZED, detail=detail).with_headers(
        **{"WWW-Authenticate": value}
    )


def _detail(scope: Scope, actions: frozenset[str]) -> list[dict[str, str]]:
    return [{"Type": scope.type, "Name": scope.name, "Action": a} for a in sorted(actions)]


def basic_credentials(request: Request[Any, Any, Any]) -> tuple[str, str] | None:
    """The request's Basic username and password (``api.credentials`` parses them)."""
    credentials = parse(request.headers.get("authorization"))
    return (credentials.username, credentials.password) if isinstance(credentials, Basic) else None


_CALLER_KEY = "moorage_caller"


@dataclass(frozen=True, slots=True)
class Caller:
    """An authenticated ``/v2`` caller.

    ``access`` is what its token grants; ``None`` for Basic credentials, whose grants are
    decided per request.
    """

    identity: Identity
    access: list[Scope] | None


async def registry_caller(request: Request[Any, Any, Any], registry: Registry) -> Caller | None:
    """The caller of a ``/v2`` request; ``None`` without credentials or with a bad token.

    Wrong Basic credentials raise ``401`` (``429`` when the login limit is reached). The
    caller is found once per request (a push that mounts a blob authorizes twice).
    """
    found: Any = request.scope.get(_CALLER_KEY)
    if isinstance(found, Caller):
        return found
    caller = await _authenticate(request, registry)
    if caller is not None:
        request.scope[_CALLER_KEY] = caller  # type: ignore[literal-required]
    return caller


async def _authenticate(request: Request[Any, Any, Any], registry: Registry) -> Caller | None:
    credentials = parse(request.headers.get("authorization"))
    if isinstance(credentials, Bearer):
        try:
            claims = registry.auth.tokens.verify(credentials.token)
        except InvalidTokenError:
            return None
        identity = from_description(
            claims.subject, claims.admin, AuthMethod.TOKEN, claims.principal
        )
        note(request, identity)
        return Caller(identity, claims.access)
    if isinstance(credentials, Basic):
        note(request, attempted=credentials.username)
        authenticator = identity_of(registry).authenticator
        found = await anyio.to_thread.run_sync(
            authenticator.basic,
            credentials.username,
            credentials.password,
            client_address(request),
        )
        if found is None:
            raise RegistryError(
                OCIErrorCode.UNAUTHORIZED, "invalid username or password"
            ).with_headers(**{"WWW-Authenticate": _realm(request, registry)})
        note(request, found)
        return Caller(found, None)
    return None


async def _access_of(registry: Registry, caller: Caller, scope: Scope) -> list[Scope]:
    if caller.access is not None:
        return caller.access
    rights = identity_of(registry).access.repository_rights
    create = registry.settings.auth.create_project_on_push
    decide = partial(
        grant,
        caller.identity,
        [scope],
        registry.projects.find,
        create_on_push=create,
        rights=rights,
    )
    return await anyio.to_thread.run_sync(decide)


async def authorize(request: Request[Any, Any, Any], registry: Registry, scope: Scope) -> Identity:
    """Check that the request may perform every action of ``scope``; return its identity."""
    caller = await registry_caller(request, registry)
    if caller is not None:
        missing = missing_actions(await _access_of(registry, caller, scope), scope)
        if not missing:
            return caller.identity
        raise _insufficient(request, registry, scope, missing, token=caller.access is not None)
    if scope.type == "repository" and scope.actions == {"pull"}:
        project = await anyio.to_thread.run_sync(
            registry.projects.find, scope.name.partition("/")[0]
        )
        allowed = allowed_repository_actions(ANONYMOUS, project, create_on_push=False)
        if "pull" in allowed:
            return ANONYMOUS
    raise challenge(request, registry, scope)


def _insufficient(
    request: Request[Any, Any, Any],
    registry: Registry,
    scope: Scope,
    missing: frozenset[str],
    *,
    token: bool,
) -> RegistryError:
    """The error naming the rights the caller's credentials lack."""
    message = f"missing {','.join(sorted(missing))} access to {scope.type} {scope.name}"
    detail = _detail(scope, missing)
    if not token:
        return RegistryError(OCIErrorCode.DENIED, message, detail=detail)
    value = f'{_realm(request, registry)},scope="{scope}",error="insufficient_scope"'
    return RegistryError(OCIErrorCode.UNAUTHORIZED, message, detail=detail).with_headers(
        **{"WWW-Authenticate": value}
    )
