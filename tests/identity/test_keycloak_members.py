"""Members named after Keycloak users and groups are looked up in Keycloak."""

from __future__ import annotations

import secrets
from typing import Any

import pytest
from litestar.testing import TestClient

from tests.identity.conftest import ADMIN

pytestmark = pytest.mark.xdist_group("keycloak")


def _add(client: TestClient, project: str, **member: str) -> Any:  # type: ignore[type-arg]
    return client.post(f"/api/v1/projects/{project}/members", json=member, auth=ADMIN)


def test_keycloak_users_and_groups_must_exist(kc_app: TestClient) -> None:  # type: ignore[type-arg]
    project = f"members{secrets.token_hex(3)}"
    assert kc_app.post("/api/v1/projects", json={"name": project}, auth=ADMIN).status_code == 201
    assert _add(kc_app, project, user="alice", role="developer").status_code == 201
    assert _add(kc_app, project, group="/platform-readers", role="guest").status_code == 201
    for kind, name in (("user", f"ghost{secrets.token_hex(3)}"), ("group", "/no-such-group")):
        refused = _add(kc_app, project, **{kind: name, "role": "guest"})
        assert refused.status_code == 422, refused.text
        assert refused.json()["errors"][0]["field"] == kind
    listed = kc_app.get(f"/api/v1/projects/{project}/members", auth=ADMIN).json()["items"]
    assert sorted((m["kind"], m["name"]) for m in listed) == [
        ("group", "/platform-readers"),
        ("user", "alice"),
    ]
