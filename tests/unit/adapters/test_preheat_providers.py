"""The provider clients: Dragonfly's job results, Kraken's envelope, refusals at call time."""

from __future__ import annotations

import ssl
from collections.abc import Iterator, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest

from adapters.outbound_http import OutboundClient
from adapters.preheat_providers import auth_headers, dragonfly_status, provider_client
from core.mediatypes import DOCKER_MANIFEST, OCI_INDEX, OCI_MANIFEST
from core.outbound import OutboundPolicy
from core.preheat import (
    AuthMode,
    ChildManifest,
    Instance,
    JobSpec,
    JobState,
    ProviderError,
    ProviderRefusedError,
    Scope,
    Vendor,
)
from tests.services.p2p_standins import (
    DragonflyStandIn,
    KrakenStandIn,
    start_dragonfly,
    start_kraken,
)
from tests.services.tls import make_pki

NOW = datetime(2026, 12, 3, tzinfo=UTC)
DIGEST = f"sha256:{7:064x}"


def _instance(vendor: Vendor, endpoint: str, mode: AuthMode = AuthMode.NONE) -> Instance:
    return Instance(1, "i", "", vendor, endpoint, mode, "", None, True, NOW, NOW)


def _spec() -> JobSpec:
    return JobSpec(
        registry="registry.example",
        repository="team/app",
        tag="v1",
        digest=DIGEST,
        media_type="application/vnd.oci.image.manifest.v1+json",
        manifest_url=f"https://registry.example/v2/team/app/manifests/{DIGEST}",
        token="tok",
        scope=Scope.ALL_PEERS,
        cluster_ids=(1,),
        event_id="preheat-1-abc-1",
        source="/projects/team/preheat/policies/1",
    )


@pytest.fixture
def dragonfly() -> Iterator[DragonflyStandIn]:
    server = start_dragonfly("pat")
    yield server
    server.stop()


@pytest.fixture
def kraken() -> Iterator[KrakenStandIn]:
    server = start_kraken()
    yield server
    server.stop()


def test_dragonfly_result_gives_every_peer_with_its_cluster() -> None:
    job = {
        "id": 4,
        "state": "FAILURE",
        "result": {
            "job_states": [
                {
                    "results": [
                        {
                            "scheduler_cluster_id": 2,
                            "success_tasks": [{"hostname": "a", "ip": "10.0.0.1", "url": "u1"}],
                            "failure_tasks": [
                                {"hostname": "b", "ip": "10.0.0.2", "description": "disk full"}
                            ],
                        }
                    ]
                }
            ]
        },
    }
    status = dragonfly_status(job)
    assert status.state is JobState.FAILED
    assert [(p.ok, p.hostname, p.cluster_id) for p in status.peers] == [
        (True, "a", 2),
        (False, "b", 2),
    ]
    assert status.message == "disk full"
    assert dragonfly_status({"id": 4, "status": "PENDING"}).state is JobState.RUNNING
    assert dragonfly_status({"id": 4, "state": "SUCCESS"}).state is JobState.SUCCEEDED


def test_auth_headers() -> None:
    assert auth_headers(AuthMode.NONE, "", "x") == {}
    assert auth_headers(AuthMode.BEARER, "", "pat") == {"Authorization": "Bearer pat"}
    assert auth_headers(AuthMode.BASIC, "u", "p") == {"Authorization": "Basic dTpw"}
    assert auth_headers(AuthMode.HEADER, "", "X-Api-Key: k") == {"X-Api-Key": "k"}


async def test_kraken_gets_a_distribution_envelope(kraken: KrakenStandIn) -> None:
    client = OutboundClient(OutboundPolicy.of(["127.0.0.1/32"], allow_http=True))
    try:
        provider = provider_client(client, _instance(Vendor.KRAKEN, kraken.url), None)
        job = await provider.create(_spec())
        healthy, _ = await provider.health()
    finally:
        await client.aclose()
    assert job.done
    assert job.job_id == "preheat-1-abc-1"
    assert healthy
    [received] = kraken.received()
    assert received["content_type"] == "application/vnd.docker.distribution.events.v1+json"
    [event] = received["events"]
    assert event["id"] == "preheat-1-abc-1"
    assert event["action"] == "push"
    assert event["target"] == {
        "repository": "team/app",
        "digest": DIGEST,
        "tag": "v1",
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "url": f"https://registry.example/v2/team/app/manifests/{DIGEST}",
    }


async def test_kraken_hears_of_each_platform_image_of_an_index(kraken: KrakenStandIn) -> None:
    """Kraken's proxy skips an index's event: the envelope names its manifests too."""
    amd64, arm64 = f"sha256:{8:064x}", f"sha256:{9:064x}"
    spec = replace(
        _spec(),
        media_type=OCI_INDEX,
        children=(ChildManifest(amd64, OCI_MANIFEST), ChildManifest(arm64, DOCKER_MANIFEST)),
    )
    client = OutboundClient(OutboundPolicy.of(["127.0.0.1/32"], allow_http=True))
    try:
        provider = provider_client(client, _instance(Vendor.KRAKEN, kraken.url), None)
        job = await provider.create(spec)
    finally:
        await client.aclose()
    assert job.done
    [received] = kraken.received()
    index, first, second = received["events"]
    assert (index["target"]["digest"], index["target"]["mediaType"]) == (DIGEST, OCI_INDEX)
    assert [(e["action"], e["target"]["repository"]) for e in (first, second)] == [
        ("push", "team/app"),
        ("push", "team/app"),
    ]
    assert (first["target"]["digest"], first["target"]["mediaType"]) == (amd64, OCI_MANIFEST)
    assert (second["target"]["digest"], second["target"]["mediaType"]) == (
        arm64,
        DOCKER_MANIFEST,
    )
    assert len({index["id"], first["id"], second["id"]}) == 3


async def test_a_name_resolving_to_loopback_is_refused_at_call_time(
    dragonfly: DragonflyStandIn,
) -> None:
    async def rebinding(host: str, port: int) -> Sequence[str]:
        del host, port
        return ["127.0.0.1"]

    client = OutboundClient(OutboundPolicy.of([], allow_http=True), resolver=rebinding)
    endpoint = f"http://dragonfly.example.com:{dragonfly.port}"
    try:
        provider = provider_client(client, _instance(Vendor.DRAGONFLY, endpoint), None)
        with pytest.raises(ProviderRefusedError, match="loopback"):
            await provider.create(_spec())
        with pytest.raises(ProviderRefusedError):
            await provider.health()
    finally:
        await client.aclose()
    assert dragonfly.count() == 0


async def test_dragonfly_refuses_a_wrong_token_as_final(dragonfly: DragonflyStandIn) -> None:
    client = OutboundClient(OutboundPolicy.of(["127.0.0.1/32"], allow_http=True))
    try:
        instance = _instance(Vendor.DRAGONFLY, dragonfly.url, AuthMode.BEARER)
        provider = provider_client(client, instance, "wrong")
        with pytest.raises(ProviderRefusedError, match="401"):
            await provider.create(_spec())
    finally:
        await client.aclose()
    [(method, path, headers)] = dragonfly.requests
    assert (method, path) == ("POST", "/oapi/v1/jobs")
    assert headers["Authorization"] == "Bearer wrong"
    assert dragonfly.job_list() == []


async def test_an_insecure_instance_reaches_a_provider_with_an_untrusted_certificate(
    tmp_path: Path,
) -> None:
    """Harbor's *Skip certificate verification*: only the insecure instance gets through."""
    pki = make_pki(tmp_path)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(pki.server_cert, pki.server_key)
    kraken = start_kraken(context)
    policy = OutboundPolicy.of(["127.0.0.1/32"], allow_http=False)
    verified, unverified = OutboundClient(policy), OutboundClient(policy, verify=False)
    secure = _instance(Vendor.KRAKEN, kraken.url)
    insecure = replace(secure, insecure=True)
    try:
        checked = provider_client(verified, secure, None, insecure_client=unverified)
        with pytest.raises(ProviderError, match="CERTIFICATE_VERIFY_FAILED"):
            await checked.create(_spec())
        assert kraken.received() == []
        with pytest.raises(ProviderRefusedError, match="no insecure client"):
            provider_client(verified, insecure, None)
        skipped = provider_client(verified, insecure, None, insecure_client=unverified)
        job = await skipped.create(_spec())
    finally:
        await verified.aclose()
        await unverified.aclose()
        kraken.stop()
    assert job.done
    assert [e["events"][0]["target"]["digest"] for e in kraken.received()] == [DIGEST]
