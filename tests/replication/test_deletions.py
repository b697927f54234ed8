"""Replicated deletions to CNCF distribution v3 and Debian's ``docker-registry`` (2.8).

Each is the destination of an event-triggered push policy that replicates deletions,
with deletion enabled, and once more with deletion disabled (its refusal must be the
task's result, with the registry's answer). distribution v3 deletes a tag alone;
docker-registry deletes only by digest.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from tests.replication.rig import (
    OCI_MANIFEST,
    Site,
    manifest_digest,
    push_image,
    start_site,
    tasks,
    wait_for,
)
from tests.services.distribution import start_distribution
from tests.services.docker_registry import DockerRegistry, start_docker_registry

pytestmark = pytest.mark.integration

PEERS: dict[str, Callable[..., DockerRegistry]] = {
    "docker-registry": start_docker_registry,
    "distribution": start_distribution,
}


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory, temporal_server: Any) -> Iterator[Site]:
    found = start_site(tmp_path_factory.mktemp("deletions-site"), temporal_server.address)
    yield found
    found.stop()


@pytest.fixture(scope="module", params=sorted(PEERS))
def peer_kind(request: pytest.FixtureRequest) -> str:
    kind: str = request.param
    return kind


def start_peer(kind: str, tmp_path_factory: pytest.TempPathFactory, *, delete: bool) -> Any:
    return PEERS[kind](tmp_path_factory.mktemp(kind), delete=delete)


@pytest.fixture(scope="module")
def peer(peer_kind: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[DockerRegistry]:
    server = start_peer(peer_kind, tmp_path_factory, delete=True)
    yield server
    server.stop()


def replicate_deletions(site: Site, url: str, project: str) -> int:
    """An event-triggered push policy of ``project`` to ``url`` with deletions; its id."""
    with site.client() as client:
        name = f"ep-{secrets.token_hex(4)}"
        body = {"name": name, "url": url, "type": "distribution", "credential": "none"}
        created = client.post("/api/v1/registries", json=body)
        assert created.status_code == 201, created.text
        made = client.post(
            "/api/v1/replication/policies",
            json={
                "name": f"p-{secrets.token_hex(4)}",
                "direction": "push",
                "endpoint": name,
                "repositories": f"{project}/**",
                "trigger": "event",
                "deletions": True,
            },
        )
        assert made.status_code == 201, made.text
        policy_id: int = made.json()["id"]
    return policy_id


def delete_tag(site: Site, repo: str, tag: str) -> None:
    with httpx.Client(base_url=site.url, auth=site.auth, timeout=60) as client:
        assert client.delete(f"/v2/{repo}/manifests/{tag}").status_code == 202


def deletion_result(site: Site, policy_id: int, reference: str) -> dict[str, Any]:
    """The settled delete task of ``reference`` among the policy's finished executions."""

    def find() -> dict[str, Any] | None:
        with site.client() as client:
            listed = client.get(
                "/api/v1/replication/executions", params={"policy_id": policy_id, "limit": 100}
            )
            assert listed.status_code == 200, listed.text
            for execution in listed.json()["items"]:
                if execution["status"] in ("running", "stopping"):
                    continue
                for task in tasks(client, execution["id"]):
                    if task["operation"] == "delete" and task["reference"] == reference:
                        return {**task, "execution": execution}
        return None

    found: dict[str, Any] = wait_for(find, f"the replicated deletion of {reference}")
    return found


def manifest_there(url: str, repo: str, digest: str) -> bool:
    accept = {"Accept": OCI_MANIFEST}
    return httpx.head(f"{url}/v2/{repo}/manifests/{digest}", headers=accept).status_code == 200


def test_tag_deletions_keep_what_the_source_still_tags(
    site: Site, peer_kind: str, peer: DockerRegistry
) -> None:
    """Each deleted tag goes, nothing else does.

    distribution v3 deletes a tag alone. docker-registry (2.8) refuses that: there
    ``solo`` goes with its manifest, ``v1`` is kept while ``latest`` (same manifest) is
    tagged here, and deleting ``latest`` too removes the manifest and both tags.
    """
    by_digest_only = peer_kind == "docker-registry"
    project = f"del{secrets.token_hex(3)}"
    repo = f"{project}/app"
    policy_id = replicate_deletions(site, peer.url, project)
    shared = os.urandom(3000)
    first = push_image(site.url, repo, "v1", [shared], site.auth, note="one")
    assert push_image(site.url, repo, "latest", [shared], site.auth, note="one") == first
    second = push_image(site.url, repo, "v2", [os.urandom(2000)], site.auth, note="two")
    third = push_image(site.url, repo, "solo", [os.urandom(1000)], site.auth, note="three")
    expected = {"v1": first, "latest": first, "v2": second, "solo": third}
    wait_for(
        lambda: all(manifest_digest(peer.url, repo, t) == d for t, d in expected.items()),
        "every tag at the destination",
    )

    delete_tag(site, repo, "solo")
    solo = deletion_result(site, policy_id, "solo")
    assert (solo["status"], solo["digest"]) == ("deleted", third), solo
    assert manifest_digest(peer.url, repo, "solo") is None
    assert manifest_there(peer.url, repo, third) is not by_digest_only

    delete_tag(site, repo, "v1")
    one = deletion_result(site, policy_id, "v1")
    assert manifest_digest(peer.url, repo, "latest") == first, "latest stays"
    if by_digest_only:
        assert one["status"] == "skipped", one
        assert "latest" in one["error"], one
        assert "deletes by digest only" in one["error"], one
        assert manifest_digest(peer.url, repo, "v1") == first
    else:
        assert (one["status"], one["digest"]) == ("deleted", first), one
        assert manifest_digest(peer.url, repo, "v1") is None

    delete_tag(site, repo, "latest")
    last = deletion_result(site, policy_id, "latest")
    assert (last["status"], last["digest"]) == ("deleted", first), last
    assert manifest_digest(peer.url, repo, "latest") is None
    assert manifest_digest(peer.url, repo, "v1") is None
    assert manifest_there(peer.url, repo, first) is not by_digest_only
    assert manifest_digest(peer.url, repo, "v2") == second, "what was not deleted stays"


def test_a_destination_that_refuses_deletion_fails_the_task_with_its_answer(
    site: Site, peer_kind: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    locked = start_peer(peer_kind, tmp_path_factory, delete=False)
    try:
        project = f"nodel{secrets.token_hex(3)}"
        repo = f"{project}/app"
        policy_id = replicate_deletions(site, locked.url, project)
        digest = push_image(site.url, repo, "v1", [os.urandom(1500)], site.auth)
        wait_for(lambda: manifest_digest(locked.url, repo, "v1") == digest, "the copy")
        delete_tag(site, repo, "v1")
        refused = deletion_result(site, policy_id, "v1")
        assert refused["status"] == "failed", refused
        assert refused["execution"]["status"] == "failed", refused
        assert "405" in refused["error"], refused
        assert "UNSUPPORTED" in refused["error"], refused
        assert manifest_digest(locked.url, repo, "v1") == digest
    finally:
        locked.stop()
