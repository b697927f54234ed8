"""HAProxy (Debian's ``haproxy`` package) as the load balancer in front of API processes.

The front end listens on 127.0.0.1 on a free port and spreads requests round robin over
the given back ends. Each back end is health-checked with ``GET /readyz`` every
``CHECK_INTERVAL``: two failed checks take it out of the pool, one good check puts it
back. A request whose connection to a back end fails is retried once on another one.
When no back end is in the pool, HAProxy answers 503 with an OCI error body (the
``UNAVAILABLE`` code), so registry clients read a registry error, never an HTML page.
The state of each back end is read from HAProxy's stats socket (``show stat``).
"""

from __future__ import annotations

import csv
import socket
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

from tests.services.process import LOOPBACK, ManagedProcess, free_port, port_accepts, spawn
from tests.services.tools import MissingToolError, find_tool

if TYPE_CHECKING:
    from collections.abc import Sequence

START_TIMEOUT = 20.0
#: Milliseconds between two health checks of one back end.
CHECK_INTERVAL = 500
BACKEND = "moorage"
DEBIAN_HAPROXY = "/usr/sbin/haproxy"
_UNAVAILABLE_BODY = (
    b'{"errors":[{"code":"UNAVAILABLE","message":"no registry process is ready","detail":null}]}'
)


@dataclass
class HAProxy:
    """A running HAProxy: where it answers, its stats socket and its process."""

    url: str
    port: int
    stats_socket: Path
    process: ManagedProcess

    @property
    def pid(self) -> int:
        return self.process.pid

    def server_states(self) -> dict[str, str]:
        """Each back-end server's state as HAProxy sees it (``UP``, ``DOWN``, ...)."""
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(5)
            sock.connect(str(self.stats_socket))
            sock.sendall(b"show stat\n")
            chunks = []
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        lines = b"".join(chunks).decode().lstrip("# ").splitlines()
        rows = csv.DictReader(line for line in lines if line)
        return {
            row["svname"]: row["status"].split()[0]
            for row in rows
            if row["pxname"] == BACKEND and row["svname"] not in ("FRONTEND", "BACKEND")
        }

    def stop(self) -> None:
        self.process.stop()


def haproxy_executable() -> str:
    """The ``haproxy`` on ``PATH``, else Debian's ``/usr/sbin/haproxy``."""
    try:
        return find_tool("haproxy")
    except MissingToolError:
        if Path(DEBIAN_HAPROXY).is_file():
            return DEBIAN_HAPROXY
        raise


def _error_file(path: Path) -> Path:
    head = (
        "HTTP/1.1 503 Service Unavailable\r\n"
        "Content-Type: application/json\r\n"
        f"Content-Length: {len(_UNAVAILABLE_BODY)}\r\n"
        "Retry-After: 1\r\n"
        "Cache-Control: no-store\r\n"
        "Connection: close\r\n\r\n"
    )
    path.write_bytes(head.encode() + _UNAVAILABLE_BODY)
    return path


def render_config(
    port: int, backends: Sequence[tuple[str, int]], stats_socket: Path, error_file: Path
) -> str:
    """The HAProxy configuration of a front end on ``port`` over ``backends`` (name, port)."""
    servers = "\n".join(
        f"    server {name} {LOOPBACK}:{backend_port} check inter {CHECK_INTERVAL} fall 2 rise 1"
        for name, backend_port in backends
    )
    return f"""global
    stats socket {stats_socket} mode 600 level admin
    maxconn 512

defaults
    mode http
    timeout connect 2s
    timeout client 60s
    timeout server 60s
    timeout queue 2s
    retries 1
    option redispatch 1
    retry-on conn-failure empty-response
    option forwardfor
    errorfile 503 {error_file}

frontend registry
    bind {LOOPBACK}:{port}
    default_backend {BACKEND}

backend {BACKEND}
    balance roundrobin
    option httpchk GET /readyz
    http-check expect status 200
{servers}
"""


def start_haproxy(workdir: Path, backends: Sequence[tuple[str, int]]) -> HAProxy:
    """Start HAProxy in the foreground over ``backends``; wait until its front end accepts."""
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    stats_socket = workdir / "stats.sock"
    config = workdir / "haproxy.cfg"
    config.write_text(
        render_config(port, backends, stats_socket, _error_file(workdir / "503.http"))
    )
    process = spawn(
        "haproxy",
        [haproxy_executable(), "-db", "-f", str(config)],
        log_path=workdir / "haproxy.log",
        cwd=workdir,
    )
    process.wait_until(partial(port_accepts, port), timeout=START_TIMEOUT, what="front end open")
    return HAProxy(
        url=f"http://{LOOPBACK}:{port}", port=port, stats_socket=stats_socket, process=process
    )
