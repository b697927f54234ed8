"""httpcore's connection pool, handing out connections without checking every one each time.

httpcore's pool decides which connection serves which request in one pass over all its
connections, made whenever a request arrives and again whenever a response is closed.
That pass asks every idle connection whether it expired (for HTTP/1.1, a readability
check of its socket) and, for each idle one, counts the whole pool again. A client that
keeps tens of connections to one registry (a replication copy, a proxy filling its
cache) paid for tens of socket checks and hundreds of state queries per request, the
largest part of its event loop's work for small requests.

:class:`LazyPool` is httpcore's pool with a cheaper pass. Its guarantees:

- a request is handed an idle connection only after that connection was checked in the
  same pass (closed, past its keep-alive time, or closed by the server: readable while
  idle), so a dead connection is never reused;
- at most ``max_keepalive_connections`` idle connections are kept (the oldest first; a
  surplus is closed), at most ``max_connections`` are open, and a request for an origin
  that no open connection serves, in a full pool, closes an idle one to open its own;
- every idle connection is checked at least once every :data:`SWEEP_SECONDS` while the
  pool is used, so connections the server closed or that outlived their keep-alive are
  closed without waiting to be picked;
- one connection is handed to at most one queued request per pass (HTTP/1.1 serves one
  request at a time; httpcore's pass could hand the same idle connection to several,
  each but one then retrying).

Everything else (connecting, TLS, timeouts, the request queue, closing) is httpcore's.
The pass overrides a method httpcore keeps private; ``tests/unit/adapters/test_http_pool.py``
runs the pool against real sockets so that a change of httpcore that breaks it fails there.
"""

from __future__ import annotations

import time
from typing import Final

import httpcore
from httpcore import AsyncConnectionInterface

#: Longest time between two checks of every idle connection while the pool is used.
SWEEP_SECONDS: Final = 1.0


class LazyPool(httpcore.AsyncConnectionPool):
    """httpcore's connection pool whose assignment checks only the connections it hands out."""

    _swept = 0.0

    def _assign_requests_to_connections(self) -> list[AsyncConnectionInterface]:
        """Drop closed connections, close surplus or expired idle ones, assign queued requests.

        Returns the connections to close (closed by the caller, outside the pool's lock).
        """
        now = time.monotonic()
        sweep = now - self._swept >= SWEEP_SECONDS
        if sweep:
            self._swept = now
        closing: list[AsyncConnectionInterface] = []
        kept: list[AsyncConnectionInterface] = []
        idle = 0
        for connection in self._connections:
            if connection.is_closed():
                continue
            if connection.is_idle():
                if idle >= self._max_keepalive_connections or (sweep and connection.has_expired()):
                    closing.append(connection)
                    continue
                idle += 1
            kept.append(connection)
        self._connections = kept
        taken: set[int] = set()
        for pool_request in [r for r in self._requests if r.is_queued()]:
            origin = pool_request.request.url.origin
            chosen = self._reusable(origin, taken, closing, sweep) or self._opened(
                origin, taken, closing
            )
            if chosen is None:
                continue  # the pool is full and busy: the request waits for the next pass
            taken.add(id(chosen))
            pool_request.assign_to_connection(chosen)
        return closing

    def _reusable(
        self,
        origin: httpcore.Origin,
        taken: set[int],
        closing: list[AsyncConnectionInterface],
        checked: bool,
    ) -> AsyncConnectionInterface | None:
        """The first open connection that can serve ``origin`` now (checked before reuse)."""
        for connection in list(self._connections):
            if id(connection) in taken or not (
                connection.can_handle_request(origin) and connection.is_available()
            ):
                continue
            if not checked and connection.is_idle() and connection.has_expired():
                self._connections.remove(connection)
                closing.append(connection)
                continue
            return connection
        return None

    def _opened(
        self, origin: httpcore.Origin, taken: set[int], closing: list[AsyncConnectionInterface]
    ) -> AsyncConnectionInterface | None:
        """A new connection to ``origin``, closing an idle one first when the pool is full."""
        if len(self._connections) >= self._max_connections:
            spare = next((c for c in self._connections if id(c) not in taken and c.is_idle()), None)
            if spare is None:
                return None
            self._connections.remove(spare)
            closing.append(spare)
        connection = self.create_connection(origin)
        self._connections.append(connection)
        return connection


__all__ = ["SWEEP_SECONDS", "LazyPool"]
