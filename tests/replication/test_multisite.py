"""Two Moorage sites, each with its own database, storage and Temporal, replicating both ways.

Each site has an event-triggered push policy to the other (deletions replicated). A push
on either side reaches the other; the echo (the other site's event for what it just
received) finds the same digest in place and changes nothing, so it writes no event and
the exchange stops there. Deletions travel the same way.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.replication.rig import (
    Site,
    manifest_digest,
    push_image,
    start_site,
    tasks,
    wait_for,
)
from tests.services.temporal import TemporalServer, start_temporal

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def sites(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Site, Site]]:
    started: list[Any] = []
    try:
        pair: list[Site] = []
        for name in ("east", "west"):
            root = tmp_path_factory.mktemp(f"site-{name}")
            temporal: TemporalServer = start_temporal(root / "temporal")
            started.append(temporal)
            site = start_site(root, temporal.address)
            started.append(site)
            pair.append(site)
        east, west = pair
        for here, there in ((east, west), (west, east)):
            with here.client() as client:
                name = f"peer-{secrets.token_hex(3)}"
                body = {
                    "name": name,
                    "url": there.url,
                    "type": "moorage",
                    "credential": "basic",
                    "username": there.auth[0],
                    "secret": there.auth[1],
                }
                created = client.post("/api/v1/registries", json=body)
                assert created.status_code == 201, created.text
                policy = {
                    "name": "to-peer",
                    "direction": "push",
                    "endpoint": name,
                    "repositories": "shared/**",
                    "trigger": "event",
                    "deletions": True,
                }
                made = client.post("/api/v1/replication/policies", json=policy)
                assert made.status_code == 201, made.text
        yield east, west
    finally:
        for item in reversed(started):
            item.stop()


def executions(site: Site) -> list[dict[str, Any]]:
    with site.client() as client:
        response = client.get("/api/v1/replication/executions", params={"limit": 1000})
        assert response.status_code == 200, response.text
        found: list[dict[str, Any]] = response.json()["items"]
        return found


def settled(site: Site, count: int) -> list[dict[str, Any]] | None:
    """The site's executions once there are ``count`` and none runs."""
    found = executions(site)
    if len(found) < count or any(e["status"] == "running" for e in found):
        return None
    return found


def statuses(site: Site, execution: dict[str, Any]) -> list[str]:
    with site.client() as client:
        return [t["status"] for t in tasks(client, execution["id"])]


def tags(site: Site, repo: str) -> list[str]:
    with httpx.Client(base_url=site.url, auth=site.auth, timeout=60) as client:
        response = client.get(f"/v2/{repo}/tags/list")
    return sorted(response.json().get("tags") or []) if response.status_code == 200 else []


def test_both_ways_on_events_converge_without_loops(sites: tuple[Site, Site]) -> None:
    east, west = sites
    repo = "shared/app"

    first = push_image(east.url, repo, "one", [b"east layer"], east.auth)
    east_runs = wait_for(lambda: settled(east, 1), "east's execution")
    west_runs = wait_for(lambda: settled(west, 1), "west's echo")
    assert statuses(east, east_runs[0]) == ["copied"]
    assert statuses(west, west_runs[0]) == ["skipped"], "the echo changes nothing"
    assert manifest_digest(west.url, repo, "one", west.auth) == first

    second = push_image(west.url, repo, "two", [b"west layer"], west.auth)
    west_runs = wait_for(lambda: settled(west, 2), "west's execution")
    east_runs = wait_for(lambda: settled(east, 2), "east's echo")
    assert statuses(west, west_runs[0]) == ["copied"]
    assert statuses(east, east_runs[0]) == ["skipped"]
    assert manifest_digest(east.url, repo, "two", east.auth) == second

    with httpx.Client(base_url=east.url, auth=east.auth, timeout=60) as client:
        assert client.delete(f"/v2/{repo}/manifests/one").status_code == 202
    east_runs = wait_for(lambda: settled(east, 3), "east's deletion")
    west_runs = wait_for(lambda: settled(west, 3), "west's echo of the deletion")
    assert statuses(east, east_runs[0]) == ["deleted"]
    assert statuses(west, west_runs[0]) == ["skipped"]

    # a last push: each site runs exactly once more, so nothing else was in flight
    push_image(east.url, repo, "three", [b"marker"], east.auth)
    east_runs = wait_for(lambda: settled(east, 4), "east's last execution")
    west_runs = wait_for(lambda: settled(west, 4), "west's last echo")
    assert len(east_runs) == 4
    assert len(west_runs) == 4
    assert tags(east, repo) == tags(west, repo) == ["three", "two"]
    for tag in ("two", "three"):
        assert manifest_digest(east.url, repo, tag, east.auth) == manifest_digest(
            west.url, repo, tag, west.auth
        )
