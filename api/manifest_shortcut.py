"""The registry's hot paths, answered before the framework's routing.

Most registry traffic is clients resolving a tag or digest they may read, and CI pushing
manifests. Such requests need a verified token that grants the action on the
repository, one database read (or one write transaction), and a fixed set of headers;
this module answers exactly those, with the same status, headers, body, audit event and
pull-time recording as the full path (``api.controllers.manifests``):

- ``GET``/``HEAD`` of a manifest that one non-waiting read finds
  (``ManifestService.read_nowait``);
- ``PUT`` of a manifest that the manifest service stores without error.

Anything else -- no or an invalid token, a missing grant, a malformed name or reference,
an unknown manifest, a read that would wait, a body over the limit, a push the service
refuses -- goes through the application unchanged, which then produces the answer (and
any error) itself. A declined read has no side effects. A declined push may have created
its project (``create_project_on_push``) and read its body, which is then replayed to
the application: the store itself is all or nothing, so the full path repeats it and
answers with the error the service raises.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any

import anyio.to_thread

from api.audit_middleware import record_request, request_id_of
from api.context import Registry
from api.controllers.manifests import manifest_headers, pushed_headers, store_manifest
from core.access import PULL, PUSH, AuthMethod, Identity, Scope, from_description
from core.errors import RegistryError
from core.names import Reference, RepositoryName, is_valid_tag
from core.records import ManifestRecord
from core.tokens import InvalidTokenError, TokenClaims

# NOTE: the same shape as the dispatcher's manifest route (``api.controllers.oci``).
_MANIFEST = re.compile(r"^/v2/(?P<name>.+)/manifests/(?P<arg>[^/]+)$")
_READS = frozenset({"GET", "HEAD"})
_CALLERS_MAX = 4096
#: Pushes of one process in flight at once (group commit batches up to this many).
_PUSH_THREADS = 32

Receive = Callable[[], Awaitable[Any]]


def _header(headers: list[tuple[bytes, bytes]], name: bytes) -> str | None:
    for key, value in headers:
        if key.lower() == name:
            return bytes(value).decode("latin-1")
    return None


def _bearer(headers: list[tuple[bytes, bytes]]) -> str | None:
    scheme, _, token = (_header(headers, b"authorization") or "").partition(" ")
    token = token.strip()
    return token if scheme.lower() == "bearer" and token else None


def _grants(access: list[Scope], name: str, action: str) -> bool:
    return any(
        entry.type == "repository"
        and entry.name == name
        and (action in entry.actions or "*" in entry.actions)
        for entry in access
    )


def _encoded(headers: dict[str, str], request_id: str) -> list[tuple[bytes, bytes]]:
    """ASGI response headers from ``headers``, with the request id the audit records."""
    encoded = [(key.lower().encode(), value.encode("latin-1")) for key, value in headers.items()]
    encoded.append((b"x-request-id", request_id.encode()))
    return encoded


def _replay(messages: list[Any], receive: Receive) -> Receive:
    """A ``receive`` that hands out ``messages`` again, then continues with ``receive``."""
    pending = list(messages)

    async def replayed() -> Any:
        if pending:
            return pending.pop(0)
        return await receive()

    return replayed


class ManifestShortcuts:
    """Answers authorized manifest reads and pushes that need nothing else."""

    def __init__(self, registry: Registry) -> None:
        self._registry = registry
        #: How many requests this process answered here (for tests and diagnostics).
        self.answered = 0
        #: The identity of each recently verified token (the token service caches the
        #: claims; this spares rebuilding the identity for every request).
        self._callers: dict[str, Identity] = {}
        #: Threads for pushes (cheaper to hand work to than anyio's worker threads).
        self._pushers = ThreadPoolExecutor(_PUSH_THREADS, thread_name_prefix="manifest-push")

    async def answer(self, scope: Any, receive: Receive, send: Any) -> Receive | None:
        """Answer the request and return ``None``, or return the ``receive`` to go on with."""
        method = scope.get("method")
        if scope.get("root_path") or (method not in _READS and method != "PUT"):
            return receive
        match = _MANIFEST.match(scope.get("path", ""))
        token = _bearer(scope.get("headers", [])) if match is not None else None
        if match is None or token is None:
            return receive
        action = PULL if method in _READS else PUSH
        try:
            claims = self._registry.auth.tokens.verify(token)
            name = RepositoryName.parse(match.group("name"))
            if not _grants(claims.access, str(name), action):
                return receive
        except (InvalidTokenError, RegistryError, ValueError):
            return receive
        caller = self._caller(token, claims)
        if action == PULL:
            answered = await self._read(scope, send, caller, name, match.group("arg"))
            return None if answered else receive
        return await self._push(scope, receive, send, caller, name, match.group("arg"))

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

    def _lookup(self, name: RepositoryName, text: str) -> ManifestRecord | None:
        if ":" not in text and not is_valid_tag(text):
            return None
        try:
            return self._registry.manifests.read_nowait(name, Reference.parse(text))
        except (RegistryError, ValueError):
            return None

    async def _read(
        self, scope: Any, send: Any, caller: Identity, name: RepositoryName, text: str
    ) -> bool:
        manifest = self._lookup(name, text)
        if manifest is None:
            return False
        request_id = request_id_of(scope)
        headers = _encoded(manifest_headers(manifest), request_id)
        headers.append((b"content-type", manifest.media_type.encode("latin-1")))
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        get = scope["method"] == "GET"
        await send({"type": "http.response.body", "body": manifest.payload if get else b""})
        self.answered += 1
        registry = self._registry
        record_request(registry, scope, {"identity": caller}, request_id, 200)
        record = registry.manifests.pull_recording(manifest) if get else None
        if record is not None:
            await anyio.to_thread.run_sync(record)
        return True

    async def _body(self, scope: Any, receive: Receive) -> tuple[list[Any], bytes | None]:
        """The messages read and the whole body, or ``None`` if the full path must read it."""
        limit = self._registry.settings.limits.manifest_max_bytes
        declared = _header(scope.get("headers", []), b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > limit):
            return [], None
        messages: list[Any] = []
        size = 0
        while True:
            message = await receive()
            messages.append(message)
            if message.get("type") != "http.request":
                return messages, None
            size += len(message.get("body", b""))
            if size > limit:
                return messages, None
            if not message.get("more_body", False):
                return messages, b"".join(m.get("body", b"") for m in messages)

    async def _push(
        self,
        scope: Any,
        receive: Receive,
        send: Any,
        caller: Identity,
        name: RepositoryName,
        text: str,
    ) -> Receive | None:
        messages, payload = await self._body(scope, receive)
        if payload is None:
            return _replay(messages, receive)
        registry = self._registry
        content_type = _header(scope.get("headers", []), b"content-type")
        # NOTE: an existing repository is found on the event loop (no waiting read).
        found = registry.repositories.find_nowait(name)
        loop = asyncio.get_running_loop()
        try:
            reference = Reference.parse(text)
            pushed = await loop.run_in_executor(
                self._pushers,
                partial(store_manifest, registry, name, reference, payload, content_type, found),
            )
        except Exception:  # noqa: BLE001 - the full path repeats the push and answers it
            return _replay(messages, receive)
        request_id = request_id_of(scope)
        headers = _encoded(pushed_headers(name, pushed), request_id)
        headers += [(b"content-type", b"application/json"), (b"content-length", b"0")]
        await send({"type": "http.response.start", "status": 201, "headers": headers})
        await send({"type": "http.response.body", "body": b""})
        self.answered += 1
        record_request(registry, scope, {"identity": caller}, request_id, 201)
        return None
