"""Temporal over TLS and mutual TLS, as every Moorage client connects.

The dev server cannot serve TLS itself: a TLS-terminating proxy in the test (ALPN h2,
client certificates checked against the test CA) stands in front of it, so the client's
real TLS handshake and the real server behind it are both exercised.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from adapters.temporal_client import connect_temporal
from core.settings import TemporalSettings
from core.temporal_settings import TemporalTlsSettings
from tests.services.temporal import TemporalServer
from tests.services.tls import Pki, TlsProxy, make_pki

pytestmark = pytest.mark.integration


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    return make_pki(tmp_path / "pki")


@pytest.fixture
async def mtls_proxy(pki: Pki, temporal_server: TemporalServer) -> AsyncIterator[TlsProxy]:
    proxy = TlsProxy(pki, temporal_server.port, require_client_cert=True)
    await proxy.start()
    yield proxy
    await proxy.stop()


@pytest.fixture
async def tls_proxy(pki: Pki, temporal_server: TemporalServer) -> AsyncIterator[TlsProxy]:
    proxy = TlsProxy(pki, temporal_server.port, require_client_cert=False)
    await proxy.start()
    yield proxy
    await proxy.stop()


def _settings(proxy: TlsProxy, tls: TemporalTlsSettings) -> TemporalSettings:
    return TemporalSettings(address=f"127.0.0.1:{proxy.port}", tls=tls)


async def test_mutual_tls_reaches_the_server(pki: Pki, mtls_proxy: TlsProxy) -> None:
    tls = TemporalTlsSettings(
        server_ca_file=pki.ca,
        client_cert_file=pki.client_cert,
        client_key_file=pki.client_key,
        server_name="localhost",
    )
    client = await connect_temporal(_settings(mtls_proxy, tls))
    assert await client.service_client.check_health()
    assert await client.count_workflows() is not None


async def test_mutual_tls_without_a_client_certificate_is_refused(
    pki: Pki, mtls_proxy: TlsProxy
) -> None:
    tls = TemporalTlsSettings(server_ca_file=pki.ca, server_name="localhost")
    with pytest.raises(RuntimeError):
        await connect_temporal(_settings(mtls_proxy, tls))


async def test_tls_checks_the_server_certificate(
    pki: Pki, tls_proxy: TlsProxy, tmp_path: Path
) -> None:
    trusted = TemporalTlsSettings(server_ca_file=pki.ca, server_name="localhost")
    client = await connect_temporal(_settings(tls_proxy, trusted))
    assert await client.service_client.check_health()

    other = make_pki(tmp_path / "other")
    untrusted = TemporalTlsSettings(server_ca_file=other.ca, server_name="localhost")
    with pytest.raises(RuntimeError):
        await connect_temporal(_settings(tls_proxy, untrusted))
