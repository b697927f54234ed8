"""The token service: ``/auth/token`` (distribution token spec and its OAuth2 form)."""

from __future__ import annotations

from typing import Any

import anyio.to_thread
from litestar import Request, Response, get, post
from litestar.di import NamedDependency

from api.auth import basic_credentials
from api.context import Registry, identity_of
from api.principal import client_address, note
from core.access import ANONYMOUS, Identity, Scope, parse_scope
from core.errors import OCIErrorCode, RegistryError
from core.names import is_repository_name


def _scopes(values: list[str]) -> list[Scope]:
    """The requested scopes, without malformed ones.

    Repository names outside the name grammar (``p1//app``, ``p1/../p2/app``) count as
    malformed: nothing is granted for them.
    """
    scopes: list[Scope] = []
    for value in values:
        for item in value.split(" "):
            scope = parse_scope(item) if item else None
            if scope is None or (scope.type == "repository" and not is_repository_name(scope.name)):
                continue
            scopes.append(scope)
    return scopes


async def _issued(
    request: Request[Any, Any, Any],
    registry: Registry,
    credentials: tuple[str, str] | None,
    scopes: list[Scope],
) -> Any:
    """A token for ``scopes``, to the caller of ``credentials`` (``None``: anonymous).

    Any credential the token service accepts: local passwords, personal access tokens,
    robot secrets, Keycloak service accounts, and Keycloak or trusted-issuer JWTs. The
    credentials are checked and the token issued in one call on a worker thread.
    """
    services = identity_of(registry)
    rights = services.access.repository_rights
    address = client_address(request)
    if credentials is not None:
        note(request, attempted=credentials[0])

    def authenticate_and_issue() -> tuple[Identity | None, Any]:
        identity = (
            ANONYMOUS
            if credentials is None
            else services.authenticator.basic(*credentials, address)
        )
        if identity is None:
            return None, None
        return identity, registry.auth.issue(identity, scopes, rights)

    identity, issued = await anyio.to_thread.run_sync(authenticate_and_issue)
    if identity is None:
        raise RegistryError(OCIErrorCode.UNAUTHORIZED, "invalid username or password")
    if credentials is not None:
        note(request, identity)
    return issued


@get("/auth/token", summary="Issue a registry bearer token")
async def token(
    request: Request[Any, Any, Any], registry: NamedDependency[Registry]
) -> Response[Any]:
    """Docker token authentication: Basic credentials (or none) in, a signed JWT out."""
    scopes = _scopes(request.query_params.getall("scope", []))
    issued = await _issued(request, registry, basic_credentials(request), scopes)
    return Response(
        content={
            "token": issued.token,
            "access_token": issued.token,
            "expires_in": issued.expires_in,
            "issued_at": issued.issued_at.isoformat(),
        },
        headers={"Cache-Control": "no-store"},
    )


@post("/auth/token", summary="Issue a token (OAuth2 password grant)")
async def oauth_token(
    request: Request[Any, Any, Any], registry: NamedDependency[Registry]
) -> Response[Any]:
    """The OAuth2 form of the token endpoint; only the password grant is offered."""
    form = await request.form()
    if form.get("grant_type") != "password":
        return Response(content={"error": "unsupported_grant_type"}, status_code=400)
    credentials = (str(form.get("username", "")), str(form.get("password", "")))
    scopes = _scopes([str(value) for value in form.getall("scope")] if "scope" in form else [])
    issued = await _issued(request, registry, credentials, scopes)
    return Response(
        content={
            "access_token": issued.token,
            "token_type": "Bearer",
            "expires_in": issued.expires_in,
            "issued_at": issued.issued_at.isoformat(),
            "scope": " ".join(str(scope) for scope in scopes),
        },
        headers={"Cache-Control": "no-store"},
    )


@get("/auth/jwks", summary="Public keys of the token service")
async def jwks(registry: NamedDependency[Registry]) -> dict[str, Any]:
    return registry.auth.tokens.jwks()
