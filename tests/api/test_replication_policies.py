"""Replication policies through the management API (in process, SQLite)."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import TestClient

from api.app import create_app
from cli.startup import prepare_installation
from core.settings import Settings

PASSWORD = secrets.token_urlsafe(12)
AUTH = ("admin", PASSWORD)


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient[Any]]:
    root: Path = tmp_path_factory.mktemp("replication-api")
    settings = Settings(
        data_dir=root,
        auth={"admin_password": PASSWORD},  # type: ignore[arg-type]
        outbound={"allow": ["127.0.0.0/8"], "allow_http": True},  # type: ignore[arg-type]
    )
    prepare_installation(settings)
    with TestClient(create_app(settings)) as http:
        created = http.post(
            "/api/v1/registries",
            json={"name": "peer", "url": "http://127.0.0.1:1", "type": "distribution"},
            auth=AUTH,
        )
        assert created.status_code == 201, created.text
        yield http


def _policy(**extra: Any) -> dict[str, Any]:
    return {
        "name": f"p-{secrets.token_hex(4)}",
        "direction": "push",
        "endpoint": "peer",
        **extra,
    }


def test_policy_lifecycle(client: TestClient[Any]) -> None:
    body = _policy(
        repositories="team/**",
        tags="v*",
        flatten=1,
        prefix="mirror",
        trigger="event",
        deletions=True,
        override=False,
        bandwidth_kbps=512,
        concurrency=2,
    )
    created = client.post("/api/v1/replication/policies", json=body, auth=AUTH)
    assert created.status_code == 201, created.text
    policy = created.json()
    assert policy["prefix"] == "mirror"
    assert policy["trigger"] == "event"
    read = client.get(f"/api/v1/replication/policies/{policy['id']}", auth=AUTH)
    assert read.json()["repositories"] == "team/**"

    changed = client.put(
        f"/api/v1/replication/policies/{policy['id']}",
        json={**body, "tags": "**", "trigger": "manual"},
        auth=AUTH,
    )
    assert changed.status_code == 200, changed.text
    assert changed.json()["tags"] == "**"

    listed = client.get("/api/v1/replication/policies", params={"limit": 1000}, auth=AUTH)
    assert policy["id"] in [p["id"] for p in listed.json()["items"]]

    duplicate = client.post("/api/v1/replication/policies", json=body, auth=AUTH)
    assert duplicate.status_code == 409

    gone = client.delete(f"/api/v1/replication/policies/{policy['id']}", auth=AUTH)
    assert gone.status_code == 204
    missing = client.get(f"/api/v1/replication/policies/{policy['id']}", auth=AUTH)
    assert missing.status_code == 404


@pytest.mark.parametrize(
    ("extra", "field"),
    [
        ({"endpoint": "nowhere"}, "endpoint"),
        ({"trigger": "scheduled"}, "cron"),
        ({"trigger": "scheduled", "cron": "every day"}, "cron"),
        ({"trigger": "event", "direction": "pull"}, "trigger"),
        ({"name": "Bad Name"}, "name"),
        ({"prefix": "UPPER"}, "prefix"),
    ],
)
def test_invalid_policies_name_the_field(
    client: TestClient[Any], extra: dict[str, Any], field: str
) -> None:
    response = client.post("/api/v1/replication/policies", json=_policy(**extra), auth=AUTH)
    assert response.status_code in (400, 422), response.text
    assert field in response.text


def test_only_administrators(client: TestClient[Any]) -> None:
    assert client.get("/api/v1/replication/policies").status_code == 401
    assert client.get("/api/v1/replication/executions").status_code == 401


def test_unknown_execution(client: TestClient[Any]) -> None:
    response = client.get("/api/v1/replication/executions/replication-0-none", auth=AUTH)
    assert response.status_code == 404


def test_an_endpoint_in_use_is_kept(client: TestClient[Any]) -> None:
    made = client.post(
        "/api/v1/registries",
        json={"name": "kept", "url": "http://127.0.0.1:2", "type": "oci"},
        auth=AUTH,
    )
    assert made.status_code == 201, made.text
    policy = client.post("/api/v1/replication/policies", json=_policy(endpoint="kept"), auth=AUTH)
    assert policy.status_code == 201, policy.text
    refused = client.delete("/api/v1/registries/kept", auth=AUTH)
    assert refused.status_code == 409
    assert policy.json()["name"] in refused.text
    client.delete(f"/api/v1/replication/policies/{policy.json()['id']}", auth=AUTH)
    assert client.delete("/api/v1/registries/kept", auth=AUTH).status_code == 204


def test_a_scheduled_policy_whose_schedule_cannot_be_made_is_not_kept(
    client: TestClient[Any],
) -> None:
    # The in-process app has no Temporal server to reach: the schedule cannot be created.
    body = _policy(trigger="scheduled", cron="0 3 * * *")
    created = client.post("/api/v1/replication/policies", json=body, auth=AUTH)
    assert created.status_code >= 500, created.text
    listed = client.get("/api/v1/replication/policies", auth=AUTH)
    assert listed.status_code == 200
    assert body["name"] not in {p["name"] for p in listed.json()["items"]}
