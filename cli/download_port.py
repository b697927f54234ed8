"""One download-listener port for all of ``moorage api``'s workers.

With ``downloads.listen_port = 0`` each worker would bind a port of its own, so a client
fetching several blobs would open a connection to each worker's listener. ``moorage api``
instead picks one free port before its workers start, keeps it reserved (a bound socket
that does not listen), and hands it to them in the environment: every worker's listener
binds it with ``SO_REUSEPORT`` and the kernel spreads connections over them.
"""

from __future__ import annotations

import contextlib
import os
import socket
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from collections.abc import Iterator

    from core.settings import Settings

#: The setting the workers read (``downloads.listen_port``).
PORT_VARIABLE: Final = "MOORAGE_DOWNLOADS__LISTEN_PORT"


@contextlib.contextmanager
def shared_download_port(settings: Settings) -> Iterator[int | None]:
    """Reserve one port for the workers' listeners while the server runs.

    Yields the port, or ``None`` when there is nothing to do: downloads disabled, or a
    port configured (the workers then share that one).
    """
    config = settings.downloads
    if not config.enabled or config.listen_port != 0:
        yield None
        return
    family, kind, proto, _, address = socket.getaddrinfo(
        config.listen_host, 0, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )[0]
    with socket.socket(family, kind, proto) as reserved:
        reserved.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        reserved.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        reserved.bind(address)
        port: int = reserved.getsockname()[1]
        previous = os.environ.get(PORT_VARIABLE)
        os.environ[PORT_VARIABLE] = str(port)
        try:
            yield port
        finally:
            if previous is None:
                os.environ.pop(PORT_VARIABLE, None)
            else:
                os.environ[PORT_VARIABLE] = previous
