"""Settings of the API's HTTP connections: timeouts and connection caps (``moorage api``).

They bound what idle and slow clients can hold: a connection that does not deliver a
request head within ``header_timeout_seconds`` is closed, as is one that leaves a request
body unsent for ``body_timeout_seconds`` (``408``) or stays idle between two requests for
``keep_alive_timeout_seconds``. ``max_connections`` caps the connections one server worker
serves at once; more wait in the kernel's accept queue of ``backlog`` entries. The values
go to the ASGI server (``cli.api``), to the one request pipeline where the server has no
such knob (``api.receive_limits``) and to the download listener (``api.download_server``).
"""

from __future__ import annotations

from pydantic import BaseModel, Field

#: granian takes the head timeout in whole milliseconds, at most one minute.
HEADER_TIMEOUT_MAX = 60.0


class ServerSettings(BaseModel):
    """Timeouts and caps of the API's HTTP connections (per server worker process)."""

    #: Time a client has to send a whole request head, from connecting (or from the end of
    #: the previous response); a client trickling its head is closed when it runs out.
    header_timeout_seconds: float = Field(default=10.0, ge=0.001, le=HEADER_TIMEOUT_MAX)
    #: Longest wait for the next piece of a request body; the request is then answered
    #: ``408`` and the connection closed.
    body_timeout_seconds: float = Field(default=60.0, gt=0, le=3600)
    #: How long a connection may stay idle between two requests.
    keep_alive_timeout_seconds: float = Field(default=5.0, ge=1, le=3600)
    #: Connections one server worker serves at once; beyond it they wait to be accepted.
    max_connections: int = Field(default=4096, ge=16, le=1_000_000)
    #: Length of the listening socket's accept queue.
    backlog: int = Field(default=2048, ge=128, le=65535)

    @property
    def header_timeout_ms(self) -> int:
        """The head timeout in whole milliseconds (at least one)."""
        return max(1, round(self.header_timeout_seconds * 1000))
