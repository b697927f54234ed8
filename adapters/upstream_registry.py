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
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode, urljoin, urlsplit

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
    refusal_kind,
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
_PARTIAL = 206
_CHUNK = 1024 * 1024
#: Idle connections kept open to one registry.
_KEEPALIVE = 64
#: Seconds a registry that answered ``404`` to the referrers API is not asked again.
NO_REFERRERS_API_SECONDS = 60.0
_ACCEPTED = 202
_CREATED_201 = 201
_CREATED = frozenset({200, 201, 202, 204})
_MAX_PAGES = 1000
#: Bytes of an error answer's body read (and shown) at most.
_ERROR_BODY_MAX = 4096
#: Characters of an error message shown at most.
_ERROR_TEXT_MAX = 512


def _next_link(link: str) -> str | None:
    """The path of a ``Link: <...>; rel="next"`` header."""
    for part in link.split(","):
        target, _, params = part.partition(";")
        if 'rel="next"' in params.replace(" ", "") or "rel=next" in params.replace(" ", ""):
            url = target.strip().removeprefix("<").removesuffix(">")
            split = urlsplit(url)
            return f"{split.path}?{split.query}" if split.query else split.path
    return None


def oci_error(body: bytes) -> tuple[str | None, str]:
    """The first OCI error of an answer's body: its code and message.

    A body that is not the spec's ``{"errors": [...]}`` gives no code and its text.
    """
    text = body.decode("utf-8", "replace").strip()
    try:
        errors = json.loads(text).get("errors")
    except (ValueError, AttributeError):
        return None, text[:_ERROR_TEXT_MAX]
    first = errors[0] if isinstance(errors, list) and errors else None
    if not isinstance(first, dict) or not first.get("code"):
        return None, text[:_ERROR_TEXT_MAX]
    message = str(first.get("message") or "")
    detail = first.get("detail")
    if detail and isinstance(detail, (str, int, float)):
        message = f"{message} ({detail})" if message else str(detail)
    return str(first["code"])[:64], message[:_ERROR_TEXT_MAX]


def _content_range(header: str | None) -> tuple[int, int, int] | None:
    """First byte, last byte and whole size of a ``Content-Range: bytes a-b/size`` header."""
    unit, _, spec = (header or "").strip().partition(" ")
    span, _, whole = spec.partition("/")
    first, _, last = span.partition("-")
    if unit.lower() != "bytes" or not (first.isdigit() and last.isdigit() and whole.isdigit()):
        return None
    return int(first), int(last), int(whole)


def _range_end(header: str | None) -> int:
    """Bytes held per a ``Range: 0-<last>`` header (``0`` when absent)."""
    if not header:
        return 0
    _, _, last = header.removeprefix("bytes=").partition("-")
    return int(last) + 1 if last.strip().isdigit() else 0


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

    #: A remote registry's own digest check is not relied on: a copy hashes what it sends.
    verifies_blob_digests = False

    def __init__(
        self,
        endpoint: EndpointRecord,
        credentials: Credentials,
        policy: OutboundPolicy,
        *,
        timeout: float = 30.0,
        manifest_max_bytes: int = 4 * 1024 * 1024,
        token_source: Callable[[str], str] | None = None,
    ) -> None:
        """Build the client.

        ``token_source(scope)``, when given, is asked for the bearer token of every
        request instead of running the token flow (this installation's own ``/v2``, whose
        tokens the caller signs itself).
        """
        self._endpoint = endpoint
        self._credentials = credentials
        self._token_source = token_source
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
            # NOTE: a copy runs artifacts and their blobs in parallel (tens of requests
            # at once): keep that many connections open instead of reconnecting
            keepalive=_KEEPALIVE,
        )
        self._tokens: dict[str, _Token] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        #: The last challenge the upstream sent (so later calls pre-authenticate).
        self._challenge: Challenge | None = None
        #: Until when (monotonic) the referrers API is known to be missing here.
        self._no_referrers_api_until = 0.0

    async def aclose(self) -> None:
        await self._http.aclose()

    # the token flow

    async def _authorization(self, scope: str, *, refresh: bool = False) -> dict[str, str]:
        """The ``Authorization`` header for a request of ``scope`` (empty: anonymous)."""
        if self._token_source is not None:
            return {"Authorization": f"Bearer {self._token_source(scope)}"}
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

    def _url(self, path: str) -> str:
        """An absolute URL on the endpoint's origin (a path, or a ``Location`` it sent).

        A ``Location`` on another origin is refused: credentials go to the endpoint only.
        """
        if path.startswith("/"):
            return f"{self._base}{path}"
        url = urljoin(f"{self._base}/", path)
        mine, theirs = urlsplit(self._base), urlsplit(url)
        if (mine.scheme, mine.netloc) != (theirs.scheme, theirs.netloc):
            raise UpstreamUnavailableError("the registry sent an upload location on another host")
        return url

    @asynccontextmanager
    async def _open(
        self,
        method: str,
        path: str,
        scope: str,
        accept: Mapping[str, str] | None = None,
        content: bytes | None = None,
    ) -> AsyncIterator[httpx.Response]:
        """Send a request with auth (one retry after a challenge) and yield the response."""
        url = self._url(path)
        try:
            for attempt in range(2):
                headers = dict(accept or {})
                headers.update(await self._authorization(scope, refresh=attempt > 0))
                async with self._http.stream(
                    method, url, headers=headers, content=content
                ) as response:
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
    async def _follow(
        self, response: httpx.Response, headers: Mapping[str, str] | None = None
    ) -> AsyncIterator[httpx.Response]:
        """Follow a redirect chain by hand: no credentials, every hop policy-checked.

        ``headers`` (a ``Range``, never credentials) go with every hop.
        """
        current = response
        url = str(response.request.url)
        for _ in range(_MAX_HOPS):
            location = current.headers.get("location")
            if not location:
                raise UpstreamUnavailableError("upstream redirect without Location")
            url = urljoin(url, location)
            try:
                async with self._http.stream(current.request.method, url, headers=headers) as hop:
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
    async def blob(self, repository: str, digest: str, start: int = 0) -> AsyncIterator[_Download]:
        scope = f"repository:{repository}:pull"
        ranged = {"Range": f"bytes={start}-"} if start > 0 else None
        path = f"/v2/{repository}/blobs/{digest}"
        async with self._open("GET", path, scope, ranged) as response:
            if response.status_code in _REDIRECTS:
                async with self._follow(response, ranged) as final:
                    yield self._download(final, digest, start)
                    return
            yield self._download(response, digest, start)

    @classmethod
    def _download(cls, response: httpx.Response, digest: str, start: int) -> _Download:
        """The download a blob GET answered: a range from ``start`` (206) or the whole (200)."""
        if start <= 0 or response.status_code != _PARTIAL:
            return _Download(response, cls._declared(response, digest), digest)
        span = _content_range(response.headers.get("content-range"))
        if span is None or span[0] != start or span[1] != span[2] - 1:
            raise UpstreamInvalidError(
                f"blob {digest}: asked for bytes {start}- and got "
                f"{response.headers.get('content-range') or 'no Content-Range'}"
            )
        return _Download(response, span[2], digest, start)

    # -- listing, pushing and deleting (replication) --

    async def _pages(self, path: str, scope: str, key: str) -> list[str]:
        """Every entry of a paginated list (``Link: <...>; rel="next"``), bounded."""
        found: list[str] = []
        next_path: str | None = f"{path}?n=1000"
        for _ in range(_MAX_PAGES):
            if next_path is None:
                break
            async with self._open("GET", next_path, scope) as response:
                if response.status_code != _OK:
                    raise self._fail(response, path)
                body = await response.aread()
                link = response.headers.get("link", "")
            try:
                entries = json.loads(body).get(key) or []
            except (ValueError, AttributeError) as exc:
                raise UpstreamInvalidError(f"{path}: not a JSON list") from exc
            found.extend(str(entry) for entry in entries)
            next_path = _next_link(link)
        return found

    async def catalog(self) -> list[str]:
        """Every repository name (``/v2/_catalog``)."""
        return await self._pages("/v2/_catalog", "registry:catalog:*", "repositories")

    async def tags(self, repository: str) -> list[str]:
        """A repository's tags (empty when the repository does not exist)."""
        try:
            return await self._pages(
                f"/v2/{repository}/tags/list", f"repository:{repository}:pull", "tags"
            )
        except UpstreamNotFoundError:
            return []

    async def put_manifest(
        self, repository: str, reference: str, media_type: str, payload: bytes
    ) -> str:
        """Store a manifest's exact bytes; the digest the registry answered with."""
        scope = f"repository:{repository}:pull,push"
        path = f"/v2/{repository}/manifests/{reference}"
        headers = {"Content-Type": media_type}
        async with self._open("PUT", path, scope, headers, payload) as response:
            if response.status_code not in _CREATED:
                raise await self._refused(response, f"manifest {repository}:{reference}")
            return str(response.headers.get("docker-content-digest", ""))

    async def delete_manifest(self, repository: str, reference: str) -> bool:
        """Delete a tag or manifest; ``False`` when it was not there."""
        scope = f"repository:{repository}:pull,push,delete"
        path = f"/v2/{repository}/manifests/{reference}"
        async with self._open("DELETE", path, scope) as response:
            if response.status_code == _NOT_FOUND:
                return False
            if response.status_code not in _CREATED:
                raise await self._refused(response, f"manifest {repository}:{reference}")
            return True

    async def mount_blob(self, repository: str, digest: str, source: str | None) -> str | None:
        """Mount ``digest`` from ``source``; ``None`` if mounted, else the upload's location."""
        scope = f"repository:{repository}:pull,push"
        query = {"mount": digest}
        if source:
            query["from"] = source
            scope += f" repository:{source}:pull"
        path = f"/v2/{repository}/blobs/uploads/?{urlencode(query)}"
        async with self._open("POST", path, scope, content=b"") as response:
            if response.status_code == _CREATED_201:
                return None
            if response.status_code != _ACCEPTED:
                raise await self._refused(response, f"blob upload to {repository}")
            return self._location(response)

    async def start_upload(self, repository: str) -> tuple[str, int]:
        """A new upload session: its location and the registry's minimum chunk size."""
        scope = f"repository:{repository}:pull,push"
        path = f"/v2/{repository}/blobs/uploads/"
        async with self._open("POST", path, scope, content=b"") as response:
            if response.status_code != _ACCEPTED:
                raise await self._refused(response, f"blob upload to {repository}")
            minimum = response.headers.get("oci-chunk-min-length", "0")
            return self._location(response), int(minimum) if minimum.isdigit() else 0

    async def upload_offset(self, repository: str, location: str) -> int | None:
        """Bytes the session holds (``GET`` on it); ``None`` when the session is gone."""
        scope = f"repository:{repository}:pull,push"
        async with self._open("GET", location, scope) as response:
            if response.status_code in (_NOT_FOUND, 400):
                return None
            if response.status_code not in _CREATED:
                raise await self._refused(response, "upload status")
            return _range_end(response.headers.get("range"))

    async def upload_chunk(self, repository: str, location: str, start: int, data: bytes) -> str:
        """Append ``data`` at ``start``; the session's new location."""
        scope = f"repository:{repository}:pull,push"
        headers = {
            "Content-Type": "application/octet-stream",
            "Content-Range": f"{start}-{start + len(data) - 1}",
        }
        async with self._open("PATCH", location, scope, headers, data) as response:
            if response.status_code != _ACCEPTED:
                raise await self._refused(response, "blob chunk")
            return self._location(response)

    async def finish_upload(
        self, repository: str, location: str, digest: str, data: bytes = b""
    ) -> None:
        """Close the session with its digest (and a last piece of the body)."""
        scope = f"repository:{repository}:pull,push"
        separator = "&" if "?" in location else "?"
        url = f"{location}{separator}{urlencode({'digest': digest})}"
        headers = {"Content-Type": "application/octet-stream"}
        async with self._open("PUT", url, scope, headers, data) as response:
            if response.status_code not in _CREATED:
                raise await self._refused(response, f"blob {digest}")

    async def referrers(
        self, repository: str, digest: str, tags: frozenset[str] | None = None
    ) -> list[dict[str, Any]]:
        """Descriptors of the manifests whose subject is ``digest``.

        The referrers API first; a registry without it (``404``) is asked for the
        referrers tag schema's index (``sha256-<hex>``) instead, unless ``tags`` (the
        repository's tag list, just read) shows there is no such tag. After a ``404``
        the API is not asked again for ``NO_REFERRERS_API_SECONDS`` (only the tag schema).
        """
        status, body = _NOT_FOUND, b""
        if time.monotonic() >= self._no_referrers_api_until:
            scope = f"repository:{repository}:pull"
            path = f"/v2/{repository}/referrers/{digest}"
            headers = {"Accept": "application/vnd.oci.image.index.v1+json"}
            async with self._open("GET", path, scope, headers) as response:
                status = response.status_code
                body = await response.aread() if status == _OK else b""
            if status == _NOT_FOUND:
                # NOTE: a registry with the API never answers 404 (distribution-spec
                # 1.1), so it lacks it: a planning run over many tags asks it once
                self._no_referrers_api_until = time.monotonic() + NO_REFERRERS_API_SECONDS
        if status != _OK:
            tag = digest.replace(":", "-")
            if tags is not None and tag not in tags:
                return []
            try:
                fallback = await self.get_manifest(repository, tag, 4 * 1024 * 1024)
            except UpstreamNotFoundError:
                return []
            body = fallback.payload
        try:
            manifests = json.loads(body).get("manifests") or []
        except (ValueError, AttributeError) as exc:
            raise UpstreamInvalidError(f"referrers of {digest}: not an index") from exc
        return [m for m in manifests if isinstance(m, dict) and m.get("digest")]

    def _location(self, response: httpx.Response) -> str:
        location = response.headers.get("location")
        if not location:
            raise UpstreamUnavailableError("the registry sent no upload location")
        return self._url(location)

    @staticmethod
    async def _refused(response: httpx.Response, what: str) -> UpstreamError:
        body = (await response.aread())[:_ERROR_BODY_MAX]
        status = response.status_code
        code, text = oci_error(body)
        said = f"{code}: {text}" if code else text
        if status == _NOT_FOUND:
            message = f"{what}: {status} {said}"
        else:
            message = f"{what}: the registry answered {status} {said}".rstrip()
        return refusal_kind(status)(message, status=status, code=code)


class _Download:
    """An open blob body of a declared size (``core.upstream_ports.BlobDownload``)."""

    def __init__(self, response: httpx.Response, size: int, digest: str, offset: int = 0) -> None:
        self._response = response
        self._size = size
        self._digest = digest
        self._offset = offset

    @property
    def size(self) -> int:
        return self._size

    @property
    def offset(self) -> int:
        return self._offset

    async def chunks(self) -> AsyncIterator[bytes]:
        received = 0
        expected = self._size - self._offset
        try:
            async for chunk in self._pieces():
                received += len(chunk)
                if received > expected:
                    raise UpstreamInvalidError(
                        f"blob {self._digest}: upstream sent more than the {expected} "
                        "bytes it declared"
                    )
                yield chunk
        except httpx.HTTPError as exc:
            raise UpstreamUnavailableError(f"blob {self._digest}: download failed: {exc}") from exc
        if received != expected:
            raise UpstreamInvalidError(
                f"blob {self._digest}: upstream sent {received} of {expected} bytes"
            )

    async def _pieces(self) -> AsyncIterator[bytes]:
        """The body in pieces of about ``_CHUNK`` bytes (the last one shorter).

        A plain body (no content encoding) is gathered from the reads as they arrive and
        joined once per piece, which costs less than the client's decoder and re-chunking.
        """
        response = self._response
        if response.headers.get("content-encoding", "identity").lower() != "identity":
            async for chunk in response.aiter_bytes(_CHUNK):
                yield chunk
            return
        gathered: list[bytes] = []
        held = 0
        async for read in response.aiter_raw():
            gathered.append(read)
            held += len(read)
            if held >= _CHUNK:
                yield b"".join(gathered)
                gathered, held = [], 0
        if held:
            yield b"".join(gathered)


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
