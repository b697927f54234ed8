"""P2P preheat into a real Kraken cluster (origin, tracker, build-index, proxy, agent).

Moorage is Kraken's backend registry: Kraken's origin and build-index reach it over TLS
(an nginx in front of the API) with a Moorage robot account that may only pull the
project. A preheat execution notifies Kraken's proxy (``/registry/notifications``, a
distribution envelope); the proxy has the origin fetch the manifest and every blob from
Moorage. The tests show the origin holding them, Moorage's access log recording the
robot's blob reads, and an agent serving the image peer to peer byte for byte, with no
further blob read from Moorage; an event-based policy seeds on push, and a multi-platform
index has every platform's image seeded (Kraken itself skips an index's event).
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from tests.replication.rig import (
    OCI_MANIFEST,
    Site,
    push_image,
    push_index,
    start_site,
    wait_for,
)
from tests.services.kraken import Backend, KrakenCluster, TlsFront, start_kraken, start_tls_front
from tests.services.process import LOOPBACK, free_ports
from tests.services.tls import make_pki

# one cluster at a time: each Kraken binary writes its nginx configuration to /tmp/nginx
pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("kraken")]

FAST_POLLS = {
    "MOORAGE_PREHEAT__POLL_INITIAL_SECONDS": "0.2",
    "MOORAGE_PREHEAT__POLL_MAX_SECONDS": "1",
    "MOORAGE_PREHEAT__HEARTBEAT_SECONDS": "2",
}
PROJECT = f"kr{secrets.token_hex(4)}"


@dataclass
class Rig:
    site: Site
    client: httpx.Client
    front: TlsFront
    kraken: KrakenCluster
    robot: str


@pytest.fixture(scope="module")
def rig(tmp_path_factory: pytest.TempPathFactory, temporal_server: Any) -> Iterator[Rig]:
    workdir = tmp_path_factory.mktemp("preheat-kraken")
    # Kraken reaches Moorage through a TLS front, which is then Moorage's public URL
    [front_port] = free_ports(1)
    public = {"MOORAGE_PUBLIC_URL": f"https://{LOOPBACK}:{front_port}"}
    site = start_site(workdir / "site", temporal_server.address, **FAST_POLLS, **public)
    stops = [site.stop]
    try:
        client = site.client()
        stops.append(client.close)
        # the project exists once something is pushed; its robot may only pull
        push_image(site.url, f"{PROJECT}/base", "v0", [b"project-exists"], site.auth)
        made = client.post(
            f"/api/v1/projects/{PROJECT}/robots",
            json={"name": "kraken", "permissions": [{"repository": "*", "actions": ["pull"]}]},
        )
        assert made.status_code == 201, made.text
        robot, secret = str(made.json()["name"]), str(made.json()["secret"])
        pki = make_pki(workdir / "pki")
        front = start_tls_front(workdir / "front", pki, site.api.port, front_port)
        stops.append(front.stop)
        kraken = start_kraken(workdir / "kraken", Backend(front.address, robot, secret, pki.ca))
        stops.append(kraken.stop)
        yield Rig(site, client, front, kraken, robot)
    finally:
        for stop in reversed(stops):
            stop()


def _instance(rig: Rig, name: str) -> dict[str, Any]:
    response = rig.client.post(
        "/api/v1/p2p/instances",
        json={"name": name, "vendor": "kraken", "endpoint": rig.kraken.notifications_url},
    )
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


def _policy(rig: Rig, **body: Any) -> dict[str, Any]:
    response = rig.client.post(f"/api/v1/projects/{PROJECT}/preheat/policies", json=body)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


def _finished(rig: Rig, execution_id: str) -> dict[str, Any] | None:
    response = rig.client.get(f"/api/v1/projects/{PROJECT}/preheat/executions/{execution_id}")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return None if body["status"] == "running" else body


def _image(site: Site, repo: str, tag: str, layers: list[bytes]) -> dict[str, Any]:
    """Push an image; its manifest digest, bytes and the digests it references."""
    digest = push_image(site.url, repo, tag, layers, site.auth)
    manifest = httpx.get(
        f"{site.url}/v2/{repo}/manifests/{digest}",
        headers={"Accept": OCI_MANIFEST},
        auth=site.auth,
        timeout=30,
    )
    assert manifest.status_code == 200, manifest.text
    parsed = json.loads(manifest.content)
    blobs = [parsed["config"]["digest"], *(layer["digest"] for layer in parsed["layers"])]
    return {"digest": digest, "manifest": manifest.content, "blobs": blobs}


def _access(site: Site) -> list[dict[str, Any]]:
    lines = []
    for line in site.api.log_path.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            document = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(document, dict) and document.get("logger") == "moorage.access":
            lines.append(document)
    return lines


def _blob_reads(site: Site, repo: str, principal: str) -> list[str]:
    """The blob paths of ``repo`` that ``principal`` read with success (GET, 200)."""
    prefix = f"/v2/{repo}/blobs/"
    return [
        a["path"].removeprefix(prefix)
        for a in _access(site)
        if a.get("principal") == principal
        and a.get("method") == "GET"
        and a.get("status") == 200
        and str(a.get("path", "")).startswith(prefix)
    ]


def _flushed(site: Site) -> None:
    """Wait until a request made now is in the access log: the ones before it are too."""
    marker = f"marker-{secrets.token_hex(6)}"
    httpx.get(f"{site.url}/v2/", headers={"X-Request-ID": marker}, timeout=30)
    wait_for(lambda: any(a.get("request_id") == marker for a in _access(site)), "the access log")


def _seeded(rig: Rig, repo: str, digests: list[str]) -> bool:
    return all(rig.kraken.origin_has(repo, d) for d in digests)


def test_manual_preheat_seeds_kraken_origin_from_moorage_and_the_agent_pulls_p2p(
    rig: Rig,
) -> None:
    repo = f"{PROJECT}/app"
    layers = [secrets.token_bytes(300_000), secrets.token_bytes(5_000_000)]
    image = _image(rig.site, repo, "v1", layers)
    for digest in [image["digest"], *image["blobs"]]:
        assert not rig.kraken.origin_has(repo, digest)

    instance = _instance(rig, f"kraken-{secrets.token_hex(3)}")
    health = rig.client.post(f"/api/v1/p2p/instances/{instance['id']}/health")
    assert health.status_code == 200, health.text
    assert health.json()["healthy"] is True, health.json()
    policy = _policy(rig, name="to-origin", instance=instance["name"], repositories="app")
    started = rig.client.post(
        f"/api/v1/projects/{PROJECT}/preheat/policies/{policy['id']}/executions"
    )
    assert started.status_code == 202, started.text
    execution = wait_for(lambda: _finished(rig, started.json()["id"]), "the preheat execution")
    assert execution["status"] == "succeeded", execution
    assert (execution["total"], execution["succeeded"]) == (1, 1)

    # Kraken's origin fetched the manifest, the config and both layers from Moorage ...
    wait_for(lambda: _seeded(rig, repo, [image["digest"], *image["blobs"]]), "the origin's seeding")
    # ... as the pull-only robot Kraken was configured with
    reads = wait_for(
        lambda: (
            (found := _blob_reads(rig.site, repo, rig.robot))
            and set(image["blobs"]) <= set(found)
            and found
        ),
        "the robot's blob reads in the access log",
    )
    assert set(reads) <= {image["digest"], *image["blobs"]}
    _flushed(rig.site)

    # A node's agent pulls the image from Kraken: the tag through the build-index, the
    # manifest and blobs peer to peer from the origin, identical to what was pushed.
    before = len(_blob_reads(rig.site, repo, rig.robot))
    agent = rig.kraken.agent_registry_url
    with httpx.Client(base_url=agent, timeout=120) as pull:
        manifest = pull.get(f"/v2/{repo}/manifests/v1", headers={"Accept": OCI_MANIFEST})
        assert manifest.status_code == 200, manifest.text
        assert manifest.content == image["manifest"]
        for digest, layer in zip(image["blobs"][1:], layers, strict=True):
            blob = pull.get(f"/v2/{repo}/blobs/{digest}")
            assert blob.status_code == 200, blob.text
            assert blob.content == layer
    # the blobs came from Kraken's origin, not again from Moorage
    _flushed(rig.site)
    assert len(_blob_reads(rig.site, repo, rig.robot)) == before


def test_event_based_preheat_seeds_kraken_on_push(rig: Rig) -> None:
    instance = _instance(rig, f"kraken-ev-{secrets.token_hex(3)}")
    _policy(
        rig,
        name="on-push",
        instance=instance["name"],
        repositories="web/**",
        trigger="event_based",
    )
    repo = f"{PROJECT}/web/frontend"
    image = _image(rig.site, repo, "v7", [secrets.token_bytes(200_000)])
    wait_for(
        lambda: _seeded(rig, repo, [image["digest"], *image["blobs"]]),
        "the origin's seeding after the push",
    )


def test_preheating_a_multi_platform_index_seeds_every_platform_image(rig: Rig) -> None:
    """Kraken seeds image manifests only: Moorage names an index's platform images too."""
    repo = f"{PROJECT}/multi"
    amd64 = _image(rig.site, repo, "amd64", [secrets.token_bytes(100_000)])
    arm64 = _image(rig.site, repo, "arm64", [secrets.token_bytes(100_000)])
    push_index(rig.site.url, repo, "v2", [amd64["digest"], arm64["digest"]], rig.site.auth)
    wanted = [amd64["digest"], *amd64["blobs"], arm64["digest"], *arm64["blobs"]]
    assert not any(rig.kraken.origin_has(repo, d) for d in wanted)

    instance = _instance(rig, f"kraken-ix-{secrets.token_hex(3)}")
    policy = _policy(rig, name="multi", instance=instance["name"], repositories="multi", tags="v2")
    started = rig.client.post(
        f"/api/v1/projects/{PROJECT}/preheat/policies/{policy['id']}/executions"
    )
    assert started.status_code == 202, started.text
    execution = wait_for(lambda: _finished(rig, started.json()["id"]), "the preheat execution")
    assert execution["status"] == "succeeded", execution
    wait_for(lambda: _seeded(rig, repo, wanted), "both platform images in the origin")
