"""Scanner registrations and a project's scanner through the management API, in process.

On SQLite and on PostgreSQL. The outbound policy allows loopback, so a registration can
name a port where nothing listens: the ping then answers a problem detail saying so. (The
ping against a real adapter is in ``tests/integration/test_scanner_api.py``.)
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from litestar.testing import TestClient

from api.app import create_app
from cli.startup import prepare_installation
from core.settings import Settings
from tests.services.postgres import Postgres

PASSWORD = secrets.token_urlsafe(12)
AUTH = ("admin", PASSWORD)
SCANNERS = "/api/v1/scanners"
#: Nothing listens on port 1 of loopback.
DEAD = "http://127.0.0.1:1/adapter"


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def settings(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    root: Path = tmp_path_factory.mktemp(f"scanners-{request.param}")
    extra: dict[str, Any] = {}
    if request.param == "postgres":
        postgres: Postgres = request.getfixturevalue("postgres")
        extra["database_url"] = postgres.create_database(f"scanners_{secrets.token_hex(4)}")
    found = Settings(
        data_dir=root,
        auth={"admin_password": PASSWORD},  # type: ignore[arg-type]
        outbound={"allow": ["127.0.0.0/8"], "allow_http": True},  # type: ignore[arg-type]
        **extra,
    )
    prepare_installation(found)
    return found


@pytest.fixture(scope="module")
def client(settings: Settings) -> Iterator[TestClient[Any]]:
    with TestClient(create_app(settings)) as http:
        yield http


def _name() -> str:
    return f"sc-{secrets.token_hex(4)}"


def _create(client: TestClient[Any], **extra: Any) -> dict[str, Any]:
    body = {"name": _name(), "url": DEAD, **extra}
    created = client.post(SCANNERS, json=body, auth=AUTH)
    assert created.status_code == 201, created.text
    found: dict[str, Any] = created.json()
    return found


def _project(client: TestClient[Any]) -> str:
    name = f"p{secrets.token_hex(5)}"
    created = client.post("/api/v1/projects", json={"name": name}, auth=AUTH)
    assert created.status_code == 201, created.text
    return name


def _problem_fields(response: Any) -> list[str]:
    assert response.headers["content-type"].startswith("application/problem+json"), response.text
    return [e["field"] for e in response.json().get("errors", [])]


def test_a_registration_lives_and_its_credential_is_write_only(
    client: TestClient[Any], settings: Settings
) -> None:
    credential = secrets.token_urlsafe(16)
    scanner = _create(client, auth="Bearer", access_credential=credential, description="ext")
    name = scanner["name"]
    assert scanner["has_access_credential"] is True
    assert (scanner["url"], scanner["auth"], scanner["is_default"]) == (DEAD, "Bearer", False)
    for response in (client.get(f"{SCANNERS}/{name}", auth=AUTH), client.get(SCANNERS, auth=AUTH)):
        assert response.status_code == 200, response.text
        assert credential not in response.text
        assert "sealed" not in response.text

    # at rest: sealed under the master key, never in clear
    engine = sa.create_engine(settings.resolved_database_url)
    try:
        with engine.connect() as connection:
            sealed = connection.execute(
                sa.text("SELECT sealed_credential FROM scanner_registration WHERE name = :n"),
                {"n": name},
            ).scalar_one()
    finally:
        engine.dispose()
    assert sealed.startswith("v1.")
    assert credential not in sealed

    # an update without a credential keeps the stored one; the name cannot change
    kept = client.put(
        f"{SCANNERS}/{name}",
        json={"name": name, "url": DEAD + "/", "auth": "Bearer", "disabled": True},
        auth=AUTH,
    )
    assert kept.status_code == 200, kept.text
    assert (kept.json()["has_access_credential"], kept.json()["disabled"]) == (True, True)
    assert kept.json()["description"] == ""
    renamed = client.put(f"{SCANNERS}/{name}", json={"name": "other", "url": DEAD}, auth=AUTH)
    assert renamed.status_code == 422
    assert _problem_fields(renamed) == ["name"]
    # auth 'none' drops the credential
    none = client.put(f"{SCANNERS}/{name}", json={"name": name, "url": DEAD}, auth=AUTH)
    assert none.status_code == 200, none.text
    assert none.json()["has_access_credential"] is False

    assert client.delete(f"{SCANNERS}/{name}", auth=AUTH).status_code == 204
    gone = client.get(f"{SCANNERS}/{name}", auth=AUTH)
    assert gone.status_code == 404
    assert gone.headers["content-type"].startswith("application/problem+json")
    _audited(client, name)


def _audited(client: TestClient[Any], name: str) -> None:
    """The audit log has the create, update and delete (written after the response)."""
    wanted = {"create_scanner", "update_scanner", "delete_scanner"}
    actions: set[str] = set()
    deadline = time.monotonic() + 30
    for _ in range(300):
        items = client.get("/api/v1/audit", params={"limit": 1000}, auth=AUTH).json()["items"]
        actions = {
            str(e["action"])
            for e in items
            if e["result"] == "success"
            and str(e["resource"]).rstrip("/") in (SCANNERS, f"{SCANNERS}/{name}")
        }
        if wanted <= actions or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert wanted <= actions


def test_one_default_at_a_time(client: TestClient[Any]) -> None:
    first = _create(client, is_default=True)
    second = _create(client, is_default=True)
    listed = {s["name"]: s for s in client.get(SCANNERS, auth=AUTH).json()["items"]}
    assert listed[second["name"]]["is_default"] is True
    assert listed[first["name"]]["is_default"] is False

    made = client.post(f"{SCANNERS}/{first['name']}/default", auth=AUTH)
    assert made.status_code == 200, made.text
    assert made.json()["is_default"] is True
    listed = {s["name"]: s for s in client.get(SCANNERS, auth=AUTH).json()["items"]}
    assert [n for n, s in listed.items() if s["is_default"]] == [first["name"]]
    missing = client.post(f"{SCANNERS}/nowhere/default", auth=AUTH)
    assert missing.status_code == 404

    # the default may be removed: then no registration is the default
    assert client.delete(f"{SCANNERS}/{first['name']}", auth=AUTH).status_code == 204
    listed = {s["name"]: s for s in client.get(SCANNERS, auth=AUTH).json()["items"]}
    assert not any(s["is_default"] for s in listed.values())
    assert client.delete(f"{SCANNERS}/{second['name']}", auth=AUTH).status_code == 204


def test_the_list_pages_by_name(client: TestClient[Any]) -> None:
    names = sorted(_create(client)["name"] for _ in range(3))
    seen: list[str] = []
    last: str | None = None
    for _ in range(50):
        params: dict[str, Any] = {"limit": 1} | ({"last": last} if last else {})
        page = client.get(SCANNERS, params=params, auth=AUTH)
        assert page.status_code == 200, page.text
        seen += [s["name"] for s in page.json()["items"]]
        last = page.json()["next"]
        if last is None:
            break
        assert 'rel="next"' in page.headers["link"]
    assert [n for n in seen if n in names] == names
    assert seen == sorted(seen)
    bad = client.get(SCANNERS, params={"limit": 0}, auth=AUTH)
    assert bad.status_code == 400
    assert _problem_fields(bad) == ["limit"]
    for name in names:
        assert client.delete(f"{SCANNERS}/{name}", auth=AUTH).status_code == 204


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"url": "http://169.254.169.254/latest"}, "url"),
        ({"url": "ftp://scanner.example.com"}, "url"),
        ({"url": "http://127.0.0.1:1/adapter/api/v1"}, "url"),
        ({"auth": "Bearer"}, "access_credential"),
        ({"auth": "Basic", "access_credential": "no-colon"}, "access_credential"),
        ({"access_credential": "s3cret"}, "access_credential"),
        ({"name": "Not A Name"}, "name"),
        ({"auth": "Digest", "access_credential": "x"}, "auth"),
        ({"skip_cert_verify": "perhaps"}, "skip_cert_verify"),
        ({"colour": "blue"}, "colour"),
    ],
)
def test_bad_input_names_the_field(
    client: TestClient[Any], body: dict[str, Any], field: str
) -> None:
    response = client.post(SCANNERS, json={"name": _name(), "url": DEAD, **body}, auth=AUTH)
    assert response.status_code in (400, 422), response.text
    assert field in _problem_fields(response), response.text
    assert "s3cret" not in response.text


def test_a_project_selects_a_scanner_else_the_default(client: TestClient[Any]) -> None:
    project = _project(client)
    path = f"/api/v1/projects/{project}/scanner"
    assert client.get(path, auth=AUTH).json() == {"scanner": None, "effective": None}

    default = _create(client, is_default=True)["name"]
    chosen = _create(client, auth="X-ScannerAdapter-API-Key", access_credential="k3y")["name"]
    assert client.get(path, auth=AUTH).json() == {"scanner": None, "effective": default}

    unknown = client.put(path, json={"scanner": "nowhere"}, auth=AUTH)
    assert unknown.status_code == 422
    assert _problem_fields(unknown) == ["scanner"]
    selected = client.put(path, json={"scanner": chosen}, auth=AUTH)
    assert selected.status_code == 200, selected.text
    assert selected.json() == {"scanner": chosen, "effective": chosen}

    # a disabled registration is not used: the default is
    body = {"name": chosen, "url": DEAD, "auth": "X-ScannerAdapter-API-Key", "disabled": True}
    assert client.put(f"{SCANNERS}/{chosen}", json=body, auth=AUTH).status_code == 200
    assert client.get(path, auth=AUTH).json() == {"scanner": chosen, "effective": default}

    # a selected registration cannot be removed
    refused = client.delete(f"{SCANNERS}/{chosen}", auth=AUTH)
    assert refused.status_code == 409
    assert project in refused.json()["detail"]

    assert client.put(path, json={"scanner": None}, auth=AUTH).status_code == 200
    assert client.delete(f"{SCANNERS}/{chosen}", auth=AUTH).status_code == 204
    assert client.delete(f"{SCANNERS}/{default}", auth=AUTH).status_code == 204
    assert client.get(path, auth=AUTH).json() == {"scanner": None, "effective": None}
    missing = client.get("/api/v1/projects/nowhere0/scanner", auth=AUTH)
    assert missing.status_code == 404


def test_a_ping_of_a_dead_adapter_is_a_clear_problem(client: TestClient[Any]) -> None:
    name = _create(client, auth="Bearer", access_credential="t0ken-never-shown")["name"]
    pinged = client.post(f"{SCANNERS}/{name}/ping", auth=AUTH)
    assert pinged.status_code == 502, pinged.text
    assert pinged.headers["content-type"].startswith("application/problem+json")
    problem = pinged.json()
    assert name in problem["title"]
    assert "/api/v1/metadata" in problem["title"]
    assert "t0ken-never-shown" not in pinged.text
    assert client.post(f"{SCANNERS}/nowhere/ping", auth=AUTH).status_code == 404
    assert client.delete(f"{SCANNERS}/{name}", auth=AUTH).status_code == 204


def test_only_administrators_manage_scanners(client: TestClient[Any]) -> None:
    assert client.get(SCANNERS).status_code == 401
    assert client.post(SCANNERS, json={"name": _name(), "url": DEAD}).status_code == 401
