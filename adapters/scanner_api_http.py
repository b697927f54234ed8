"""HTTP of the scanner API: pulling a requester's image, and calling an external scanner.

:class:`RemoteImageSource` is the image source of a served scan. The analyzer runs in a
worker thread and reads synchronously; each manifest and blob is fetched on the event
loop (``anyio.from_thread``) through :class:`adapters.upstream_registry.UpstreamClient`
(the SSRF-safe outbound client: the outbound policy decides where it may connect). A blob
is spooled into a bounded temporary file (memory up to ``spool_bytes``) and read back,
so no more than one blob is held at a time.

:class:`ScannerApiClient` is the client side: ``GET /api/v1/metadata``,
``POST /api/v1/scan`` and ``GET /api/v1/scan/{id}/report`` (the vulnerability report,
and the SBOM report of v1.2's ``sbom`` capability) of one external scanner, through the
outbound client; :class:`AdapterProbe` pings a registered scanner with it.
"""

from __future__ import annotations

import base64
import json
import tempfile
from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import asynccontextmanager
from typing import Any, Final
from urllib.parse import quote, urlencode

import anyio.from_thread
import httpx

from adapters.outbound_http import OutboundClient, OutboundRefusedError
from adapters.upstream_registry import UpstreamClient
from core.endpoints import CredentialKind, Credentials, EndpointRecord, EndpointType
from core.outbound import OutboundPolicy
from core.scan_reports import HARBOR_REPORT
from core.scanner_api import (
    METADATA_TYPE,
    SBOM_REPORT,
    SCAN_REQUEST_TYPE,
    AdapterScan,
    ExternalScannerError,
    Poll,
)
from core.scanners import ScannerCall
from core.upstream_ports import UpstreamError, UpstreamNotFoundError

_CHUNK: Final = 1024 * 1024
_MANIFEST_MAX: Final = 4 * 1024 * 1024
_OK, _ACCEPTED, _FOUND = 200, 202, 302
_REPORT_MAX: Final = 256 * 1024 * 1024
#: Longest wait for an adapter's metadata (the ping).
PING_SECONDS: Final = 15.0


class RemoteBlobTooLargeError(UpstreamError):
    """A blob larger than the served scan's bound."""


def _credentials(authorization: str) -> Credentials:
    scheme, _, value = authorization.strip().partition(" ")
    if scheme.lower() == "bearer" and value:
        return Credentials(CredentialKind.TOKEN, secret=value.strip())
    if scheme.lower() == "basic" and value:
        try:
            decoded = base64.b64decode(value.strip(), validate=True).decode()
        except ValueError:
            return Credentials(CredentialKind.NONE)
        username, _, secret = decoded.partition(":")
        return Credentials(CredentialKind.BASIC, username, secret)
    return Credentials(CredentialKind.NONE)


def upstream_of(scan: AdapterScan, policy: OutboundPolicy, timeout: float) -> UpstreamClient:
    """A distribution-API client of the requester's registry, with its authorization."""
    endpoint = EndpointRecord.unsaved(
        "scan-request", scan.registry_url, EndpointType.DISTRIBUTION, insecure=scan.insecure
    )
    return UpstreamClient(
        endpoint,
        _credentials(scan.authorization),
        policy,
        timeout=timeout,
        manifest_max_bytes=_MANIFEST_MAX,
    )


@asynccontextmanager
async def remote_source(
    scan: AdapterScan, policy: OutboundPolicy, max_blob_bytes: int, spool_bytes: int
) -> AsyncIterator[RemoteImageSource]:
    """The image source of a served scan, open while the block runs."""
    client = upstream_of(scan, policy, timeout=60.0)
    try:
        yield RemoteImageSource(client, scan.repository, max_blob_bytes, spool_bytes)
    finally:
        await client.aclose()


class RemoteImageSource:
    """A synchronous image source over an upstream client (see the module).

    Call it only from a worker thread started by ``anyio.to_thread``.
    """

    def __init__(
        self, client: UpstreamClient, repository: str, max_blob_bytes: int, spool_bytes: int
    ) -> None:
        self._client, self._repository = client, repository
        self._max_blob, self._spool = max_blob_bytes, spool_bytes

    async def _manifest(self, digest: str) -> bytes | None:
        try:
            found = await self._client.get_manifest(self._repository, digest, _MANIFEST_MAX)
        except UpstreamNotFoundError:
            return None
        return found.payload

    def manifest(self, digest: str) -> bytes | None:
        return anyio.from_thread.run(self._manifest, digest)

    async def _download(self, digest: str, into: Any) -> None:
        async with self._client.blob(self._repository, digest) as download:
            if download.size > self._max_blob:
                raise RemoteBlobTooLargeError(
                    f"blob {digest} has {download.size} bytes, more than the "
                    f"scanner_api.max_blob_bytes {self._max_blob}"
                )
            async for chunk in download.chunks():
                into.write(chunk)

    def blob(self, digest: str) -> Iterator[bytes]:
        with tempfile.SpooledTemporaryFile(max_size=self._spool) as spool:
            anyio.from_thread.run(self._download, digest, spool)
            spool.seek(0)
            while chunk := spool.read(_CHUNK):
                yield chunk


def _message(body: bytes) -> str:
    try:
        data = json.loads(body)
        return str(data["error"]["message"])
    except (ValueError, KeyError, TypeError):
        return body[:200].decode(errors="replace")


class ScannerApiClient:
    """The Pluggable Scanner API of one external scanner (base URL before ``/api/v1``)."""

    def __init__(
        self,
        url: str,
        auth: Mapping[str, str],
        policy: OutboundPolicy,
        *,
        verify: bool = True,
        timeout: float = 60.0,
    ) -> None:
        """``auth``: the headers that authenticate each call (``core.scanners.auth_headers``)."""
        self._base = url.rstrip("/")
        self._auth = dict(auth)
        self._http = OutboundClient(
            policy, total_timeout=timeout, max_body_bytes=_REPORT_MAX, verify=verify
        )

    @classmethod
    def of(
        cls, call: ScannerCall, policy: OutboundPolicy, timeout: float = 60.0
    ) -> ScannerApiClient:
        """A client of a registered scanner."""
        return cls(call.url, call.headers, policy, verify=not call.skip_tls_verify, timeout=timeout)

    async def aclose(self) -> None:
        await self._http.aclose()

    async def metadata(self) -> dict[str, Any]:
        """The scanner's metadata document (``ExternalScannerError`` with the reason)."""
        headers = {**self._auth, "Accept": f"{METADATA_TYPE}, application/json"}
        url = f"{self._base}/api/v1/metadata"
        try:
            response = await self._http.request("GET", url, headers=headers)
        except OutboundRefusedError as exc:
            raise ExternalScannerError(f"GET {url} was not sent: {exc}") from exc
        except httpx.HTTPError as exc:
            reason = str(exc) or type(exc).__name__
            raise ExternalScannerError(f"GET {url} failed: {reason}") from exc
        if response.status != _OK:
            raise ExternalScannerError(
                f"GET {url} answered {response.status}: {_message(response.body)}"
            )
        try:
            document = json.loads(response.body)
        except ValueError as exc:
            raise ExternalScannerError(f"GET {url} answered no JSON") from exc
        if not isinstance(document, dict):
            raise ExternalScannerError(f"GET {url} answered no JSON object")
        return document

    async def scan(self, request: dict[str, Any]) -> str:
        """Submit a scan request; the scanner's id for it."""
        headers = {**self._auth, "Content-Type": SCAN_REQUEST_TYPE, "Accept": "application/json"}
        body = json.dumps(request).encode()
        response = await self._http.request(
            "POST", f"{self._base}/api/v1/scan", headers=headers, content=body
        )
        if response.status not in (_OK, _ACCEPTED):
            raise ExternalScannerError(
                f"the scanner refused the scan ({response.status}): {_message(response.body)}"
            )
        try:
            return str(json.loads(response.body)["id"])
        except (ValueError, KeyError, TypeError) as exc:
            raise ExternalScannerError("the scanner answered the scan without an id") from exc

    async def report(self, scan_id: str) -> Poll:
        """Poll the vulnerability report of ``scan_id``."""
        return await self._poll(scan_id, HARBOR_REPORT, "")

    async def sbom_report(self, scan_id: str, media_type: str) -> Poll:
        """Poll the SBOM report of ``scan_id`` holding a ``media_type`` document."""
        query = "?" + urlencode({"sbom_media_type": media_type})
        return await self._poll(scan_id, SBOM_REPORT, query)

    async def _poll(self, scan_id: str, accept: str, query: str) -> Poll:
        headers = {**self._auth, "Accept": accept}
        url = f"{self._base}/api/v1/scan/{quote(scan_id, safe='')}/report{query}"
        response = await self._http.request("GET", url, headers=headers)
        if response.status in (_FOUND, _ACCEPTED):
            try:
                wait = float(response.headers.get("refresh-after", "1"))
            except ValueError:
                wait = 1.0
            return Poll(None, wait)
        if response.status != _OK or response.truncated:
            raise ExternalScannerError(
                f"the scanner's report failed ({response.status}): {_message(response.body)}"
            )
        try:
            document = json.loads(response.body)
        except ValueError as exc:
            raise ExternalScannerError("the scanner's report is not JSON") from exc
        if not isinstance(document, dict):
            raise ExternalScannerError("the scanner's report is not a JSON object")
        return Poll(document, 0.0)


class AdapterProbe:
    """Pings registered scanners (``core.scanners.ScannerProbe``) through the outbound policy."""

    def __init__(self, policy: OutboundPolicy, timeout: float = PING_SECONDS) -> None:
        self._policy, self._timeout = policy, timeout

    async def metadata(self, call: ScannerCall) -> dict[str, Any]:
        client = ScannerApiClient.of(call, self._policy, timeout=self._timeout)
        try:
            return await client.metadata()
        finally:
            await client.aclose()
