"""A counting reverse proxy (aiohttp, loopback) in front of a test registry.

It counts every request by method and path, can corrupt the bodies of chosen blobs
(same length, wrong bytes), can demand Docker token auth (its own ``/token`` realm,
checking HTTP Basic credentials), can name another realm in its challenges, and can be
stopped and started again on the same port (an upstream that is down).
"""

from __future__ import annotations

import asyncio
import base64
import secrets
import threading
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web

from tests.services.process import LOOPBACK, free_port

_HOP_HEADERS = {"host", "content-length", "transfer-encoding", "connection", "authorization"}


@dataclass
class FrontConfig:
    """What the front does; change it between requests from the test."""

    #: Digests whose blob bodies are corrupted on the way through.
    corrupt: set[str] = field(default_factory=set)
    #: ``(username, password)`` the token realm accepts; ``None``: no auth required.
    token_auth: tuple[str, str] | None = None
    #: Realm URL sent in challenges (default: this front's own ``/token``).
    realm: str | None = None
    #: Change one byte of every manifest GET's body (same length, wrong digest).
    corrupt_manifests: bool = False
    #: Answer blob GETs with a 307 to this front's ``/_storage`` (like object storage).
    redirect_blobs: bool = False
    #: Redirect blob GETs here instead (an address the outbound policy refuses).
    redirect_to: str | None = None
    #: Hold blob upload requests (unanswered, not forwarded) once this many upload body
    #: bytes were forwarded, until :meth:`RegistryFront.release` (a client dying mid-blob).
    hold_uploads_after: int | None = None
    #: Hold tag list requests (unanswered, not forwarded) until :meth:`RegistryFront.release`
    #: (a client dying while it lists the registry).
    hold_tag_lists: bool = False
    #: Hold blob GET bodies (headers and exactly this many body bytes sent) until
    #: :meth:`RegistryFront.release` (an upstream slow mid-blob).
    hold_blob_bodies_after: int | None = None


@dataclass
class BlobRead:
    """One blob GET the front answered: what was asked and how much of it went out."""

    digest: str
    range: str
    status: int = 0
    relayed: int = 0


class RegistryFront:
    """The running front; ``counts`` maps ``"METHOD /path"`` to requests seen."""

    def __init__(self, target: str, name: str = "front") -> None:
        self.target = target.rstrip("/")
        self.port = free_port()
        self.url = f"http://{LOOPBACK}:{self.port}"
        self.config = FrontConfig()
        self.counts: Counter[str] = Counter()
        #: Authorization headers seen on ``/token`` requests.
        self.token_credentials: list[str] = []
        #: Authorization headers seen on redirected ``/_storage`` requests ("" for none).
        self.storage_credentials: list[str] = []
        #: Body bytes of blob upload requests (PATCH, PUT) forwarded to the target.
        self.upload_bytes = 0
        #: Each blob GET received (not redirected storage reads), in arrival order: its
        #: digest, ``Range`` header ("" for none), the target's answer status (0 when the
        #: front answered itself) and body bytes relayed so far (updated as they go out).
        self.blob_reads: list[BlobRead] = []
        #: The most blob GETs that were being answered at once.
        self.most_blob_gets_at_once = 0
        self._blob_gets_open = 0
        #: Set while a request is being held (``hold_uploads_after``, ``hold_tag_lists``).
        self.holding = threading.Event()
        self._release: asyncio.Event | None = None
        self._tokens: set[str] = set()
        self._name = name
        self._lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name=name, daemon=True)
        self._thread.start()
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None
        self.start()

    @property
    def blob_gets(self) -> list[str]:
        """Digests of the blob GETs received (not redirected storage reads), in arrival order."""
        with self._lock:
            return [read.digest for read in self.blob_reads]

    def count(self, method: str, path: str) -> int:
        with self._lock:
            return self.counts[f"{method} {path}"]

    def total(self) -> int:
        with self._lock:
            return sum(self.counts.values())

    def _run(self, work: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(work, self._loop).result(timeout=30)

    def start(self) -> None:
        self._run(self._start())

    def release(self) -> None:
        """Stop holding requests (held requests go on; their clients may be gone)."""
        self.config.hold_uploads_after = None
        self.config.hold_tag_lists = False
        self.config.hold_blob_bodies_after = None

        async def wake() -> None:
            if self._release is not None:
                self._release.set()

        self._run(wake())

    def stop(self) -> None:
        """Stop listening (connections are refused until :meth:`start`)."""
        self._run(self._stop())

    def close(self) -> None:
        self.stop()
        if self._session is not None:
            self._run(self._session.close())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)

    async def _start(self) -> None:
        if self._session is None:
            self._session = aiohttp.ClientSession(auto_decompress=False)
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, LOOPBACK, self.port, reuse_address=True).start()

    async def _stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def _challenge(self, request: web.Request) -> web.Response:
        realm = self.config.realm or f"{self.url}/token"
        scope = ""
        parts = request.path.split("/")
        for marker in ("manifests", "blobs"):
            if marker in parts:
                scope = f',scope="repository:{"/".join(parts[2 : parts.index(marker)])}:pull"'
        header = f'Bearer realm="{realm}",service="front"{scope}'
        return web.json_response(
            {"errors": [{"code": "UNAUTHORIZED", "message": "token required"}]},
            status=401,
            headers={"WWW-Authenticate": header},
        )

    def _token(self, request: web.Request) -> web.Response:
        sent = request.headers.get("Authorization", "")
        self.token_credentials.append(sent)
        wanted = self.config.token_auth
        if wanted is not None:
            expected = "Basic " + base64.b64encode(f"{wanted[0]}:{wanted[1]}".encode()).decode()
            if sent != expected:
                return web.json_response({"details": "bad credentials"}, status=401)
        token = secrets.token_urlsafe(16)
        self._tokens.add(token)
        return web.json_response({"token": token, "expires_in": 300})

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        with self._lock:
            self.counts[f"{request.method} {request.path}"] += 1
        blob_get = request.method == "GET" and "/blobs/sha256:" in request.path
        if not blob_get or request.path.startswith("/_storage/"):
            return await self._answer(request, blob_get=blob_get)
        read = BlobRead(request.path.rpartition("/")[2], request.headers.get("Range", ""))
        with self._lock:
            self.blob_reads.append(read)
            self._blob_gets_open += 1
            self.most_blob_gets_at_once = max(self.most_blob_gets_at_once, self._blob_gets_open)
        try:
            return await self._answer(request, blob_get=True, read=read)
        finally:
            with self._lock:
                self._blob_gets_open -= 1

    async def _answer(
        self, request: web.Request, *, blob_get: bool, read: BlobRead | None = None
    ) -> web.StreamResponse:
        """Forward (or refuse, redirect, hold) one request; ``blob_get``: a GET of a blob.

        ``read`` is the blob GET's record, updated with the answer and the bytes relayed.
        """
        if request.path == "/token":
            return self._token(request)
        storage = request.path.startswith("/_storage/")
        if storage:
            self.storage_credentials.append(request.headers.get("Authorization", ""))
        elif self.config.token_auth is not None:
            sent = request.headers.get("Authorization", "")
            if not sent.startswith("Bearer ") or sent[7:] not in self._tokens:
                return self._challenge(request)
        if blob_get and not storage and self.config.redirect_to is not None:
            raise web.HTTPTemporaryRedirect(self.config.redirect_to)
        if blob_get and not storage and self.config.redirect_blobs:
            raise web.HTTPTemporaryRedirect(f"/_storage{request.path_qs}")
        path_qs = request.path_qs.removeprefix("/_storage")
        assert self._session is not None
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _HOP_HEADERS}
        # NOTE: so the target writes upload locations on this front, not on itself.
        headers["X-Forwarded-Host"] = f"{LOOPBACK}:{self.port}"
        headers["X-Forwarded-Proto"] = "http"
        uploading = "/blobs/uploads/" in request.path and request.method in ("PATCH", "PUT")
        limit = self.config.hold_uploads_after
        listing = request.method == "GET" and request.path.endswith("/tags/list")
        held_list = listing and self.config.hold_tag_lists
        if held_list or (uploading and limit is not None and self.upload_bytes >= limit):
            self._release = self._release or asyncio.Event()
            self.holding.set()
            await self._release.wait()
            if request.transport is None or request.transport.is_closing():
                return web.Response(status=499)
        body = await request.read()
        if uploading:
            with self._lock:
                self.upload_bytes += len(body)
        async with self._session.request(
            request.method,
            f"{self.target}{path_qs}",
            headers=headers,
            data=body or None,
            allow_redirects=False,
        ) as upstream:
            out_headers = {
                k: v for k, v in upstream.headers.items() if k.lower() not in _HOP_HEADERS
            }
            response = web.StreamResponse(status=upstream.status, headers=out_headers)
            if upstream.content_length is not None:
                response.content_length = upstream.content_length
            await response.prepare(request)
            corrupt = any(path_qs.endswith(f"/blobs/{d}") for d in self.config.corrupt)
            corrupt = corrupt or (self.config.corrupt_manifests and "/manifests/" in path_qs)
            if read is not None:
                read.status = upstream.status
            await self._relay(upstream, response, corrupt=corrupt, blob_get=blob_get, read=read)
            return response

    async def _relay(
        self,
        upstream: aiohttp.ClientResponse,
        response: web.StreamResponse,
        *,
        corrupt: bool,
        blob_get: bool,
        read: BlobRead | None,
    ) -> None:
        """Pass the target's body on (corrupting or holding it as configured)."""
        sent = 0
        async for chunk in upstream.content.iter_chunked(256 * 1024):
            data = chunk
            if corrupt and data:
                data = bytes([data[0] ^ 0xFF]) + data[1:]
                corrupt = False
            hold = self.config.hold_blob_bodies_after
            if blob_get and hold is not None and sent + len(data) > hold:
                if sent < hold:
                    # NOTE: exactly ``hold`` bytes go out first, whatever the pieces' sizes
                    await response.write(data[: hold - sent])
                    if read is not None:
                        read.relayed += hold - sent
                    data, sent = data[hold - sent :], hold
                self._release = self._release or asyncio.Event()
                self.holding.set()
                await self._release.wait()
            await response.write(data)
            sent += len(data)
            if read is not None:
                read.relayed += len(data)
        await response.write_eof()
