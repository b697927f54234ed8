"""An upstream blob body is handed on in pieces of about 1 MiB, byte for byte, and checked
against the size the upstream declared (the proxy cache writes one piece per thread hop)."""

from __future__ import annotations

import gzip
from collections.abc import AsyncIterator

import httpx
import pytest

from adapters.upstream_registry import _CHUNK, UpstreamClient, _Download
from core.upstream_ports import UpstreamInvalidError

READ = 64 * 1024


class _Reads(httpx.AsyncByteStream):
    def __init__(self, body: bytes) -> None:
        self._body = body

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for start in range(0, len(self._body), READ):
            yield self._body[start : start + READ]


def _response(
    body: bytes, headers: dict[str, str] | None = None, status: int = 200
) -> httpx.Response:
    return httpx.Response(status, headers=headers or {}, stream=_Reads(body))


async def _pieces(download: _Download) -> list[bytes]:
    return [piece async for piece in download.chunks()]


async def test_a_plain_body_arrives_whole_in_pieces_of_about_a_mebibyte() -> None:
    body = bytes(range(256)) * (10 * 1024 + 3)  # 2.5 MiB and a bit, not a multiple of a read
    pieces = await _pieces(_Download(_response(body), len(body), "sha256:x"))
    assert b"".join(pieces) == body
    assert [len(p) >= _CHUNK for p in pieces[:-1]] == [True] * (len(pieces) - 1)
    assert all(len(p) < _CHUNK + READ for p in pieces)
    assert len(pieces) == 3


async def test_an_encoded_body_is_decoded() -> None:
    body = b"layer bytes " * 50_000
    packed = gzip.compress(body)
    response = _response(packed, {"content-encoding": "gzip"})
    pieces = await _pieces(_Download(response, len(body), "sha256:x"))
    assert b"".join(pieces) == body


@pytest.mark.parametrize("declared", [100, 3 * READ + 1])
async def test_a_body_of_another_size_than_declared_is_refused(declared: int) -> None:
    body = b"z" * (3 * READ)
    with pytest.raises(UpstreamInvalidError):
        await _pieces(_Download(_response(body), declared, "sha256:x"))


async def test_a_range_the_upstream_served_starts_the_download_there() -> None:
    body = bytes(range(256)) * 1000
    served = _response(
        body[1000:], {"content-range": f"bytes 1000-{len(body) - 1}/{len(body)}"}, 206
    )
    download = UpstreamClient._download(served, "sha256:x", 1000)
    assert (download.size, download.offset) == (len(body), 1000)
    assert b"".join(await _pieces(download)) == body[1000:]


async def test_an_upstream_that_ignores_the_range_is_read_whole() -> None:
    body = b"w" * 5000
    whole = _response(body, {"content-length": str(len(body))})
    download = UpstreamClient._download(whole, "sha256:x", 1000)
    assert (download.size, download.offset) == (len(body), 0)
    assert b"".join(await _pieces(download)) == body


@pytest.mark.parametrize(
    "content_range", ["bytes 999-4999/5000", "bytes 1000-3999/5000", "bytes */5000", ""]
)
def test_a_range_other_than_asked_is_refused(content_range: str) -> None:
    answer = _response(b"r" * 4000, {"content-range": content_range} if content_range else {}, 206)
    with pytest.raises(UpstreamInvalidError, match="asked for bytes 1000-"):
        UpstreamClient._download(answer, "sha256:x", 1000)


async def test_a_ranged_body_longer_than_the_rest_is_refused() -> None:
    answer = _response(b"r" * 4500, {"content-range": "bytes 1000-4999/5000"}, 206)
    with pytest.raises(UpstreamInvalidError, match="more than the 4000 bytes"):
        await _pieces(UpstreamClient._download(answer, "sha256:x", 1000))
