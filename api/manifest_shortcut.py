"""The manifest fast path: the pipeline's steps for the hottest requests, minus the framework.

Most registry traffic is clients resolving a tag or digest they may read, and CI pushing
manifests. For those the pipeline (``api.pipeline``) tries this path before the framework's
routing. It is not a second implementation: it takes the route the pipeline matched
(``api.oci_routes``), parses credentials with ``api.credentials``, checks the grant with
``core.access.grants``, shapes headers with the controllers' functions, stores with the
controllers' ``store_manifest`` and calls the same hook points (``api.hooks``); what it
leaves out is the framework's request object (and, where it can, a worker-thread hop):

- ``GET``/``HEAD`` of a manifest that one read finds: on the event loop, with a read that
  never waits (``ManifestService.read_nowait``, SQLite) or one awaited there
  (``ManifestService.read_async``, PostgreSQL), else on a worker thread
  (``ManifestService.read``);
- ``PUT`` of a manifest that the manifest service stores without error.

Anything else -- no bearer token (Basic credentials need a password check in a thread),
an invalid token, a missing grant, a malformed name or reference, an unknown manifest, a
non-waiting read that would wait, a body over the limit, a push the service refuses --
goes on to the full path unchanged, which then produces the answer (and any error)
itself. A declined read has no side effects and ran no hook (on PostgreSQL an unknown
manifest or a failed read is read twice: here, then by the full path that answers the
error, a 503 while the database cannot be reached). A declined push may have created its
project (``create_project_on_push``) and read its body, which is then replayed to the
full path: the store itself is all or nothing, so the full path repeats it and answers
with the error the service raises. A refusal by a before-manifest-served hook is
answered here, as the same OCI error the full path sends.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any

import anyio.to_thread

from api.context import Registry
from api.controllers.manifests import (
    manifest_headers,
    pushed_headers,
    store_manifest,
    stored_manifest,
)
from api.credentials import Bearer, authorization_of, parse
from api.hooks import (
    after_manifest_stored,
    before_manifest_served,
    resolver_for,
    send_oci_error,
)
from core.access import PULL, PUSH, AuthMethod, Identity, from_description, grants
from core.errors import RegistryError
from core.names import Reference, RepositoryName, is_valid_tag
from core.pipeline import OCIRequest, OCIRoute
from core.records import ManifestRecord
from core.tokens import InvalidTokenError, TokenClaims

_READS = frozenset({"GET", "HEAD"})
_CALLERS_MAX = 4096
#: Pushes of one process in flight at once (group commit batches up to this many).
_PUSH_THREADS = 32

Receive = Callable[[], Awaitable[Any]]


def _encoded(headers: dict[str, str]) -> list[tuple[bytes, bytes]]:
    return [(key.lower().encode(), value.encode("latin-1")) for key, value in headers.items()]


def _header(headers: list[tuple[bytes, bytes]], name: bytes) -> str | None:
    for key, value in headers:
        if key.lower() == name:
            return bytes(value).decode("latin-1")
    return None


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

    async def answer(
        self, scope: Any, request: OCIRequest, receive: Receive, send: Any
    ) -> Receive | None:
        """Answer the request and return ``None``, or return the ``receive`` to go on with."""
        method = request.method
        if (
            request.route is not OCIRoute.MANIFEST
            or scope.get("root_path")
            or request.path.endswith("/")
            or (method not in _READS and method != "PUT")
        ):
            return receive
        credentials = parse(authorization_of(scope.get("headers", [])))
        if not isinstance(credentials, Bearer):
            return receive
        action = PULL if method in _READS else PUSH
        try:
            claims = self._registry.auth.tokens.verify(credentials.token)
            name = RepositoryName.parse(request.repository or "")
            if not grants(claims.access, "repository", str(name), action):
                return receive
        except (InvalidTokenError, RegistryError, ValueError):
            return receive
        caller = self._caller(credentials.token, claims)
        text = request.reference or ""
        if action == PULL:
            answered = await self._read(scope, request, send, caller, name, text)
            return None if answered else receive
        return await self._push(scope, request, receive, send, caller, name, text)

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

    def _lookup(self, name: RepositoryName, text: str, *, wait: bool) -> ManifestRecord | None:
        """The manifest ``text`` names, or ``None`` (not found, or a read that would wait)."""
        if ":" not in text and not is_valid_tag(text):
            return None
        manifests = self._registry.manifests
        try:
            reference = Reference.parse(text)
            if wait:
                return manifests.read(name, reference)
            return manifests.read_nowait(name, reference)
        except (RegistryError, ValueError):
            return None

    async def _lookup_async(self, name: RepositoryName, text: str) -> ManifestRecord | None:
        """:meth:`_lookup`, awaited on the event loop; ``None`` also when the read failed."""
        if ":" not in text and not is_valid_tag(text):
            return None
        try:
            return await self._registry.manifests.read_async(name, Reference.parse(text))
        except Exception:  # noqa: BLE001 - the full path repeats the read and answers it
            return None  # (a database that cannot be reached: 503 there, as for a push)

    async def _read(
        self,
        scope: Any,
        request: OCIRequest,
        send: Any,
        caller: Identity,
        name: RepositoryName,
        text: str,
    ) -> bool:
        if resolver_for(self._registry, name) is not None:
            return False  # NOTE: a proxy project's tags are revalidated on the full path
        manifests = self._registry.manifests
        if manifests.reads_nowait:
            manifest = self._lookup(name, text, wait=False)
        elif manifests.reads_async:
            manifest = await self._lookup_async(name, text)
        else:
            try:
                manifest = await anyio.to_thread.run_sync(
                    partial(self._lookup, name, text, wait=True)
                )
            except Exception:  # noqa: BLE001 - the full path repeats the read and answers it
                return False  # (a database that cannot be reached: 503 there, as for a push)
        if manifest is None:
            return False
        request.notes["identity"] = caller
        self.answered += 1
        registry = self._registry
        try:
            await before_manifest_served(scope, registry, manifest)
        except RegistryError as refused:
            await send_oci_error(send, request.method, refused)
            return True
        headers = _encoded(manifest_headers(manifest))
        headers.append((b"content-type", manifest.media_type.encode("latin-1")))
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        get = request.method == "GET"
        await send({"type": "http.response.body", "body": manifest.payload if get else b""})
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
        request: OCIRequest,
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
                partial(
                    store_manifest, registry, name, reference, payload, content_type, found, caller
                ),
            )
        except Exception:  # noqa: BLE001 - the full path repeats the push and answers it
            return _replay(messages, receive)
        request.notes["identity"] = caller
        self.answered += 1
        await after_manifest_stored(scope, registry, stored_manifest(name, reference, pushed))
        headers = _encoded(pushed_headers(name, pushed))
        headers += [(b"content-type", b"application/json"), (b"content-length", b"0")]
        await send({"type": "http.response.start", "status": 201, "headers": headers})
        await send({"type": "http.response.body", "body": b""})
        return None
