"""An asyncio OCI distribution client built on aiohttp, for benchmarking only."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Self
from urllib.parse import quote, urljoin

import aiohttp
from yarl import URL

from bench.payloads import MIB, Blob
from bench.rawhttp import RawPool

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Iterable, Sequence
    from types import TracebackType

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MANIFEST_TYPES = (
    OCI_MANIFEST,
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
)
MANIFEST_ACCEPT = ", ".join(MANIFEST_TYPES)
TOKEN_MAX_AGE_S = 120.0


class BenchError(RuntimeError):
    """A registry answered something the benchmark did not expect."""


@dataclass(frozen=True)
class Credentials:
    """Basic credentials used to obtain bearer tokens."""

    username: str
    password: str


@dataclass(frozen=True)
class Target:
    """A registry under test.

    Attributes:
        name: ``moorage``, ``baseline`` (docker-registry) or ``distribution`` (v3).
        url: Base URL such as ``http://127.0.0.1:5000``.
        credentials: Credentials for the token endpoint, or ``None`` when the registry is open.
        service: The ``service`` parameter sent to the token endpoint.
    """

    name: str
    url: str
    credentials: Credentials | None = None
    service: str = "moorage"


async def _aiter(pieces: Iterable[memoryview]) -> AsyncIterator[memoryview]:
    for piece in pieces:
        yield piece


async def _check(resp: aiohttp.ClientResponse, expected: Sequence[int], what: str) -> None:
    if resp.status not in expected:
        body = (await resp.read())[:500].decode(errors="replace")
        raise BenchError(f"{what}: HTTP {resp.status}: {body}")


class RegistryClient:
    """OCI distribution operations against one target over a shared connection pool."""

    def __init__(self, target: Target, concurrency: int = 1) -> None:
        """Prepare a client; use it as an async context manager.

        Args:
            target: The registry to talk to.
            concurrency: Connection pool size; at least the number of concurrent requests.
        """
        self.target = target
        self.base = target.url.rstrip("/")
        self._concurrency = max(1, concurrency)
        self._session: aiohttp.ClientSession | None = None
        self._raw: RawPool | None = None
        self._token: str | None = None
        self._token_scope: tuple[str, ...] = ()
        self._token_time = 0.0
        #: Headers sent with every request (a benchmark's ``traceparent``, say).
        self.extra_headers: dict[str, str] = {}

    async def __aenter__(self) -> Self:
        """Open the connection pool."""
        connector = aiohttp.TCPConnector(
            limit=self._concurrency, limit_per_host=self._concurrency, force_close=False
        )
        self._session = aiohttp.ClientSession(
            connector=connector,
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=10, sock_read=120),
            auto_decompress=False,
        )
        self._raw = RawPool(self.base, self._concurrency)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Close the connection pool."""
        if self._raw is not None:
            self._raw.close()
            self._raw = None
        if self._session is not None:
            await self._session.close()
            self._session = None

    @property
    def raw(self) -> RawPool:
        """The keep-alive pool used for small requests."""
        if self._raw is None:
            raise RuntimeError("RegistryClient used outside 'async with'")
        return self._raw

    @property
    def session(self) -> aiohttp.ClientSession:
        """The open aiohttp session."""
        if self._session is None:
            raise RuntimeError("RegistryClient used outside 'async with'")
        return self._session

    async def refresh_token(self, repos: Sequence[str]) -> None:
        """Fetch a fresh bearer token with pull and push on ``repos`` (no-op without auth).

        Args:
            repos: Repository names the token must cover.
        """
        creds = self.target.credentials
        if creds is None:
            return
        params = [("service", self.target.service)]
        params += [("scope", f"repository:{repo}:pull,push") for repo in repos]
        async with self.session.get(
            f"{self.base}/auth/token",
            params=params,
            auth=aiohttp.BasicAuth(creds.username, creds.password),
        ) as resp:
            await _check(resp, (200,), "token")
            data: dict[str, Any] = await resp.json(content_type=None)
        token = data.get("token") or data.get("access_token")
        if not isinstance(token, str):
            raise BenchError(f"token endpoint returned no token: {sorted(data)}")
        self._token = token
        self._token_scope = tuple(repos)
        self._token_time = time.monotonic()

    async def _ensure_token(self, repo: str) -> None:
        if self.target.credentials is None:
            return
        fresh = time.monotonic() - self._token_time < TOKEN_MAX_AGE_S
        if self._token is None or repo not in self._token_scope or not fresh:
            scope = self._token_scope if repo in self._token_scope else (*self._token_scope, repo)
            await self.refresh_token(scope)

    def headers(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        """Return request headers including the bearer token, if any.

        Args:
            extra: Headers to add.

        Returns:
            A new header dictionary.
        """
        result: dict[str, str] = dict(self.extra_headers)
        if self._token is not None:
            result["Authorization"] = f"Bearer {self._token}"
        if extra:
            result.update(extra)
        return result

    def _resolve(self, location: str) -> str:
        return urljoin(self.base + "/", location)

    @staticmethod
    def _with_digest(location: str, digest: str) -> URL:
        sep = "&" if "?" in location else "?"
        return URL(f"{location}{sep}digest={quote(digest, safe=':')}", encoded=True)

    async def start_upload(self, repo: str) -> str:
        """Open an upload session.

        Args:
            repo: Repository name.

        Returns:
            The absolute upload location.
        """
        await self._ensure_token(repo)
        async with self.session.post(
            f"{self.base}/v2/{repo}/blobs/uploads/",
            headers=self.headers({"Content-Length": "0"}),
            allow_redirects=False,
        ) as resp:
            await _check(resp, (202,), "POST upload")
            await resp.read()
            return self._resolve(resp.headers["Location"])

    async def push_monolithic(self, repo: str, blob: Blob, piece: int = 8 * MIB) -> None:
        """Push a blob with POST then one PUT carrying the whole body and ``?digest=``.

        Args:
            repo: Repository name.
            blob: The blob to upload.
            piece: Size of the in-memory pieces handed to the socket.
        """
        location = await self.start_upload(repo)
        async with self.session.put(
            self._with_digest(location, blob.digest),
            data=_aiter(blob.iter_pieces(piece)),
            headers=self.headers(
                {"Content-Length": str(blob.size), "Content-Type": "application/octet-stream"}
            ),
            allow_redirects=False,
        ) as resp:
            await _check(resp, (201,), "PUT blob")
            await resp.read()

    async def push_chunked(
        self, repo: str, blob: Blob, chunk: int = 8 * MIB, piece: int = 8 * MIB
    ) -> None:
        """Push a blob with POST, PATCH chunks with ``Content-Range``, then PUT ``?digest=``.

        Args:
            repo: Repository name.
            blob: The blob to upload.
            chunk: Bytes per PATCH request.
            piece: Size of the in-memory pieces handed to the socket.
        """
        if chunk <= 0:
            raise ValueError("chunk must be positive")
        location = await self.start_upload(repo)
        offset = 0
        while offset < blob.size:
            end = min(blob.size, offset + chunk)
            async with self.session.patch(
                URL(location, encoded=True),
                data=_aiter(blob.iter_range(offset, end, piece)),
                headers=self.headers(
                    {
                        "Content-Length": str(end - offset),
                        "Content-Range": f"{offset}-{end - 1}",
                        "Content-Type": "application/octet-stream",
                    }
                ),
                allow_redirects=False,
            ) as resp:
                await _check(resp, (202,), "PATCH blob")
                await resp.read()
                location = self._resolve(resp.headers["Location"])
            offset = end
        async with self.session.put(
            self._with_digest(location, blob.digest),
            headers=self.headers({"Content-Length": "0"}),
            allow_redirects=False,
        ) as resp:
            await _check(resp, (201,), "PUT blob (close)")
            await resp.read()

    async def push_bytes(self, repo: str, data: bytes, digest: str) -> None:
        """Push a small in-memory blob monolithically.

        Args:
            repo: Repository name.
            data: The content.
            digest: Its digest.
        """
        location = await self.start_upload(repo)
        async with self.session.put(
            self._with_digest(location, digest),
            data=data,
            headers=self.headers({"Content-Type": "application/octet-stream"}),
            allow_redirects=False,
        ) as resp:
            await _check(resp, (201,), "PUT blob")
            await resp.read()

    async def pull_blob(self, repo: str, digest: str, read_size: int = 4 * MIB) -> int:
        """GET a blob and read it fully without hashing it.

        Args:
            repo: Repository name.
            digest: The blob digest.
            read_size: Largest read from the response stream.

        Returns:
            The number of body bytes received.
        """
        await self._ensure_token(repo)
        count = 0
        async with self.session.get(
            f"{self.base}/v2/{repo}/blobs/{digest}", headers=self.headers()
        ) as resp:
            await _check(resp, (200,), "GET blob")
            content = resp.content
            while True:
                data = await content.read(read_size)
                if not data:
                    break
                count += len(data)
        return count

    async def put_manifest(
        self, repo: str, reference: str, body: bytes, media_type: str = OCI_MANIFEST
    ) -> None:
        """PUT a manifest under a tag or digest.

        Args:
            repo: Repository name.
            reference: Tag or digest.
            body: Serialized manifest.
            media_type: Manifest media type.
        """
        await self._ensure_token(repo)
        response = await self.raw.request(
            "PUT",
            f"/v2/{repo}/manifests/{reference}",
            self.headers({"Content-Type": media_type}),
            body,
        )
        if response.status != 201:
            raise BenchError(f"PUT manifest: HTTP {response.status}: {response.body[:500]!r}")

    async def manifest(self, method: str, repo: str, reference: str) -> int:
        """HEAD or GET a manifest, reading any body.

        Args:
            method: ``HEAD`` or ``GET``.
            repo: Repository name.
            reference: Tag or digest.

        Returns:
            The number of body bytes read.
        """
        response = await self.raw.request(
            method,
            f"/v2/{repo}/manifests/{reference}",
            self.headers({"Accept": MANIFEST_ACCEPT}),
        )
        if response.status != 200:
            raise BenchError(f"{method} manifest: HTTP {response.status}: {response.body[:500]!r}")
        return len(response.body)


def image_manifest(config: tuple[bytes, str], layers: Sequence[tuple[int, str]]) -> bytes:
    """Serialize an OCI image manifest.

    Args:
        config: The config content and digest.
        layers: ``(size, digest)`` of each layer.

    Returns:
        The manifest bytes.
    """
    manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": config[1],
            "size": len(config[0]),
        },
        "layers": [
            {
                "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                "digest": digest,
                "size": size,
            }
            for size, digest in layers
        ],
    }
    return json.dumps(manifest, separators=(",", ":")).encode()
