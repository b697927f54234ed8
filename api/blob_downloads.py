"""Which blob GETs are redirected to the zero-copy download listener, and where to.

``api.download_wiring`` puts a :class:`DownloadRedirects` in ``registry.extras`` once the
worker's listener (``api.download_server``) is bound; the blob controller asks it for a
location after the pull grant check and the ``before_blob_served`` hook, exactly where
an S3 store's presigned redirect is decided.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from core.download_links import DownloadLink, LinkSigner

if TYPE_CHECKING:
    from collections.abc import Callable

    from litestar import Request

    from api.context import Registry
    from core.digests import Digest
    from core.download_settings import DownloadSettings

#: ``registry.extras`` key of the worker's :class:`DownloadRedirects`.
EXTRA: Final = "downloads"
_WILDCARDS: Final = frozenset({"0.0.0.0", "::", ""})  # noqa: S104 - compared, never bound
#: Headers a reverse proxy adds: its clients may not reach the listener's own address.
_PROXY_HEADERS: Final = ("forwarded", "x-forwarded-for", "x-forwarded-host", "via")


def blob_headers(digest: Digest, size: int) -> dict[str, str]:
    """The headers of a whole-blob answer, on ``/v2`` and on the download listener."""
    return {
        "Docker-Content-Digest": str(digest),
        "ETag": f'"{digest}"',
        "Accept-Ranges": "bytes",
        "Content-Length": str(size),
        "Cache-Control": "max-age=31536000",
    }


def is_loopback(host: str | None) -> bool:
    """Whether ``host`` is a loopback IP address (names are not resolved)."""
    if not host:
        return False
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return host == "localhost"


def _host_for_url(host: str) -> str:
    return f"[{host}]" if ":" in host else host


@dataclass(frozen=True)
class DownloadRedirects:
    """Issues signed download URLs for one worker's listener, bound on ``port``."""

    settings: DownloadSettings
    signer: LinkSigner
    port: int
    clock: Callable[[], float]

    def base_url(self, request_host: str | None, client_host: str | None) -> str | None:
        """The listener's base URL as this client can reach it, or ``None`` if it cannot.

        Args:
            request_host: The host name the client used for the ``/v2`` request.
            client_host: The client's address.
        """
        if self.settings.public_url is not None:
            return self.settings.public_url.rstrip("/")
        host = self.settings.listen_host
        if host in _WILDCARDS:
            if not request_host:
                return None
            host = request_host
        elif is_loopback(host) and not is_loopback(client_host):
            return None
        return f"http://{_host_for_url(host)}:{self.port}"

    def location(
        self,
        request: Request[Any, Any, Any],
        repository: str,
        tenant: str,
        digest: Digest,
        size: int,
    ) -> str | None:
        """A signed URL for a whole-blob GET of ``size`` bytes, or ``None`` to serve in place."""
        if size < self.settings.threshold_bytes:
            return None
        if self.settings.public_url is None and any(h in request.headers for h in _PROXY_HEADERS):
            return None  # behind a proxy that was not told about the listener
        client = request.client.host if request.client is not None else None
        base = self.base_url(request.url.hostname, client)
        if base is None:
            return None
        expires = int(self.clock()) + self.settings.url_seconds
        link = DownloadLink(tenant=tenant, digest=digest, repository=repository, expires=expires)
        return base + self.signer.path_and_query(link)


def download_redirects(registry: Registry) -> DownloadRedirects | None:
    """The worker's redirects, if its download listener is running."""
    found = registry.extras.get(EXTRA)
    return found if isinstance(found, DownloadRedirects) else None
