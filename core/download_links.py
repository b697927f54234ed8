"""Signed, short-lived blob download links (the zero-copy download listener's URLs).

A link names a tenant (the repository's storage id), a blob digest, the repository it
was issued for and an expiry time, and carries an HMAC-SHA256 over all four under a key
derived from the installation's master key. The listener serves the link's blob only if
the signature verifies under one of its keys and the link has not expired; it never
looks anything else up, so issuing a link is the authorization decision (taken on
``/v2`` after the pull grant check and the ``before_blob_served`` hook).

Guarantees: a link cannot be altered to name another blob, tenant, repository or a later
expiry without the key; it stops working ``url_seconds`` after issue; master-key rotation
is honoured (links are signed with the first key and verified with any).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import parse_qs, quote, unquote, urlencode

from core.digests import Digest
from core.errors import RegistryError

if TYPE_CHECKING:
    from collections.abc import Sequence

_VERSION = "v1"
_LABEL = b"moorage-blob-download-link-v1"
_PREFIX = "/blobs/"


class LinkError(ValueError):
    """A download link that is malformed, forged, altered or expired."""


@dataclass(frozen=True, slots=True)
class DownloadLink:
    """What a verified link grants: one blob of one tenant, until ``expires``."""

    tenant: str
    digest: Digest
    repository: str
    expires: int


def link_key(master_key: bytes) -> bytes:
    """The link-signing key derived from one master key (never the master key itself)."""
    return hmac.new(master_key, _LABEL, hashlib.sha256).digest()


def _mac(key: bytes, link: DownloadLink) -> bytes:
    message = "\n".join(
        (_VERSION, link.tenant, str(link.digest), link.repository, str(link.expires))
    )
    return hmac.new(key, message.encode(), hashlib.sha256).digest()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


class LinkSigner:
    """Signs links with the first key and verifies them with any of ``keys``."""

    def __init__(self, keys: Sequence[bytes]) -> None:
        if not keys:
            raise ValueError("a LinkSigner needs at least one key")
        self._keys = list(keys)

    def path_and_query(self, link: DownloadLink) -> str:
        """The link's path and query (``/blobs/<digest>?...``), to append to a base URL."""
        query = urlencode(
            {
                "tenant": link.tenant,
                "repository": link.repository,
                "expires": str(link.expires),
                "signature": _b64(_mac(self._keys[0], link)),
            }
        )
        return f"{_PREFIX}{quote(str(link.digest), safe=':')}?{query}"

    def verify(self, target: str, now: float) -> DownloadLink:
        """The link a request target (path and query) carries, if valid at ``now``.

        Raises:
            LinkError: malformed, not signed by any key, or expired.
        """
        path, _, query = target.partition("?")
        if not path.startswith(_PREFIX):
            raise LinkError("not a download link")
        fields = parse_qs(query, keep_blank_values=True, strict_parsing=False)
        try:
            values = {
                name: fields[name][0]
                for name in ("tenant", "repository", "expires", "signature")
                if len(fields[name]) == 1
            }
            link = DownloadLink(
                tenant=values["tenant"],
                digest=Digest.parse(unquote(path[len(_PREFIX) :])),
                repository=values["repository"],
                expires=int(values["expires"]),
            )
            signature = base64.urlsafe_b64decode(
                values["signature"] + "=" * (-len(values["signature"]) % 4)
            )
        except (KeyError, ValueError, RegistryError) as exc:
            raise LinkError("malformed download link") from exc
        if not any(hmac.compare_digest(_mac(key, link), signature) for key in self._keys):
            raise LinkError("download link signature does not verify")
        if now >= link.expires:
            raise LinkError("download link expired")
        return link
