"""Small HTTP helpers shared by the OCI controllers: pagination, bodies, ranges."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from functools import partial
from typing import Any
from urllib.parse import urlencode

import anyio.to_thread
from litestar import Request

from core.errors import OCIErrorCode, RegistryError

#: Bytes gathered before a blocking storage write (bounds memory per request).
WRITE_BUFFER = 4 * 1024 * 1024
LAST_MAX = 512


def pagination(request: Request[Any, Any, Any], page_max: int) -> tuple[int, str | None]:
    """``n`` (clamped to ``page_max``) and ``last`` from the query; 400 when malformed."""
    raw_n = request.query_params.get("n")
    last = request.query_params.get("last")
    n = page_max
    if raw_n is not None:
        if not raw_n.isdigit() or len(raw_n) > 12:  # noqa: PLR2004
            raise RegistryError(
                OCIErrorCode.UNSUPPORTED, "n must be a non-negative integer", status=400
            )
        n = min(int(raw_n), page_max)
    if last is not None and len(last) > LAST_MAX:
        raise RegistryError(OCIErrorCode.UNSUPPORTED, "last is too long", status=400)
    return n, last


def next_link(path: str, n: int, last: str, **extra: str) -> str:
    query = urlencode({**extra, "n": n, "last": last})
    return f'<{path}?{query}>; rel="next"'


async def read_limited(request: Request[Any, Any, Any], limit: int) -> bytes:
    """Read the whole body, refusing (413) as soon as it passes ``limit`` bytes."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise _too_large(limit)
    parts: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _too_large(limit)
        parts.append(chunk)
    return b"".join(parts)


def _too_large(limit: int) -> RegistryError:
    return RegistryError(
        OCIErrorCode.SIZE_INVALID, f"payload exceeds the limit of {limit} bytes", status=413
    )


async def pump(stream: AsyncIterator[bytes], write: Callable[[bytes], None]) -> None:
    """Feed ``stream`` to the blocking ``write`` in a worker thread, in bounded batches.

    Receiving the next batch overlaps with writing (and hashing) the previous one, in
    order; at most two batches are held at once.
    """
    pending: asyncio.Task[None] | None = None
    parts: list[bytes] = []
    size = 0
    try:
        async for chunk in stream:
            parts.append(chunk)
            size += len(chunk)
            if size >= WRITE_BUFFER:
                if pending is not None:
                    await pending
                # NOTE: the pieces are joined in the worker thread: one copy, off the loop.
                job = partial(_write_joined, write, parts)
                pending = asyncio.create_task(anyio.to_thread.run_sync(job))
                parts, size = [], 0
        if pending is not None:
            await pending
            pending = None
        if parts:
            await anyio.to_thread.run_sync(partial(_write_joined, write, parts))
    finally:
        if pending is not None:
            pending.cancel()
            with contextlib.suppress(BaseException):
                await pending


def _write_joined(write: Callable[[bytes], None], parts: list[bytes]) -> None:
    write(parts[0] if len(parts) == 1 else b"".join(parts))


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """A single ``bytes=`` range of a blob of ``size`` bytes as (start, end inclusive).

    ``None`` means the whole blob; an unsatisfiable range raises 416.
    """
    if not header:
        return None
    unit, _, spec = header.partition("=")
    if unit.strip() != "bytes" or "," in spec:
        return None
    first, sep, last = spec.strip().partition("-")
    if not sep:
        raise _unsatisfiable(size)
    try:
        if first == "":
            length = int(last)
            start, end = max(size - length, 0), size - 1
        else:
            start = int(first)
            end = min(int(last), size - 1) if last else size - 1
    except ValueError as exc:
        raise _unsatisfiable(size) from exc
    if start < 0 or start > end or start >= size:
        raise _unsatisfiable(size)
    return start, end


def _unsatisfiable(size: int) -> RegistryError:
    return RegistryError(OCIErrorCode.RANGE_INVALID).with_headers(
        **{"Content-Range": f"bytes */{size}"}
    )


def content_range(header: str | None) -> tuple[int, int] | None:
    """``(start, end)`` of a PATCH ``Content-Range: <start>-<end>`` header."""
    if header is None:
        return None
    value = header.strip().removeprefix("bytes").strip().lstrip("=").strip()
    first, sep, last = value.partition("-")
    if not sep or not first.isdigit() or not last.split("/")[0].isdigit():
        raise RegistryError(OCIErrorCode.RANGE_INVALID, "malformed Content-Range")
    if int(last.split("/")[0]) < int(first):
        raise RegistryError(OCIErrorCode.RANGE_INVALID, "malformed Content-Range")
    return int(first), int(last.split("/")[0])
