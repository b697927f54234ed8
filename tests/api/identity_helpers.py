"""Helpers for identity tests: accounts, projects, members and tokens over the API."""

from __future__ import annotations

import base64
import json
import secrets
from dataclasses import dataclass
from typing import Any

import httpx

from tests.api.oci import unique_project


def claims(token: str) -> dict[str, Any]:
    payload = token.split(".")[1]
    return dict(json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))))


@dataclass
class Api:
    """The management API as the administrator."""

    client: httpx.Client
    admin: tuple[str, str]

    def user(self) -> tuple[str, str]:
        name, password = f"u{secrets.token_hex(5)}", secrets.token_urlsafe(12)
        response = self.client.post(
            "/api/v1/users", json={"username": name, "password": password}, auth=self.admin
        )
        assert response.status_code == 201, response.text
        return name, password

    def project(self, public: bool = False) -> str:
        name = unique_project()
        response = self.client.post(
            "/api/v1/projects", json={"name": name, "public": public}, auth=self.admin
        )
        assert response.status_code == 201, response.text
        return name

    def member(self, project: str, role: str, **who: str) -> int:
        response = self.client.post(
            f"/api/v1/projects/{project}/members", json={**who, "role": role}, auth=self.admin
        )
        assert response.status_code == 201, response.text
        return int(response.json()["id"])

    def robot(
        self, project: str, actions: list[str], repository: str = "*"
    ) -> tuple[str, str, int]:
        response = self.client.post(
            f"/api/v1/projects/{project}/robots",
            json={
                "name": f"r{secrets.token_hex(4)}",
                "permissions": [{"repository": repository, "actions": actions}],
            },
            auth=self.admin,
        )
        assert response.status_code == 201, response.text
        body = response.json()
        return str(body["name"]), str(body["secret"]), int(body["id"])


def token_access(
    client: httpx.Client, auth: tuple[str, str] | None, *scopes: str
) -> list[dict[str, Any]]:
    """The ``access`` claim of the registry token ``auth`` gets for ``scopes``."""
    response = client.get("/auth/token", params={"scope": list(scopes)}, auth=auth)
    assert response.status_code == 200, response.text
    return list(claims(response.json()["token"])["access"])


def granted(client: httpx.Client, auth: tuple[str, str] | None, repo: str) -> set[str]:
    """The actions on ``repo`` that ``auth`` gets when asking for pull, push and delete."""
    access = token_access(client, auth, f"repository:{repo}:pull,push,delete")
    return {a for entry in access if entry["name"] == repo for a in entry["actions"]}
