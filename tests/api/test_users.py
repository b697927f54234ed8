"""Local users: email and full name (set by administrators), self-service password change."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
from litestar.testing import TestClient
from pydantic import SecretStr

from api.app import create_app
from cli.startup import prepare_installation
from core.identity_settings import LoginLimitSettings
from core.settings import AuthSettings, Settings
from tests.api.identity_helpers import Api
from tests.api.oci import OCIClient


@pytest.fixture
def api(oci: OCIClient) -> Api:
    return Api(oci.client, (oci.username, oci.password))


def test_admins_set_email_and_full_name(api: Api) -> None:
    name = f"u{secrets.token_hex(5)}"
    created = api.client.post(
        "/api/v1/users",
        json={
            "username": name,
            "password": "long-enough-1",
            "email": f"{name}@example.org",
            "full_name": "Ada Lovelace",
        },
        auth=api.admin,
    )
    assert created.status_code == 201, created.text
    assert created.json()["email"] == f"{name}@example.org"
    assert created.json()["full_name"] == "Ada Lovelace"
    changed = api.client.patch(
        f"/api/v1/users/{name}", json={"full_name": "Ada King", "email": None}, auth=api.admin
    )
    assert changed.status_code == 204
    read = api.client.get(f"/api/v1/users/{name}", auth=api.admin).json()
    assert (read["full_name"], read["email"]) == ("Ada King", None)
    own = api.client.get(f"/api/v1/users/{name}", auth=(name, "long-enough-1"))
    assert own.json()["full_name"] == "Ada King"
    listed = api.client.get("/api/v1/users?limit=100", auth=api.admin).json()["items"]
    assert {"username": name, "is_admin": False, "disabled": False, "email": None,
            "full_name": "Ada King"} in listed  # fmt: skip


def test_profile_values_are_checked_and_admin_only(api: Api) -> None:
    name, password = api.user()
    bad = api.client.patch(f"/api/v1/users/{name}", json={"email": "no-at-sign"}, auth=api.admin)
    assert bad.status_code == 422
    assert bad.json()["errors"][0]["field"] == "email"
    own = api.client.patch(
        f"/api/v1/users/{name}", json={"full_name": "Me Myself"}, auth=(name, password)
    )
    assert own.status_code == 403
    assert own.json()["errors"][0]["field"] == "full_name"
    other = api.user()
    assert api.client.get(f"/api/v1/users/{other[0]}", auth=(name, password)).status_code == 404


def test_users_change_their_own_password(api: Api) -> None:
    name, password = api.user()
    wrong = api.client.put(
        "/api/v1/users/me/password",
        json={"current_password": "not-my-password", "new_password": "brand-new-pass"},
        auth=(name, password),
    )
    assert wrong.status_code == 403
    assert wrong.json()["errors"][0]["field"] == "current_password"
    too_short = api.client.put(
        "/api/v1/users/me/password",
        json={"current_password": password, "new_password": "short"},
        auth=(name, password),
    )
    assert too_short.status_code == 422
    assert too_short.json()["errors"][0]["field"] == "new_password"
    changed = api.client.put(
        "/api/v1/users/me/password",
        json={"current_password": password, "new_password": "brand-new-pass"},
        auth=(name, password),
    )
    assert changed.status_code == 204, changed.text
    assert api.client.get("/auth/token", auth=(name, password)).status_code == 401
    assert api.client.get("/auth/token", auth=(name, "brand-new-pass")).status_code == 200


@pytest.fixture
def throttled(tmp_path: Path) -> Iterator[TestClient]:  # type: ignore[type-arg]
    settings = Settings(
        data_dir=tmp_path,
        auth=AuthSettings(admin_password=SecretStr("admin-password-1")),
        login_limit=LoginLimitSettings(max_failures=3, window_seconds=60),
    )
    prepare_installation(settings)
    with TestClient(create_app(settings)) as client:
        yield client


def test_wrong_current_passwords_hit_the_login_limit(throttled: TestClient) -> None:  # type: ignore[type-arg]
    admin = ("admin", "admin-password-1")
    created = throttled.post(
        "/api/v1/users", json={"username": "carol", "password": "carol-password"}, auth=admin
    )
    assert created.status_code == 201
    carol = ("carol", "carol-password")
    for _ in range(3):
        wrong = throttled.put(
            "/api/v1/users/me/password",
            json={"current_password": "guess-guess", "new_password": "stolen-pass"},
            auth=carol,
        )
        assert wrong.status_code == 403
    # NOTE: carol's own (successful) logins in between do not reset the count
    limited = throttled.put(
        "/api/v1/users/me/password",
        json={"current_password": "carol-password", "new_password": "stolen-pass"},
        auth=carol,
    )
    assert limited.status_code == 429
    assert 1 <= int(limited.headers["retry-after"]) <= 60
    assert throttled.get("/auth/token", auth=("carol", "stolen-pass")).status_code == 401
