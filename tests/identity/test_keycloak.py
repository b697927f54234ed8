"""Keycloak-backed identity: bearer tokens, group mapping, service accounts, disabled
users, browser login (code + PKCE), device login, Keycloak as a trusted issuer."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from keycloak import KeycloakAdmin
from litestar.testing import TestClient
from pydantic import SecretStr

from api.app import create_app
from cli.device_login import device_login
from cli.startup import prepare_installation
from core.settings import AuthSettings, Settings
from tests.api.identity_helpers import granted
from tests.identity.browser import (
    approve_device,
    browser,
    code_from_redirect,
    login_form,
    submit_login,
)
from tests.identity.conftest import ADMIN
from tests.services.keycloak import REALM, Keycloak

pytestmark = pytest.mark.xdist_group("keycloak")

CI_CLIENT = ("moorage-ci", "moorage-ci-secret-for-tests")


def user_token(keycloak: Keycloak, username: str, password: str) -> str:
    response = httpx.post(
        keycloak.token_endpoint,
        data={
            "grant_type": "password",
            "client_id": "moorage-cli",
            "username": username,
            "password": password,
        },
    )
    assert response.status_code == 200, response.text
    return str(response.json()["access_token"])


def realm_admin(keycloak: Keycloak) -> KeycloakAdmin:
    return KeycloakAdmin(
        server_url=keycloak.base_url,
        username=keycloak.admin_user,
        password=keycloak.admin_password,
        realm_name=REALM,
        user_realm_name="master",
    )


@pytest.fixture
def temp_user(keycloak: Keycloak) -> Iterator[tuple[str, str]]:
    admin = realm_admin(keycloak)
    name, password = f"eve{secrets.token_hex(4)}", secrets.token_urlsafe(12)
    user_id = admin.create_user(
        {
            "username": name,
            "enabled": True,
            "email": f"{name}@moorage.test",
            "emailVerified": True,
            "firstName": "Eve",
            "lastName": "Temp",
            "groups": ["/moorage/kc-team/developer"],
            "credentials": [{"type": "password", "value": password, "temporary": False}],
        }
    )
    yield name, password
    admin.delete_user(user_id)


def test_keycloak_startup_is_measured(keycloak: Keycloak) -> None:
    assert 0 < keycloak.startup_seconds < 480


@pytest.mark.parametrize(
    ("user", "actions"),
    [
        (("alice", "alice-password"), {"pull", "push"}),
        (("bob", "bob-password"), {"pull"}),
        (("carol", "carol-password"), {"pull", "push", "delete"}),
    ],
)
def test_groups_map_to_project_roles(
    kc_app: TestClient,
    keycloak: Keycloak,
    user: tuple[str, str],
    actions: set[str],  # type: ignore[type-arg]
) -> None:
    token = user_token(keycloak, *user)
    assert granted(kc_app, (user[0], token), "kc-team/app") == actions
    assert granted(kc_app, (user[0], token), "other/app") == set()
    bearer = {"Authorization": f"Bearer {token}"}
    listed = kc_app.get("/api/v1/projects", headers=bearer)
    assert listed.status_code == 200
    assert [p["name"] for p in listed.json()["items"]] == ["kc-team"]


def test_keycloak_admin_group_is_system_admin(kc_app: TestClient, keycloak: Keycloak) -> None:  # type: ignore[type-arg]
    token = user_token(keycloak, "root", "root-password")
    assert (
        kc_app.get("/api/v1/users", headers={"Authorization": f"Bearer {token}"}).status_code == 200
    )
    bob = user_token(keycloak, "bob", "bob-password")
    assert (
        kc_app.get("/api/v1/users", headers={"Authorization": f"Bearer {bob}"}).status_code == 403
    )


def test_group_member_rows_apply_to_keycloak_groups(kc_app: TestClient, keycloak: Keycloak) -> None:  # type: ignore[type-arg]
    created = kc_app.post(
        "/api/v1/projects", json={"name": f"readers{secrets.token_hex(3)}"}, auth=ADMIN
    )
    project = created.json()["name"]
    bob = user_token(keycloak, "bob", "bob-password")
    assert granted(kc_app, ("bob", bob), f"{project}/app") == set()
    kc_app.post(
        f"/api/v1/projects/{project}/members",
        json={"group": "/platform-readers", "role": "guest"},
        auth=ADMIN,
    )
    assert granted(kc_app, ("bob", bob), f"{project}/app") == {"pull"}


def test_service_account_client_credentials_login(kc_app: TestClient) -> None:  # type: ignore[type-arg]
    assert granted(kc_app, CI_CLIENT, "kc-team/app") == {"pull", "push"}
    assert kc_app.get("/auth/token", auth=("moorage-ci", "wrong-secret")).status_code == 401


def test_disabled_user_gets_no_new_token(
    kc_app: TestClient,
    keycloak: Keycloak,
    temp_user: tuple[str, str],  # type: ignore[type-arg]
) -> None:
    token = user_token(keycloak, *temp_user)
    assert granted(kc_app, (temp_user[0], token), "kc-team/app") == {"pull", "push"}
    pat = kc_app.post(
        "/api/v1/users/me/tokens",
        json={"name": "laptop", "scopes": ["pull", "push"]},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert pat.status_code == 201, pat.text
    pat_auth = (temp_user[0], pat.json()["token"])
    assert granted(kc_app, pat_auth, "kc-team/app") == {"pull", "push"}
    admin = realm_admin(keycloak)
    user_id = admin.get_user_id(temp_user[0])
    assert user_id is not None
    admin.update_user(user_id, {"enabled": False})
    assert kc_app.get("/auth/token", auth=(temp_user[0], token)).status_code == 401
    assert kc_app.get("/auth/token", auth=pat_auth).status_code == 401
    assert (
        kc_app.get("/api/v1/projects", headers={"Authorization": f"Bearer {token}"}).status_code
        == 401
    )


def test_browser_login_with_pkce(kc_app: TestClient, keycloak: Keycloak) -> None:  # type: ignore[type-arg]
    start = kc_app.get("/auth/oidc/login", follow_redirects=False)
    assert start.status_code == 302
    location = start.headers["location"]
    assert location.startswith(keycloak.issuer)
    assert "code_challenge_method=S256" in location
    with browser() as client:
        page = login_form(client, location)
        code, state = code_from_redirect(submit_login(client, page, "alice", "alice-password"))
    finished = kc_app.get("/auth/oidc/callback", params={"code": code, "state": state})
    assert finished.status_code == 200, finished.text
    body = finished.json()
    assert body["username"] == "alice"
    auth = ("alice", body["token"])
    assert kc_app.get("/api/v1/projects/kc-team", auth=auth).status_code == 200
    assert granted(kc_app, auth, "kc-team/app") == {"pull", "push"}
    replay = kc_app.get("/auth/oidc/callback", params={"code": code, "state": state})
    assert replay.status_code == 403


def test_device_login(kc_app: TestClient, keycloak: Keycloak) -> None:  # type: ignore[type-arg]
    approved: list[str] = []

    def show(text: str) -> None:
        url = text.split()[1]
        with browser() as client:
            approved.append(approve_device(client, url, "dave", "dave-password"))

    result = device_login(
        "http://unused", keycloak.issuer, "moorage-cli", show, registry_client=kc_app
    )
    assert approved
    assert result["username"] == "dave"
    assert result["token"].startswith("mrp_")
    assert granted(kc_app, ("dave", result["token"]), "kc-team/app") == {"pull", "push"}


def test_keycloak_as_a_trusted_issuer(keycloak: Keycloak, tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, auth=AuthSettings(admin_password=SecretStr(ADMIN[1])))
    prepare_installation(settings)
    with TestClient(create_app(settings)) as client:
        client.post("/api/v1/projects", json={"name": "ci"}, auth=ADMIN)
        registered = client.post(
            "/api/v1/trusted-issuers",
            json={
                "issuer": keycloak.issuer,
                "discovery_url": f"{keycloak.issuer}/.well-known/openid-configuration",
                "audience": "moorage",
                "subject_claim": "azp",
                "subject_pattern": "moorage-ci",
                "permissions": [{"repository": "ci/*", "actions": ["pull", "push"]}],
            },
            auth=ADMIN,
        )
        assert registered.status_code == 201, registered.text
        answer = httpx.post(
            keycloak.token_endpoint,
            data={
                "grant_type": "client_credentials",
                "client_id": CI_CLIENT[0],
                "client_secret": CI_CLIENT[1],
            },
        )
        token = answer.json()["access_token"]
        assert granted(client, ("ci", token), "ci/app") == {"pull", "push"}
        alice = user_token(keycloak, "alice", "alice-password")
        assert client.get("/auth/token", auth=("alice", alice)).status_code == 401
