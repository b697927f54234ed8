"""Settings of zero-copy blob downloads (``api.download_server``, ``api.blob_downloads``)."""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, Field, model_validator

_MIB = 1024 * 1024


class SendMode(StrEnum):
    """How the download listener sends a body (``api.download_send``)."""

    #: A copy to clients on the listener's host, ``sendfile`` to the others.
    AUTO = "auto"
    #: Always ``sendfile(2)``: the file's pages go to the socket uncopied.
    SENDFILE = "sendfile"
    #: Always read into a buffer and send that.
    COPY = "copy"


class DownloadSettings(BaseModel):
    """Where the download listener runs and which blob GETs are redirected to it.

    A full ``GET`` of a blob of at least ``threshold_bytes`` on ``/v2`` is answered with a
    ``307`` to a short-lived signed URL on a listener that sends the file with
    ``sendfile(2)`` (filesystem backend) or the object's stream from its sending threads
    (S3, unless ``s3.redirect_pulls`` sends clients to the store). Each API worker
    process runs its own listener on ``listen_host``:``listen_port``, all of ``moorage
    api``'s workers on one port (``SO_REUSEPORT``): with port ``0`` one that ``moorage
    api`` picks at start, else the fixed one, which deployments behind a load balancer
    need.

    ``public_url``: the base URL clients use to reach the listener (for example the load
    balancer's ``https://downloads.example.com``); it needs a fixed ``listen_port``. When
    unset, URLs name ``listen_host`` and the bound port, and are only issued to clients
    that can reach that address: loopback clients when the listener is bound to a
    loopback address. ``url_seconds`` is how long an issued URL works.
    """

    enabled: bool = True
    listen_host: str = "127.0.0.1"
    listen_port: int = Field(default=0, ge=0, le=65535)
    public_url: str | None = None
    threshold_bytes: int = Field(default=16 * _MIB, ge=0)
    url_seconds: int = Field(default=300, ge=1, le=24 * 3600)
    #: Connections one listener serves at once; more wait in the accept backlog
    #: (``server.backlog``). An idle connection costs a socket and a small task.
    max_connections: int = Field(default=4096, ge=1, le=65536)
    #: Threads of one listener that send blobs at once; a client that stops reading
    #: hands its thread back (``api.download_server``).
    send_threads: int = Field(default=64, ge=1, le=4096)
    #: How long a connection may leave the response unread before it is closed. The
    #: request head is bounded by ``server.header_timeout_seconds``, the idle time between
    #: two requests by ``server.keep_alive_timeout_seconds``.
    idle_timeout_seconds: float = Field(default=30.0, gt=0, le=3600)
    #: ``auto``: clients on this host (loopback, or the listener's own address, such as a
    #: TLS proxy in front of it) receive a copy, which costs them half the CPU per byte
    #: of receiving ``sendfile``'s page-cache pages; others get ``sendfile``.
    send_mode: SendMode = SendMode.AUTO

    @model_validator(mode="after")
    def _public_url_needs_fixed_port(self) -> DownloadSettings:
        if self.public_url is not None:
            if not self.public_url.startswith(("http://", "https://")):
                raise ValueError("downloads.public_url must be an http:// or https:// URL")
            if self.listen_port == 0:
                raise ValueError("downloads.public_url needs a fixed downloads.listen_port")
        return self
