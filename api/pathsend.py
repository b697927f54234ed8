"""Whole-file responses that the ASGI server sends by itself (``http.response.pathsend``).

Used only when the server advertises the extension (granian does); Litestar's ``File``
streams the file in chunks through Python instead.
"""

from __future__ import annotations

from typing import Any

from litestar import Request, Response
from litestar.response.base import ASGIResponse
from litestar.types import Receive, Send

EXTENSION = "http.response.pathsend"


def supports_pathsend(request: Request[Any, Any, Any]) -> bool:
    """Whether the server running this request accepts ``http.response.pathsend``."""
    extensions = request.scope.get("extensions") or {}
    return EXTENSION in extensions


class _PathSendASGIResponse(ASGIResponse):
    def __init__(self, path: str, size: int, headers: dict[str, str], media_type: str) -> None:
        super().__init__(content_length=size, headers=headers, media_type=media_type)
        self._path = path

    async def send_body(self, send: Send, receive: Receive) -> None:  # noqa: ARG002
        message: Any = {"type": EXTENSION, "path": self._path}
        await send(message)


class PathSend(Response[bytes]):
    """A ``200`` whose body is the whole file at ``path`` (``size`` bytes)."""

    def __init__(self, path: str, size: int, headers: dict[str, str], media_type: str) -> None:
        super().__init__(content=b"", headers=headers, media_type=media_type)
        self._path, self._size, self._fixed_headers = path, size, headers

    def to_asgi_response(self, *_args: Any, **_kwargs: Any) -> ASGIResponse:
        return _PathSendASGIResponse(
            self._path, self._size, self._fixed_headers, str(self.media_type)
        )
