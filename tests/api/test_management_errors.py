"""Management API errors: RFC 9457 problem details naming the field and the rule, and
authentication before body validation on every write route."""

from __future__ import annotations

import re
import secrets
from typing import Any

import pytest
from litestar import Litestar
from litestar.routes import HTTPRoute

from tests.api.identity_helpers import Api
from tests.api.oci import OCIClient

PROBLEM = "application/problem+json"
WRITES = ("POST", "PUT", "PATCH", "DELETE")


@pytest.fixture
def api(oci: OCIClient) -> Api:
    return Api(oci.client, (oci.username, oci.password))


def _errors(response: Any) -> dict[str, str]:
    assert response.headers["content-type"].startswith(PROBLEM), response.text
    body = response.json()
    assert body["status"] == response.status_code
    return {entry["field"]: entry["message"] for entry in body["errors"]}


def test_schema_errors_name_each_field_and_rule(api: Api) -> None:
    response = api.client.post(
        "/api/v1/users",
        json={"username": "", "password": "x" * 300, "is_admin": True},
        auth=api.admin,
    )
    assert response.status_code == 400
    errors = _errors(response)
    assert set(errors) == {"username", "password", "is_admin"}
    assert "at least 1" in errors["username"]
    assert "at most 256" in errors["password"]
    assert "not permitted" in errors["is_admin"].lower()
    pointers = {entry["pointer"] for entry in response.json()["errors"]}
    assert pointers == {"/username", "/password", "/is_admin"}


def test_nested_fields_are_named_by_pointer(api: Api) -> None:
    project = api.project()
    response = api.client.post(
        f"/api/v1/projects/{project}/robots",
        json={"name": "r1", "permissions": [{"repository": "", "actions": ["pull"]}]},
        auth=api.admin,
    )
    assert response.status_code == 400
    [entry] = response.json()["errors"]
    assert entry["field"] == "permissions.0.repository"
    assert entry["pointer"] == "/permissions/0/repository"


def test_value_errors_name_the_field(api: Api) -> None:
    bad_project = api.client.post("/api/v1/projects", json={"name": "Bad_Name"}, auth=api.admin)
    assert bad_project.status_code == 422
    assert set(_errors(bad_project)) == {"name"}
    bad_user = api.client.post(
        "/api/v1/users", json={"username": "Bad User", "password": "long-enough-1"}, auth=api.admin
    )
    assert bad_user.status_code == 422
    assert set(_errors(bad_user)) == {"username"}
    short = api.client.post(
        "/api/v1/users", json={"username": "shortpw", "password": "short"}, auth=api.admin
    )
    assert short.status_code == 422
    assert "8 to 256" in _errors(short)["password"]


def test_malformed_json_is_a_problem_too(api: Api) -> None:
    response = api.client.post(
        "/api/v1/projects",
        content=b"{not json",
        headers={"Content-Type": "application/json"},
        auth=api.admin,
    )
    assert response.status_code == 400
    assert response.headers["content-type"].startswith(PROBLEM)
    assert response.json()["errors"]


def _write_routes(app: Litestar) -> list[tuple[str, str]]:
    routes: list[tuple[str, str]] = []
    for route in app.routes:
        if not isinstance(route, HTTPRoute) or not route.path.startswith("/api/v1/"):
            continue
        path = re.sub(r"\{[a-z_]+:int\}", "1", route.path)
        path = re.sub(r"\{rest:path\}", "team/app/tags/v1", path)
        path = re.sub(r"\{[a-z_]+:[a-z]+\}", "x1", path)
        routes.extend((method, path) for method in sorted(route.methods) if method in WRITES)
    return routes


def test_every_write_route_authenticates_before_validating(api: Api) -> None:
    routes = _write_routes(api.client.app)  # type: ignore[attr-defined]
    assert len(routes) >= 20
    for method, path in routes:
        # NOTE: a fresh username each time: failures must not lock out a real account
        for auth in (None, (f"nobody{secrets.token_hex(4)}", "wrong-password")):
            response = api.client.request(method, path, json={"no such field": [1, 2]}, auth=auth)
            assert response.status_code == 401, (method, path, auth, response.text)
            assert response.headers["content-type"].startswith(PROBLEM)
            assert "www-authenticate" in response.headers
