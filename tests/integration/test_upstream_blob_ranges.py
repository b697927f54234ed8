"""A blob read from a byte onward, as a resumed pull asks its source (``docker-registry``).

The client asks for the rest with an HTTP range; the range goes with every redirect hop
(to blob storage), and the download says where its bytes start. A source that answers a
range with other bytes than asked is refused: ``tests/unit/adapters/test_blob_download_pieces.py``.
"""

from __future__ import annotations

import asyncio
import os
import secrets
from datetime import UTC, datetime
from typing import Any

import pytest

from adapters.upstream_registry import UpstreamClient
from core.endpoints import CredentialKind, Credentials, EndpointRecord, EndpointType
from core.outbound import OutboundPolicy
from tests.replication.rig import push_image, sha
from tests.services.registry_front import RegistryFront

pytestmark = pytest.mark.integration

START = 123_457


def _client(url: str) -> UpstreamClient:
    now = datetime.now(UTC)
    endpoint = EndpointRecord(
        1, "source", url, EndpointType.DISTRIBUTION, CredentialKind.NONE, "", None, None, False,
        (), now, now,
    )  # fmt: skip
    policy = OutboundPolicy.of(["127.0.0.1"], allow_http=True)
    return UpstreamClient(endpoint, Credentials(CredentialKind.NONE), policy)


async def _reads(
    url: str, repo: str, digest: str, starts: list[int]
) -> list[tuple[int, int, bytes]]:
    """(size, offset, bytes) of a download of ``digest`` from each of ``starts``."""
    client = _client(url)
    found = []
    try:
        for start in starts:
            async with client.blob(repo, digest, start) as download:
                body = b"".join([piece async for piece in download.chunks()])
                found.append((download.size, download.offset, body))
    finally:
        await client.aclose()
    return found


@pytest.mark.parametrize("redirect", [False, True], ids=["served", "redirected"])
def test_a_blob_is_read_from_a_byte_onward(docker_registry: Any, redirect: bool) -> None:
    data = os.urandom(300_000)
    repo = f"ranges{secrets.token_hex(3)}/app"
    push_image(docker_registry.url, repo, "1.0", [data])
    front = RegistryFront(docker_registry.url)
    front.config.redirect_blobs = redirect
    try:
        whole, rest = asyncio.run(_reads(front.url, repo, sha(data), [0, START]))
        assert whole == (len(data), 0, data)
        assert rest == (len(data), START, data[START:])
        ranges = [read.range for read in front.blob_reads]
        assert ranges == ["", f"bytes={START}-"]
    finally:
        front.close()
