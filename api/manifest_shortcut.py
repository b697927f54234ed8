"""The pull's hot path: a manifest GET or HEAD answered before the framework's routing.

Most registry traffic is clients resolving a tag or digest they may read. Such a request
needs a verified token that grants ``pull`` on the repository and one database read that
never waits (``ManifestService.read_nowait``); this module answers exactly those, with
the same status, headers, body, audit event and pull-time recording as the full path
(``api.controllers.manifests.read_manifest``). Anything else -- no or an invalid token,
a missing grant, a malformed name or reference, an unknown manifest, a read that would
wait -- is declined and goes through the application unchanged, which then produces the
answer (and any error) itself. Declining never has side effects.
"""

from __future__ import annotations

import re
from typing import Any

import anyio.to_thread

from api.audit_middleware import record_request, request_id_of
from api.context import Registry
from core.access import PULL, AuthMethod, Identity, Scope, from_description
from core.errors import RegistryError
from core.names import Reference, RepositoryName, is_valid_tag
from core.records import ManifestRecord
from core.tokens import InvalidTokenError, TokenClaims

# NOTE: the same shape as the dispatcher's manifest route (``api.controllers.oci``).
_MANIFEST = re.compile(r"^/v2/(?P<name>.+)/manifests/(?P<arg>[^/]+)$")
_METHODS = frozenset({"GET", "HEAD"})
_CALLERS_MAX = 4096


def _bearer(headers: list[tuple[bytes, bytes]]) -> str | None:
    for key, value in headers:
        if key.lower() == b"authorization":
            scheme, _, token = bytes(value).decode("latin-1").partition(" ")
            token = token.strip()
            return token if scheme.lower() == "bearer" and token else None
    return None


def _grants_pull(access: list[Scope], name: str) -> bool:
    return any(
        entry.type == "repository"
        and entry.name == name
        and (PULL in entry.actions or "*" in entry.actions)
        for entry in access
    )


class ManifestReadShortcut:
    """Answers authorized manifest reads that one non-waiting read can serve."""

    def __init__(self, registry: Registry) -> None:
        self._registry = registry
        #: How many requests this process answered here (for tests and diagnostics).
        self.answered = 0
        #: The identity of each recently verified token (the token service caches the
        #: claims; this spares rebuilding the identity for every request).
        self._callers: dict[str, Identity] = {}

    def _caller(self, token: str, claims: TokenClaims) -> Identity:
        caller = self._callers.get(token)
        if caller is None:
            if len(self._callers) >= _CALLERS_MAX:
                self._callers.clear()
            caller = from_description(
                claims.subject, claims.admin, AuthMethod.TOKEN, claims.principal
            )
            self._callers[token] = caller
        return caller

    def _lookup(self, scope: Any) -> tuple[Identity, ManifestRecord] | None:
        """The caller's claims and the manifest, if this request is one to answer here."""
        if scope.get("method") not in _METHODS or scope.get("root_path"):
            return None
        match = _MANIFEST.match(scope.get("path", ""))
        token = _bearer(scope.get("headers", [])) if match is not None else None
        if match is None or token is None:
            return None
        text = match.group("arg")
        if ":" not in text and not is_valid_tag(text):
            return None
        try:
            claims = self._registry.auth.tokens.verify(token)
            name = RepositoryName.parse(match.group("name"))
            reference = Reference.parse(text)
            if not _grants_pull(claims.access, str(name)):
                return None
            manifest = self._registry.manifests.read_nowait(name, reference)
        except (InvalidTokenError, RegistryError, ValueError):
            return None
        return None if manifest is None else (self._caller(token, claims), manifest)

    async def answer(self, scope: Any, send: Any) -> bool:
        """Send the whole response and return True, or return False having done nothing."""
        found = self._lookup(scope)
        if found is None:
            return False
        caller, manifest = found
        request_id = request_id_of(scope)
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"docker-content-digest", manifest.digest.encode()),
                    (b"etag", f'"{manifest.digest}"'.encode()),
                    (b"content-length", str(manifest.size).encode()),
                    (b"content-type", manifest.media_type.encode("latin-1")),
                    (b"x-request-id", request_id.encode()),
                ],
            }
        )
        get = scope["method"] == "GET"
        await send({"type": "http.response.body", "body": manifest.payload if get else b""})
        self.answered += 1
        registry = self._registry
        record_request(registry, scope, {"identity": caller}, request_id, 200)
        record = registry.manifests.pull_recording(manifest) if get else None
        if record is not None:
            await anyio.to_thread.run_sync(record)
        return True
