"""P2P instances and preheat policies through the management API (in process, SQLite).

No outbound allow-list here: loopback and metadata addresses are refused, and the
stand-in provider on loopback proves nothing was sent to it.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import TestClient

from api.app import create_app
from cli.startup import prepare_installation
from core.settings import Settings
from tests.api.identity_helpers import Api
from tests.services.p2p_standins import DragonflyStandIn, start_dragonfly

PASSWORD = secrets.token_urlsafe(12)
AUTH = ("admin", PASSWORD)
INSTANCES = "/api/v1/p2p/instances"


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient[Any]]:
    root: Path = tmp_path_factory.mktemp("preheat-api")
    settings = Settings(
        data_dir=root,
        auth={"admin_password": PASSWORD},  # type: ignore[arg-type]
        outbound={"allow": [], "allow_http": True},  # type: ignore[arg-type]
    )
    prepare_installation(settings)
    with TestClient(create_app(settings)) as http:
        yield http


@pytest.fixture(scope="module")
def standin() -> Iterator[DragonflyStandIn]:
    server = start_dragonfly()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def api(client: TestClient[Any]) -> Api:
    return Api(client, AUTH)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def instance(client: TestClient[Any]) -> dict[str, Any]:
    created = client.post(
        INSTANCES,
        json={
            "name": "df-main",
            "vendor": "dragonfly",
            "endpoint": "https://dragonfly.example.com/",
            "auth_mode": "bearer",
            "secret": "the-pat",
        },
        auth=AUTH,
    )
    assert created.status_code == 201, created.text
    body: dict[str, Any] = created.json()
    return body


def _problem_fields(response: Any) -> list[str]:
    assert response.headers["content-type"].startswith("application/problem+json"), response.text
    return [e["field"] for e in response.json().get("errors", [])]


def test_instance_secret_is_write_only(client: TestClient[Any], instance: dict[str, Any]) -> None:
    assert instance["has_secret"] is True
    assert instance["endpoint"] == "https://dragonfly.example.com"
    for response in (
        client.get(f"{INSTANCES}/{instance['id']}", auth=AUTH),
        client.get(INSTANCES, auth=AUTH),
    ):
        assert response.status_code == 200
        assert "the-pat" not in response.text
        assert "secret_sealed" not in response.text
    kept = client.put(
        f"{INSTANCES}/{instance['id']}",
        json={
            "name": "df-main",
            "vendor": "dragonfly",
            "endpoint": "https://dragonfly.example.com",
            "auth_mode": "bearer",
            "enabled": True,
        },
        auth=AUTH,
    )
    assert kept.status_code == 200, kept.text
    assert kept.json()["has_secret"] is True


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"endpoint": "http://169.254.169.254/latest"}, "endpoint"),
        ({"endpoint": "http://2130706433:8080"}, "endpoint"),
        ({"endpoint": "ftp://dragonfly.example.com"}, "endpoint"),
        ({"auth_mode": "bearer"}, "secret"),
        ({"auth_mode": "basic", "secret": "pw"}, "username"),
        ({"name": "Not A Name"}, "name"),
        ({"vendor": "bittorrent"}, "vendor"),
    ],
)
def test_invalid_instances_name_the_field(
    client: TestClient[Any], body: dict[str, Any], field: str
) -> None:
    base = {
        "name": f"i-{secrets.token_hex(3)}",
        "vendor": "kraken",
        "endpoint": "https://k.example",
    }
    response = client.post(INSTANCES, json={**base, **body}, auth=AUTH)
    assert response.status_code in (400, 422), response.text
    assert field in _problem_fields(response)


def test_loopback_provider_is_refused_and_never_contacted(
    client: TestClient[Any], standin: DragonflyStandIn
) -> None:
    literal = client.post(
        INSTANCES,
        json={"name": "df-loop", "vendor": "dragonfly", "endpoint": standin.url},
        auth=AUTH,
    )
    assert literal.status_code == 422, literal.text
    assert "endpoint" in _problem_fields(literal)
    # a name is accepted when written, and refused when it resolves to loopback
    named = client.post(
        INSTANCES,
        json={
            "name": "df-localhost",
            "vendor": "dragonfly",
            "endpoint": f"http://localhost:{standin.port}",
        },
        auth=AUTH,
    )
    assert named.status_code == 201, named.text
    health = client.post(f"{INSTANCES}/{named.json()['id']}/health", auth=AUTH)
    assert health.status_code == 200, health.text
    assert health.json()["healthy"] is False
    assert "refused" in health.json()["detail"]
    assert standin.count() == 0
    assert client.delete(f"{INSTANCES}/{named.json()['id']}", auth=AUTH).status_code == 204


def test_instances_are_for_system_administrators(client: TestClient[Any], api: Api) -> None:
    assert client.get(INSTANCES).status_code == 401
    user = api.user()
    assert client.get(INSTANCES, auth=user).status_code == 403
    body = {"name": "mine", "vendor": "kraken", "endpoint": "https://k.example"}
    assert client.post(INSTANCES, json=body, auth=user).status_code == 403


def test_policy_lifecycle(client: TestClient[Any], api: Api, instance: dict[str, Any]) -> None:
    project = api.project()
    base = f"/api/v1/projects/{project}/preheat/policies"
    body = {
        "name": "nightly",
        "instance": instance["name"],
        "repositories": "team/**",
        "tags": "v*",
        "signed_only": True,
        "severity": "high",
        "trigger": "event_based",
        "scope": "all_peers",
        "cluster_ids": [2, 1, 2],
    }
    created = client.post(base, json=body, auth=AUTH)
    assert created.status_code == 201, created.text
    policy = created.json()
    assert policy["cluster_ids"] == [1, 2]
    assert policy["instance"] == "df-main"
    assert policy["project"] == project

    changed = client.put(
        f"{base}/{policy['id']}", json={**body, "tags": "**", "severity": None}, auth=AUTH
    )
    assert changed.status_code == 200, changed.text
    assert changed.json()["severity"] is None
    listed = client.get(base, auth=AUTH)
    assert [p["id"] for p in listed.json()["items"]] == [policy["id"]]
    assert client.post(base, json=body, auth=AUTH).status_code == 409
    # an instance in use stays
    assert client.delete(f"{INSTANCES}/{instance['id']}", auth=AUTH).status_code == 409
    assert client.delete(f"{base}/{policy['id']}", auth=AUTH).status_code == 204
    assert client.get(f"{base}/{policy['id']}", auth=AUTH).status_code == 404

    _audited(client, project, "/preheat/policies")


def _audited(client: TestClient[Any], project: str, fragment: str) -> None:
    """The audit log has the policy's create, update and delete (written after the response)."""
    deadline = time.monotonic() + 30
    wanted = {"create", "update", "delete"}
    for _ in range(300):
        items = client.get(
            "/api/v1/audit", params={"project": project, "limit": 1000}, auth=AUTH
        ).json()["items"]
        methods = {
            str(e["action"]).partition("_")[0]
            for e in items
            if fragment in str(e["resource"]) and e["result"] == "success"
        }
        if wanted <= methods or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    seen = [(e["action"], e["resource"], e["result"]) for e in items]
    assert wanted <= methods, seen


@pytest.mark.parametrize(
    ("extra", "field"),
    [
        ({"instance": "nowhere"}, "instance"),
        ({"trigger": "scheduled"}, "cron"),
        ({"trigger": "manual", "cron": "0 * * * *"}, "cron"),
        ({"severity": "catastrophic"}, "severity"),
        ({"repositories": ""}, "repositories"),
        ({"cluster_ids": [0]}, "cluster_ids"),
        ({"name": "Bad Name"}, "name"),
        ({"scope": "everyone"}, "scope"),
        ({"unknown": 1}, "unknown"),
    ],
)
def test_invalid_policies_name_the_field(
    client: TestClient[Any],
    api: Api,
    instance: dict[str, Any],
    extra: dict[str, Any],
    field: str,
) -> None:
    project = api.project()
    body = {"name": f"p-{secrets.token_hex(3)}", "instance": instance["name"], **extra}
    response = client.post(f"/api/v1/projects/{project}/preheat/policies", json=body, auth=AUTH)
    assert response.status_code in (400, 422), response.text
    assert field in _problem_fields(response)


def test_policies_need_project_admin_rights(
    client: TestClient[Any], api: Api, instance: dict[str, Any]
) -> None:
    project = api.project()
    admin, maintainer, developer, outsider = api.user(), api.user(), api.user(), api.user()
    api.member(project, "admin", user=admin[0])
    api.member(project, "maintainer", user=maintainer[0])
    api.member(project, "developer", user=developer[0])
    base = f"/api/v1/projects/{project}/preheat/policies"
    body = {"name": "by-owner", "instance": instance["name"]}
    assert client.post(base, json=body).status_code == 401
    assert client.post(base, json=body, auth=developer).status_code == 403
    assert client.post(base, json=body, auth=maintainer).status_code == 403
    assert client.post(base, json=body, auth=outsider).status_code == 404
    created = client.post(base, json=body, auth=admin)
    assert created.status_code == 201, created.text
    assert client.get(base, auth=admin).status_code == 200
    executions = f"/api/v1/projects/{project}/preheat/executions"
    assert client.get(executions, auth=admin).status_code == 200
    assert client.get(executions, auth=developer).status_code == 403
    assert client.get(f"{executions}/preheat-0-none", auth=admin).status_code == 404
    run = client.post(f"{base}/{created.json()['id']}/executions", auth=developer)
    assert run.status_code == 403


def test_one_default_instance_is_used_by_policies_that_name_none(
    client: TestClient[Any], api: Api
) -> None:
    """Harbor's instance options: ``default`` (one at a time), ``insecure``, auth names."""
    project = api.project()
    base = f"/api/v1/projects/{project}/preheat/policies"
    assert client.post(base, json={"name": "no-default"}, auth=AUTH).status_code in (400, 422)

    def make(name: str, **extra: Any) -> dict[str, Any]:
        body = {"name": name, "vendor": "kraken", "endpoint": "https://kraken.example.com"}
        created = client.post(INSTANCES, json={**body, **extra}, auth=AUTH)
        assert created.status_code == 201, created.text
        made: dict[str, Any] = created.json()
        return made

    first = make("kr-first", default=True, insecure=True)
    assert (first["default"], first["insecure"]) == (True, True)
    oauth = make("kr-oauth", auth_mode="OAUTH", secret="token")
    assert (oauth["auth_mode"], oauth["default"], oauth["insecure"]) == ("bearer", False, False)
    assert make("kr-basic", auth_mode="BASIC", username="u", secret="p")["auth_mode"] == "basic"

    implicit = client.post(base, json={"name": "implicit"}, auth=AUTH)
    assert implicit.status_code == 201, implicit.text
    assert implicit.json()["instance"] == "kr-first"

    # another instance made the default: the first is no longer one
    second = client.put(
        f"{INSTANCES}/{oauth['id']}",
        json={
            "name": "kr-oauth",
            "vendor": "kraken",
            "endpoint": "https://kraken.example.com",
            "auth_mode": "oauth",
            "default": True,
        },
        auth=AUTH,
    )
    assert second.status_code == 200, second.text
    assert second.json()["default"] is True
    listed = client.get(INSTANCES, params={"limit": 1000}, auth=AUTH).json()["items"]
    assert [i["name"] for i in listed if i["default"]] == ["kr-oauth"]
    later = client.post(base, json={"name": "later"}, auth=AUTH)
    assert later.status_code == 201, later.text
    assert later.json()["instance"] == "kr-oauth"
    # the policy made earlier keeps its instance
    assert client.get(f"{base}/{implicit.json()['id']}", auth=AUTH).json()["instance"] == "kr-first"
    bad = client.post(
        INSTANCES,
        json={"name": "kr-bad", "vendor": "kraken", "endpoint": "https://k.example.com",
              "auth_mode": "KERBEROS"},
        auth=AUTH,
    )  # fmt: skip
    assert bad.status_code in (400, 422)
    assert "auth_mode" in _problem_fields(bad)
