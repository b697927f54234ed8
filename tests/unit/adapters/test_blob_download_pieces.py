"""An upstream blob body is handed on in pieces of about 1 MiB, byte for byte, and checked
against the size the upstream declared (the proxy cache writes one piece per thread hop)."""

from __future__ import annotations

import gzip
from collections.abc import AsyncIterator

import httpx
import pytest

from adapters.upstream_registry import _CHUNK, _Download
from core.upstream_ports import UpstreamInvalidError

READ = 64 * 1024


class _Reads(httpx.AsyncByteStream):
    def __init__(self, body: bytes) -> None:
        self._body = body

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for start in range(0, len(self._body), READ):
            yield self._body[start : start + READ]


def _response(body: bytes, headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.Response(200, headers=headers or {}, stream=_Reads(body))


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
