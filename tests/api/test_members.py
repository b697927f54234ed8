"""Project members name identities that exist (issue: a member for a user nobody has)."""

from __future__ import annotations

import secrets

import pytest

from tests.api.identity_helpers import Api, granted
from tests.api.oci import OCIClient


@pytest.fixture
def api(oci: OCIClient) -> Api:
    return Api(oci.client, (oci.username, oci.password))


@pytest.mark.parametrize(
    ("kind", "name"), [("user", "ghost"), ("group", "/nobody"), ("robot", "robot$nobody")]
)
def test_unknown_identities_are_refused_naming_the_field(api: Api, kind: str, name: str) -> None:
    project = api.project()
    response = api.client.post(
        f"/api/v1/projects/{project}/members",
        json={kind: f"{name}{secrets.token_hex(3)}", "role": "developer"},
        auth=api.admin,
    )
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    [error] = response.json()["errors"]
    assert (error["field"], error["pointer"]) == (kind, f"/{kind}")
    members = api.client.get(f"/api/v1/projects/{project}/members", auth=api.admin).json()
    assert members["items"] == []


def test_a_name_registered_later_gets_no_grant(api: Api) -> None:
    project, later = api.project(), f"later{secrets.token_hex(4)}"
    refused = api.client.post(
        f"/api/v1/projects/{project}/members",
        json={"user": later, "role": "admin"},
        auth=api.admin,
    )
    assert refused.status_code == 422
    created = api.client.post(
        "/api/v1/users", json={"username": later, "password": "long-enough-1"}, auth=api.admin
    )
    assert created.status_code == 201
    assert granted(api.client, (later, "long-enough-1"), f"{project}/app") == set()


def test_existing_users_are_added(api: Api) -> None:
    project, (name, password) = api.project(), api.user()
    member_id = api.member(project, "guest", user=name)
    assert member_id > 0
    assert granted(api.client, (name, password), f"{project}/app") == {"pull"}
