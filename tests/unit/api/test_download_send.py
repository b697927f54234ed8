"""Which clients the download listener copies bodies to (``api.download_send``)."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from api.download_send import copies_for
from core.download_settings import SendMode


class _Peer:
    """A connection whose two ends are given (a remote client cannot be made on loopback)."""

    def __init__(self, own: str, peer: str) -> None:
        self._own, self._peer = own, peer

    def getsockname(self) -> tuple[str, int]:
        return self._own, 5000

    def getpeername(self) -> tuple[str, int]:
        return self._peer, 40000


@pytest.fixture
def loopback_pair() -> Iterator[socket.socket]:
    listener = socket.create_server(("127.0.0.1", 0))
    client = socket.create_connection(listener.getsockname())
    accepted, _ = listener.accept()
    try:
        yield accepted
    finally:
        for sock in (accepted, client, listener):
            sock.close()


def test_auto_copies_to_a_loopback_client_and_the_fixed_modes_do_as_told(
    loopback_pair: socket.socket,
) -> None:
    assert copies_for(SendMode.AUTO, loopback_pair)
    assert copies_for(SendMode.COPY, loopback_pair)
    assert not copies_for(SendMode.SENDFILE, loopback_pair)


@pytest.mark.parametrize(
    ("own", "peer", "copied"),
    [
        ("10.0.0.5", "10.0.0.5", True),  # a proxy on this host, through its own address
        ("::1", "::1", True),
        ("10.0.0.5", "10.0.0.9", False),  # across the network
        ("2001:db8::1", "2001:db8::2", False),
        ("0.0.0.0", "127.0.0.2", True),  # noqa: S104 - the wildcard-bound listener's view
    ],
)
def test_auto_copies_only_to_clients_on_this_host(own: str, peer: str, copied: bool) -> None:
    connection = _Peer(own, peer)
    assert copies_for(SendMode.AUTO, connection) is copied  # type: ignore[arg-type]
    assert copies_for(SendMode.SENDFILE, connection) is False  # type: ignore[arg-type]
