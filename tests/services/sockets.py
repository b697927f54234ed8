"""Which server worker process answers a loopback TCP connection (Linux ``/proc``).

A multi-worker server shares one listening socket; the kernel hands each new
connection to one worker. While a client connection is open, the worker is the
child process that holds the server side of it: the socket whose inode
``/proc/net/tcp`` lists for ``127.0.0.1:<port> <-> 127.0.0.1:<client port>``.
"""

from __future__ import annotations

import http.client
import time
from dataclasses import dataclass
from pathlib import Path

from tests.services.process import LOOPBACK

_PROC = Path("/proc")
_LISTEN = "0A"
REQUEST_TIMEOUT = 30.0


def _hex_address(port: int) -> str:
    return f"0100007F:{port:04X}"  # NOTE: 127.0.0.1 in /proc/net/tcp's little-endian hex


def _socket_inodes(local: str, remote: str | None) -> set[str]:
    """Inodes of IPv4 sockets bound to ``local`` (and connected to ``remote``, if given)."""
    found: set[str] = set()
    for line in (_PROC / "net" / "tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if fields[1] != local:
            continue
        wanted = fields[3] == _LISTEN if remote is None else fields[2] == remote
        if wanted:
            found.add(fields[9])
    return found


def _holds(pid: int, inodes: set[str]) -> bool:
    wanted = {f"socket:[{inode}]" for inode in inodes}
    try:
        for fd in (_PROC / str(pid) / "fd").iterdir():
            try:
                if str(fd.readlink()) in wanted:
                    return True
            except OSError:
                continue
    except OSError:
        return False
    return False


def _children(pid: int) -> list[int]:
    found: list[int] = []
    for task in (_PROC / str(pid) / "task").iterdir():
        text = (task / "children").read_text().split()
        found.extend(int(child) for child in text)
    return found


def worker_pids(server_pid: int, port: int) -> set[int]:
    """The child processes of ``server_pid`` that share its listening socket on ``port``."""
    listening = _socket_inodes(_hex_address(port), None)
    return {pid for pid in _children(server_pid) if _holds(pid, listening)}


def wait_for_workers(server_pid: int, port: int, count: int, timeout: float = 60.0) -> set[int]:
    """Wait (at most ``timeout`` seconds) until ``count`` workers listen on ``port``."""
    deadline = time.monotonic() + timeout
    while True:
        workers = worker_pids(server_pid, port)
        if len(workers) >= count or time.monotonic() > deadline:
            return workers
        time.sleep(0.2)


@dataclass(frozen=True)
class Answer:
    """One HTTP answer and the PID of the worker process that produced it."""

    worker: int | None
    status: int
    body: bytes


def ask(
    server_pid: int, port: int, method: str, path: str, headers: dict[str, str] | None = None
) -> Answer:
    """Send one request on a fresh connection; name the worker that holds the connection."""
    connection = http.client.HTTPConnection(LOOPBACK, port, timeout=REQUEST_TIMEOUT)
    try:
        connection.request(method, path, headers=headers or {})
        response = connection.getresponse()
        body = response.read()
        client_port = connection.sock.getsockname()[1] if connection.sock else 0
        inodes = _socket_inodes(_hex_address(port), _hex_address(client_port))
        holders = [pid for pid in _children(server_pid) if inodes and _holds(pid, inodes)]
    finally:
        connection.close()
    return Answer(holders[0] if len(holders) == 1 else None, response.status, body)


def ask_every_worker(
    server_pid: int,
    port: int,
    method: str,
    path: str,
    headers: dict[str, str] | None = None,
    *,
    max_requests: int = 60,
) -> dict[int, list[Answer]]:
    """Repeat a request (at most ``max_requests`` times) until every worker has answered.

    Returns the answers by worker PID; the caller asserts that all workers are present.
    """
    workers = worker_pids(server_pid, port)
    answers: dict[int, list[Answer]] = {}
    for _ in range(max_requests):
        answer = ask(server_pid, port, method, path, headers)
        if answer.worker is not None:
            answers.setdefault(answer.worker, []).append(answer)
        if workers and workers <= answers.keys():
            break
    return answers


def held_by(
    server_pid: int, port: int, connection: http.client.HTTPConnection, timeout: float = 10.0
) -> int | None:
    """The worker that accepted the open ``connection``, waiting (bounded) until one has."""
    if connection.sock is None:
        connection.connect()
    assert connection.sock is not None
    client = _hex_address(connection.sock.getsockname()[1])
    deadline = time.monotonic() + timeout
    while True:
        inodes = _socket_inodes(_hex_address(port), client) - {"0"}
        holders = [pid for pid in _children(server_pid) if inodes and _holds(pid, inodes)]
        if len(holders) == 1:
            return holders[0]
        if time.monotonic() > deadline:
            return None
        time.sleep(0.01)


def connect_to_worker(
    server_pid: int, port: int, wanted: set[int], *, max_connections: int = 64
) -> tuple[http.client.HTTPConnection, int] | None:
    """A new connection that one of the ``wanted`` workers accepted, and that worker.

    Connections are opened (at most ``max_connections``) until the kernel hands one to a
    wanted worker; the others are closed again. ``None`` when none reached one.
    """
    spare: list[http.client.HTTPConnection] = []
    try:
        for _ in range(max_connections):
            connection = http.client.HTTPConnection(LOOPBACK, port, timeout=REQUEST_TIMEOUT)
            spare.append(connection)
            worker = held_by(server_pid, port, connection)
            if worker is not None and worker in wanted:
                spare.pop()
                return connection, worker
        return None
    finally:
        for connection in spare:
            connection.close()
