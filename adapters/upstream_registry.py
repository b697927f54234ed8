"""A client of one upstream registry's distribution API, on the SSRF-safe outbound client.

Authentication is the Docker token flow as a client: a request goes out anonymously (or
with the token cached for its scope); a ``401`` names a challenge; for ``Bearer`` the
realm is checked against the pinning rule (``core.challenges.realm_refusal``) *before*
anything is sent to it, a token is fetched for the request's scope (the endpoint's
username and secret as Basic on that request only), cached until shortly before it
expires, and the request is retried once. ``Basic`` challenges get the credentials on the
upstream's own host only. Blob redirects (to object storage or a CDN) are followed by hand,
each hop checked by the outbound policy, with no ``Authorization`` header at all.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import ssl
import time
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode, urljoin

import httpx

from adapters.outbound_http import OutboundClient
from core.challenges import Challenge, parse_challenges, realm_refusal
from core.endpoints import (
    DOCKER_HUB_HOST,
    DOCKER_HUB_REALM_HOST,
    CredentialKind,
    Credentials,
    EndpointRecord,
    EndpointType,
)
from core.outbound import OutboundPolicy, OutboundRefusedError
from core.upstream_ports import (
    ManifestHead,
    UpstreamError,
    UpstreamInvalidError,
    UpstreamManifest,
    UpstreamNotFoundError,
    UpstreamUnavailableError,
)

MANIFEST_ACCEPT = (
    "application/vnd.oci.image.index.v1+json, "
    "application/vnd.oci.image.manifest.v1+json, "
    "application/vnd.docker.distribution.manifest.list.v2+json, "
    "application/vnd.docker.distribution.manifest.v2+json"
)
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_MAX_HOPS = 3
_TOKEN_MAX_BYTES = 64 * 1024
_DEFAULT_TOKEN_SECONDS = 60
_UNAUTHORIZED = 401
_FORBIDDEN = 403
_NOT_FOUND = 404
_OK = 200
_CHUNK = 1024 * 1024


@dataclass(frozen=True, slots=True)
class _Token:
    value: str
    expires: float


def _basic(credentials: Credentials) -> str:
    raw = f"{credentials.username}:{credentials.secret}".encode()
    return "Basic " + base64.b64encode(raw).decode("ascii")


def _ssl_context(endpoint: EndpointRecord) -> ssl.SSLContext | bool:
    if endpoint.insecure:
        return False
    if endpoint.ca_bundle:
        return ssl.create_default_context(cadata=endpoint.ca_bundle)
    return True


def _digest_of(payload: bytes, algorithm: str) -> str:
    return f"{algorithm}:{hashlib.new(algorithm, payload).hexdigest()}"


class UpstreamClient:
    """The distribution API of one endpoint (``core.upstream_ports.UpstreamRegistry``).

    Tokens are cached per scope and fetched once however many calls need them at the
    same time (one lock per scope).
    """

    def __init__(
        self,
        endpoint: EndpointRecord,
        credentials: Credentials,
        policy: OutboundPolicy,
        *,
        timeout: float = 30.0,
        manifest_max_bytes: int = 4 * 1024 * 1024,
    ) -> None:
        self._endpoint = endpoint
        self._credentials = credentials
        self._base = endpoint.url.rstrip("/")
        extra = list(endpoint.realm_hosts)
        if endpoint.type is EndpointType.DOCKER_HUB or endpoint.host == DOCKER_HUB_HOST:
            extra.append(DOCKER_HUB_REALM_HOST)
        self._realm_hosts = tuple(extra)
        self._http = OutboundClient(
            policy,
            total_timeout=timeout,
            max_body_bytes=manifest_max_bytes,
            verify=_ssl_context(endpoint),
        )
        self._tokens: dict[str, _Token] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        #: The last challenge the upstream sent (so later calls pre-authenticate).
        self._challenge: Challenge | None = None

    async def aclose(self) -> None:
        await self._http.aclose()

    # the token flow

    async def _authorization(self, scope: str, *, refresh: bool = False) -> dict[str, str]:
        """The ``Authorization`` header for a request of ``scope`` (empty: anonymous)."""
        kind = self._credentials.kind
        if kind is CredentialKind.TOKEN:
            return {"Authorization": f"Bearer {self._credentials.secret}"}
        challenge = self._challenge
        if challenge is None:
            return {}
        if challenge.scheme == "basic":
            return (
                {} if kind is CredentialKind.NONE else {"Authorization": _basic(self._credentials)}
            )
        if challenge.scheme != "bearer":
            return {}
        token = await self._token(challenge, scope, refresh=refresh)
        return {"Authorization": f"Bearer {token}"}

    async def _token(self, challenge: Challenge, scope: str, *, refresh: bool) -> str:
        realm = challenge.realm
        refusal = realm_refusal(realm, self._base, self._realm_hosts)
        if refusal is not None:
            raise UpstreamUnavailableError(refusal)
        service = challenge.params.get("service", "")
        key = f"{realm}\n{service}\n{scope}"
        lock = self._locks.setdefault(key, asyncio.Lock())
        async with lock:
            cached = self._tokens.get(key)
            if cached is not None and not refresh and cached.expires > time.monotonic():
                return cached.value
            query: list[tuple[str, str]] = [("client_id", "moorage")]
            if service:
                query.append(("service", service))
            if scope:
                query.extend(("scope", s) for s in scope.split(" ") if s)
            headers: dict[str, str] = {}
            if self._credentials.kind in (CredentialKind.BASIC, CredentialKind.ROBOT):
                headers["Authorization"] = _basic(self._credentials)
            separator = "&" if "?" in realm else "?"
            url = f"{realm}{separator}{urlencode(query)}"
            try:
                response = await self._http.request("GET", url, headers=headers)
            except (httpx.HTTPError, OSError, OutboundRefusedError) as exc:
                raise UpstreamUnavailableError(f"token realm unreachable: {exc}") from exc
            if response.status != _OK or response.truncated:
                raise UpstreamUnavailableError(
                    f"token realm answered {response.status}; check the endpoint's credentials"
                )
            try:
                body: dict[str, Any] = json.loads(response.body)
                value = str(body.get("token") or body.get("access_token") or "")
                seconds = int(body.get("expires_in") or _DEFAULT_TOKEN_SECONDS)
            except (ValueError, TypeError, AttributeError) as exc:
                raise UpstreamUnavailableError("token realm sent no token") from exc
            if not value:
                raise UpstreamUnavailableError("token realm sent no token")
            lifetime = max(seconds, _DEFAULT_TOKEN_SECONDS) * 0.9 - 5
            self._tokens[key] = _Token(value, time.monotonic() + lifetime)
            return value

    def _learn(self, headers: httpx.Headers) -> bool:
        """Remember the upstream's challenge; whether it named one we can answer."""
        for challenge in parse_challenges(headers.get_list("www-authenticate")):
            if challenge.scheme in ("bearer", "basic"):
                self._challenge = challenge
                return True
        return False

    @asynccontextmanager
    async def _open(
        self, method: str, path: str, scope: str, accept: Mapping[str, str] | None = None
    ) -> AsyncIterator[httpx.Response]:
        """Send a request with auth (one retry after a challenge) and yield the response."""
        url = f"{self._base}{path}"
        try:
            for attempt in range(2):
                headers = dict(accept or {})
                headers.update(await self._authorization(scope, refresh=attempt > 0))
                async with self._http.stream(method, url, headers=headers) as response:
                    refused = response.status_code in (_UNAUTHORIZED, _FORBIDDEN)
                    if refused and attempt == 0 and self._learn(response.headers):
                        continue
                    yield response
                    return
        except UpstreamError:
            raise
        except (httpx.HTTPError, OSError, OutboundRefusedError) as exc:
            raise UpstreamUnavailableError(f"upstream unreachable: {exc}") from exc

    @staticmethod
    def _fail(response: httpx.Response, what: str) -> UpstreamError:
        status = response.status_code
        if status == _NOT_FOUND:
            return UpstreamNotFoundError(f"{what} not found upstream")
        if status in (_UNAUTHORIZED, _FORBIDDEN):
            return UpstreamUnavailableError(f"upstream refused access to {what} ({status})")
        return UpstreamUnavailableError(f"upstream answered {status} for {what}")

    # the distribution API

    async def ping(self) -> int:
        async with self._open("GET", "/v2/", "") as response:
            return response.status_code

    async def head_manifest(self, repository: str, reference: str) -> ManifestHead:
        scope = f"repository:{repository}:pull"
        path = f"/v2/{repository}/manifests/{reference}"
        async with self._open("HEAD", path, scope, {"Accept": MANIFEST_ACCEPT}) as response:
            if response.status_code != _OK:
                raise self._fail(response, f"manifest {repository}:{reference}")
            digest = response.headers.get("docker-content-digest", "")
            if not digest:
                raise UpstreamUnavailableError("upstream sent no Docker-Content-Digest on HEAD")
            size = int(response.headers.get("content-length") or 0)
            media_type = response.headers.get("content-type", "").split(";")[0].strip()
            return ManifestHead(digest, media_type, size)

    async def get_manifest(
        self, repository: str, reference: str, max_bytes: int
    ) -> UpstreamManifest:
        scope = f"repository:{repository}:pull"
        path = f"/v2/{repository}/manifests/{reference}"
        what = f"manifest {repository}:{reference}"
        async with self._open("GET", path, scope, {"Accept": MANIFEST_ACCEPT}) as response:
            if response.status_code != _OK:
                raise self._fail(response, what)
            declared = response.headers.get("content-length")
            if declared is not None and int(declared) > max_bytes:
                raise UpstreamInvalidError(f"{what} is larger than {max_bytes} bytes")
            body = bytearray()
            async for chunk in response.aiter_bytes():
                body.extend(chunk)
                if len(body) > max_bytes:
                    raise UpstreamInvalidError(f"{what} is larger than {max_bytes} bytes")
            media_type = response.headers.get("content-type", "").split(";")[0].strip()
            sent = response.headers.get("docker-content-digest", "")
        payload = bytes(body)
        algorithm = reference.split(":", 1)[0] if ":" in reference else "sha256"
        if algorithm not in ("sha256", "sha512"):
            raise UpstreamInvalidError(f"unsupported digest algorithm in {reference!r}")
        actual = _digest_of(payload, algorithm)
        if ":" in reference and actual != reference:
            raise UpstreamInvalidError(f"{what}: upstream sent content of digest {actual}")
        if sent and sent.startswith(f"{algorithm}:") and sent != actual:
            raise UpstreamInvalidError(f"{what}: Docker-Content-Digest {sent} != content {actual}")
        return UpstreamManifest(actual, media_type, payload)

    async def head_blob(self, repository: str, digest: str) -> int:
        scope = f"repository:{repository}:pull"
        async with self._open("HEAD", f"/v2/{repository}/blobs/{digest}", scope) as response:
            if response.status_code in _REDIRECTS:
                async with self._follow(response) as final:
                    return self._declared(final, digest)
            if response.status_code != _OK:
                raise self._fail(response, f"blob {digest}")
            return self._declared(response, digest)

    @staticmethod
    def _declared(response: httpx.Response, digest: str) -> int:
        if response.status_code != _OK:
            raise UpstreamClient._fail(response, f"blob {digest}")
        text = response.headers.get("content-length")
        if text is None or not text.isdigit():
            raise UpstreamInvalidError(f"blob {digest}: upstream declared no size")
        return int(text)

    @asynccontextmanager
    async def _follow(self, response: httpx.Response) -> AsyncIterator[httpx.Response]:
        """Follow a redirect chain by hand: no credentials, every hop policy-checked."""
        current = response
        url = str(response.request.url)
        for _ in range(_MAX_HOPS):
            location = current.headers.get("location")
            if not location:
                raise UpstreamUnavailableError("upstream redirect without Location")
            url = urljoin(url, location)
            try:
                async with self._http.stream(current.request.method, url) as hop:
                    if hop.status_code in _REDIRECTS:
                        current = hop
                        await hop.aread()
                        continue
                    yield hop
                    return
            except OutboundRefusedError as exc:
                raise UpstreamUnavailableError(f"blob redirect refused: {exc}") from exc
            except httpx.HTTPError as exc:
                raise UpstreamUnavailableError(f"blob redirect failed: {exc}") from exc
        raise UpstreamUnavailableError("upstream redirected too often")

    @asynccontextmanager
    async def blob(self, repository: str, digest: str) -> AsyncIterator[_Download]:
        scope = f"repository:{repository}:pull"
        async with self._open("GET", f"/v2/{repository}/blobs/{digest}", scope) as response:
            if response.status_code in _REDIRECTS:
                async with self._follow(response) as final:
                    yield _Download(final, self._declared(final, digest), digest)
                    return
            yield _Download(response, self._declared(response, digest), digest)


class _Download:
    """An open blob body of a declared size (``core.upstream_ports.BlobDownload``)."""

    def __init__(self, response: httpx.Response, size: int, digest: str) -> None:
        self._response = response
        self._size = size
        self._digest = digest

    @property
    def size(self) -> int:
        return self._size

    async def chunks(self) -> AsyncIterator[bytes]:
        received = 0
        try:
            async for chunk in self._response.aiter_bytes(_CHUNK):
                received += len(chunk)
                if received > self._size:
                    raise UpstreamInvalidError(
                        f"blob {self._digest}: upstream sent more than the {self._size} "
                        "bytes it declared"
                    )
                yield chunk
        except httpx.HTTPError as exc:
            raise UpstreamUnavailableError(f"blob {self._digest}: download failed: {exc}") from exc
        if received != self._size:
            raise UpstreamInvalidError(
                f"blob {self._digest}: upstream sent {received} of {self._size} bytes"
            )


class UpstreamClients:
    """One :class:`UpstreamClient` per endpoint version (``core.upstream_ports.UpstreamFactory``).

    ``credentials`` opens an endpoint's sealed secret (``EndpointService.credentials``).
    """

    def __init__(
        self,
        policy: OutboundPolicy,
        credentials: Any,
        *,
        timeout: float = 30.0,
        manifest_max_bytes: int = 4 * 1024 * 1024,
    ) -> None:
        self._policy = policy
        self._credentials = credentials
        self._timeout = timeout
        self._manifest_max = manifest_max_bytes
        self._clients: dict[int, tuple[float, UpstreamClient]] = {}
        self._retired: list[UpstreamClient] = []

    def client(self, endpoint: EndpointRecord) -> UpstreamClient:
        stamp = endpoint.updated_at.timestamp()
        known = self._clients.get(endpoint.id)
        if known is not None and known[0] == stamp:
            return known[1]
        if known is not None:
            self._retired.append(known[1])
        client = UpstreamClient(
            endpoint,
            self._credentials(endpoint),
            self._policy,
            timeout=self._timeout,
            manifest_max_bytes=self._manifest_max,
        )
        self._clients[endpoint.id] = (stamp, client)
        return client

    async def aclose(self) -> None:
        for client in [*self._retired, *(c for _, c in self._clients.values())]:
            await client.aclose()
        self._clients.clear()
        self._retired.clear()
