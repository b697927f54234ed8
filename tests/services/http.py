"""A tiny readiness probe over plain HTTP, without extra dependencies."""

from __future__ import annotations

import contextlib
import http.client


def answers(host: str, port: int, path: str, status: int = 200) -> bool:
    """Tell whether ``GET http://host:port/path`` answers with ``status``."""
    conn = http.client.HTTPConnection(host, port, timeout=2)
    try:
        with contextlib.suppress(OSError, http.client.HTTPException):
            conn.request("GET", path)
            response = conn.getresponse()
            response.read()
            return response.status == status
        return False
    finally:
        conn.close()
