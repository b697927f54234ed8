"""``moorage login``: the device authorization grant (RFC 8628).

The device authorization grant (RFC 8628) against the OIDC provider, then the
exchange of the provider's access token for a Moorage personal access token (so the
stored credential does not depend on the provider's refresh token).
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

MAX_WAIT_SECONDS = 600.0


def _poll(token_url: str, client_id: str, device: dict[str, Any]) -> str:
    interval = float(device.get("interval", 5))
    deadline = time.monotonic() + min(float(device.get("expires_in", 600)), MAX_WAIT_SECONDS)
    while time.monotonic() < deadline:
        time.sleep(interval)
        answer = httpx.post(
            token_url,
            data={
                "grant_type": "urn:ietf:params:oauth:grant-type:device_code",
                "device_code": device["device_code"],
                "client_id": client_id,
            },
            timeout=10.0,
        )
        body = answer.json()
        if answer.status_code == httpx.codes.OK:
            return str(body["access_token"])
        error = body.get("error")
        if error == "slow_down":
            interval += 5
        elif error != "authorization_pending":
            raise RuntimeError(f"device login failed: {error}")
    raise RuntimeError("device login timed out")


def device_login(
    registry: str,
    issuer: str,
    client_id: str,
    show: Callable[[str], None],
    registry_client: httpx.Client | None = None,
) -> dict[str, str]:
    """Run the device flow; ``show`` gets the verification URL for the user.

    ``registry_client`` (default: a new client for ``registry``) talks to Moorage.
    """
    discovery = httpx.get(f"{issuer.rstrip('/')}/.well-known/openid-configuration", timeout=10.0)
    discovery.raise_for_status()
    endpoints = discovery.json()
    started = httpx.post(
        endpoints["device_authorization_endpoint"],
        data={"client_id": client_id, "scope": "openid"},
        timeout=10.0,
    )
    started.raise_for_status()
    device = started.json()
    show(
        f"Open {device.get('verification_uri_complete') or device['verification_uri']} "
        f"and confirm the code {device['user_code']}"
    )
    access_token = _poll(endpoints["token_endpoint"], client_id, device)
    expires = datetime.now(UTC) + timedelta(days=30)
    client = registry_client or httpx.Client(base_url=registry.rstrip("/"))
    created = client.post(
        "/api/v1/users/me/tokens",
        headers={"Authorization": f"Bearer {access_token}"},
        json={
            "name": f"cli-{socket.gethostname()}-{int(time.time())}",
            "scopes": ["pull", "push", "delete", "api"],
            "expires_at": expires.isoformat(),
        },
        timeout=30.0,
    )
    created.raise_for_status()
    body = created.json()
    username = str(body.get("owner") or "")
    return {
        "token": str(body["token"]),
        "username": username,
        "expires_at": str(body["expires_at"]),
    }
