"""Browser login with the OIDC authorization code flow and PKCE.

Browser login: ``/auth/oidc/login`` redirects to the OIDC provider (code + PKCE);
``/auth/oidc/callback`` finishes it and answers a personal access token for the API.
"""

from __future__ import annotations

from typing import Any

import anyio.to_thread
from litestar import Request, Response, get
from litestar.di import NamedDependency
from litestar.params import FromQuery

from api.auth import base_url
from api.context import Registry
from api.errors import problem
from api.principal import note
from core.errors import InvalidInputError
from core.services.identity_services import IdentityServices


def _callback(request: Request[Any, Any, Any], registry: Registry) -> str:
    return f"{base_url(request, registry)}/auth/oidc/callback"


@get("/auth/oidc/login", summary="Start a browser login (authorization code + PKCE)", tags=["oidc"])
async def oidc_login(
    request: Request[Any, Any, Any],
    identity_services: NamedDependency[IdentityServices],
    registry: NamedDependency[Registry],
    redirect_url: FromQuery[str | None] = None,
) -> Response[Any]:
    login = identity_services.browser_login
    callback = _callback(request, registry)
    try:
        url = await anyio.to_thread.run_sync(login.start, callback, redirect_url)
    except InvalidInputError as exc:
        return problem(400, "Bad Request", str(exc))
    return Response(content=b"", status_code=302, headers={"Location": url})


@get("/auth/oidc/callback", summary="Finish a browser login; answers an API token", tags=["oidc"])
async def oidc_callback(
    request: Request[Any, Any, Any],
    identity_services: NamedDependency[IdentityServices],
    registry: NamedDependency[Registry],
    code: FromQuery[str],
) -> Response[Any]:
    login = identity_services.browser_login
    state = request.query_params.get("state", "")
    callback = _callback(request, registry)
    created = await anyio.to_thread.run_sync(login.finish, callback, code, state)
    note(request, attempted=created.record.owner)
    return Response(
        content={
            "username": created.record.owner,
            "token": created.token,
            "expires_at": created.record.expires_at.isoformat()
            if created.record.expires_at
            else None,
        },
        headers={"Cache-Control": "no-store"},
    )
