"""The management API over HTTP for CLI commands: where it is and how to log in.

The registry URL comes from ``--url`` or ``MOORAGE_URL`` (default
``http://127.0.0.1:5000``). Credentials, first found wins: ``--token``/``MOORAGE_TOKEN``
(a Bearer token from the OIDC provider or a trusted issuer);
``--username``/``MOORAGE_USERNAME`` with ``--password``/``MOORAGE_PASSWORD`` (HTTP
Basic: a password, a personal access token or a robot secret); the personal access
token ``moorage login`` stored for that URL; else anonymous.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import httpx

DEFAULT_URL = "http://127.0.0.1:5000"
CREDENTIALS = Path("~/.config/moorage/credentials.json")
TIMEOUT_SECONDS = 30.0


class ApiError(Exception):
    """A failed call: ``problem`` is the RFC 9457 body (or one made up for it)."""

    def __init__(self, problem: dict[str, Any]) -> None:
        super().__init__(str(problem.get("detail") or problem.get("title") or problem))
        self.problem = problem


@dataclass(frozen=True)
class Connection:
    url: str
    username: str | None = None
    password: str | None = None
    token: str | None = None

    def _auth(self) -> tuple[dict[str, str], tuple[str, str] | None]:
        if self.token:
            return {"Authorization": f"Bearer {self.token}"}, None
        if self.username and self.password is not None:
            return {}, (self.username, self.password)
        return {}, None

    def call(self, method: str, path: str, body: Any = None, **params: Any) -> Any:
        """The JSON answer of ``method path``; raises ``ApiError`` on any failure."""
        import httpx  # noqa: PLC0415 - loaded by the commands that call the API

        headers, auth = self._auth()
        query = {k: v for k, v in params.items() if v is not None}
        try:
            response = httpx.request(
                method,
                self.url.rstrip("/") + path,
                json=body,
                params=query,
                headers=headers,
                auth=auth,
                timeout=TIMEOUT_SECONDS,
            )
        except httpx.HTTPError as exc:
            raise ApiError({"title": "connection failed", "detail": str(exc)}) from exc
        if response.is_error:
            raise ApiError(_problem(response))
        return response.json() if response.content else None


def _problem(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict):
        return body
    return {
        "title": response.reason_phrase,
        "status": response.status_code,
        "detail": response.text,
    }


def stored_login(url: str, path: Path = CREDENTIALS) -> tuple[str, str] | None:
    """The ``(username, token)`` ``moorage login`` stored for ``url``, if any."""
    try:
        stored = json.loads(path.expanduser().read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    entry = stored.get(url) or stored.get(url.rstrip("/")) if isinstance(stored, dict) else None
    if not isinstance(entry, dict) or not entry.get("token"):
        return None
    return str(entry.get("username") or ""), str(entry["token"])


def connect(
    url: str | None, username: str | None, password: str | None, token: str | None
) -> Connection:
    """A connection from explicit values, falling back to the stored login for the URL."""
    base = (url or DEFAULT_URL).rstrip("/")
    if token or (username and password is not None):
        return Connection(base, username, password, token)
    stored = stored_login(base)
    if stored is not None:
        return Connection(base, stored[0], stored[1])
    return Connection(base)
