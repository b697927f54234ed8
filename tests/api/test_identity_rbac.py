"""Local users, project roles, members and tenancy on the management API and token service."""

from __future__ import annotations

from typing import Any

import pytest

from tests.api.identity_helpers import Api, granted, token_access
from tests.api.oci import OCIClient

ROLE_ACTIONS = {
    "admin": {"pull", "push", "delete"},
    "maintainer": {"pull", "push", "delete"},
    "developer": {"pull", "push"},
    "guest": {"pull"},
    "limited-guest": {"pull"},
}


@pytest.fixture
def api(oci: OCIClient) -> Api:
    return Api(oci.client, (oci.username, oci.password))


@pytest.mark.parametrize("role", sorted(ROLE_ACTIONS))
def test_token_grants_what_the_role_allows(api: Api, role: str) -> None:
    project, (name, password) = api.project(), api.user()
    repo = f"{project}/app"
    assert granted(api.client, (name, password), repo) == set()
    api.member(project, role, user=name)
    assert granted(api.client, (name, password), repo) == ROLE_ACTIONS[role]


def test_groups_need_an_identity_provider(api: Api) -> None:
    project = api.project()
    # NOTE: without OIDC no group exists (local users carry none): no row waits for one
    refused = api.client.post(
        f"/api/v1/projects/{project}/members",
        json={"group": "/team-x", "role": "developer"},
        auth=api.admin,
    )
    assert refused.status_code == 422
    assert refused.json()["errors"][0]["field"] == "group"
    name, password = api.user()
    assert granted(api.client, (name, password), f"{project}/app") == set()


def test_public_project_allows_anonymous_pull_only(api: Api) -> None:
    project = api.project(public=True)
    assert granted(api.client, None, f"{project}/app") == {"pull"}
    private = api.project()
    assert granted(api.client, None, f"{private}/app") == set()


def test_scope_intersection_tk03(api: Api) -> None:
    p1, p2 = api.project(), api.project()
    bob = api.user()
    api.member(p2, "guest", user=bob[0])
    access = token_access(
        api.client,
        bob,
        f"repository:{p1}/app:pull,push",
        f"repository:{p2}/app:pull",
        "registry:catalog:*",
    )
    assert access == [{"type": "repository", "name": f"{p2}/app", "actions": ["pull"]}]
    assert token_access(api.client, None, f"repository:{p1}/app:pull") == []


def test_catalog_lists_only_readable_repositories(oci: OCIClient, api: Api) -> None:
    mine, other = api.project(), api.project()
    oci.push_image(f"{mine}/app", "v1")
    oci.push_image(f"{other}/app", "v1")
    user = api.user()
    api.member(mine, "limited-guest", user=user[0])
    token = api.client.get("/auth/token", params={"scope": "registry:catalog:*"}, auth=user)
    headers = {"Authorization": f"Bearer {token.json()['token']}"}
    listed = api.client.get("/v2/_catalog?n=1000", headers=headers).json()["repositories"]
    assert f"{mine}/app" in listed
    assert f"{other}/app" not in listed


def test_forbidden_and_missing_projects_answer_alike_az09(api: Api) -> None:
    project = api.project()
    outsider = api.user()
    hidden = api.client.get(f"/api/v1/projects/{project}", auth=outsider)
    missing = api.client.get("/api/v1/projects/nosuchproject0", auth=outsider)
    assert hidden.status_code == missing.status_code == 404
    assert hidden.json()["title"] == missing.json()["title"]
    assert api.client.get(f"/api/v1/projects/{project}").status_code == 404


def test_role_floor_az07(api: Api) -> None:
    project = api.project()
    for role in ("maintainer", "developer", "guest"):
        name, password = api.user()
        api.member(project, role, user=name)
        auth = (name, password)
        add = api.client.post(
            f"/api/v1/projects/{project}/members", json={"user": "x", "role": "admin"}, auth=auth
        )
        assert add.status_code == 403, (role, add.text)
        patch = api.client.patch(f"/api/v1/projects/{project}", json={"public": True}, auth=auth)
        assert patch.status_code == 403
        robot = api.client.post(
            f"/api/v1/projects/{project}/robots",
            json={"name": "r1", "permissions": [{"repository": "*", "actions": ["pull"]}]},
            auth=auth,
        )
        assert robot.status_code == 403
        assert api.client.get(f"/api/v1/projects/{project}", auth=auth).status_code == 200
    assert api.client.get(f"/api/v1/projects/{project}").json()["title"] == "Not Found"


def test_project_admin_manages_members_and_public_flag(api: Api) -> None:
    project = api.project()
    owner, guest = api.user(), api.user()
    api.member(project, "admin", user=owner[0])
    added = api.client.post(
        f"/api/v1/projects/{project}/members", json={"user": guest[0], "role": "guest"}, auth=owner
    )
    assert added.status_code == 201
    member_id = added.json()["id"]
    changed = api.client.patch(
        f"/api/v1/projects/{project}/members/{member_id}", json={"role": "developer"}, auth=owner
    )
    assert changed.status_code == 200
    assert granted(api.client, guest, f"{project}/app") == {"pull", "push"}
    patched = api.client.patch(f"/api/v1/projects/{project}", json={"public": True}, auth=owner)
    assert patched.json()["public"] is True
    assert granted(api.client, None, f"{project}/app") == {"pull"}
    removed = api.client.delete(f"/api/v1/projects/{project}/members/{member_id}", auth=owner)
    assert removed.status_code == 204
    assert granted(api.client, guest, f"{project}/app") == {"pull"}  # public only


def test_object_ids_of_another_project_are_not_found_az06(api: Api) -> None:
    p1, p2 = api.project(), api.project()
    bob = api.user()
    api.member(p2, "admin", user=bob[0])
    p1_member = api.member(p1, "guest", user=api.user()[0])
    _, _, p1_robot = api.robot(p1, ["pull"])
    own_member = api.member(p2, "guest", user=api.user()[0])
    before = api.client.get(f"/api/v1/projects/{p1}/members", auth=api.admin).json()
    for path in (f"members/{p1_member}", f"robots/{p1_robot}"):
        update = {"role": "admin"} if path.startswith("members") else {"disabled": True}
        for method, body in (("GET", None), ("PATCH", update), ("DELETE", None)):
            if path.startswith("members") and method == "GET":
                continue
            kwargs: dict[str, Any] = {"json": body} if body else {}
            hit = api.client.request(method, f"/api/v1/projects/{p2}/{path}", auth=bob, **kwargs)
            nothing = api.client.request(
                method, f"/api/v1/projects/{p2}/{path.split('/')[0]}/99999999", auth=bob, **kwargs
            )
            assert hit.status_code == nothing.status_code, (method, path, hit.text)
            assert hit.status_code == 404, (method, path, hit.text)
    for path in (f"/api/v1/projects/{p1}/members", f"/api/v1/projects/{p1}/robots"):
        assert api.client.get(path, auth=bob).status_code == 404
    assert api.client.get(f"/api/v1/robots/{p1_robot}", auth=bob).status_code == 403
    after = api.client.get(f"/api/v1/projects/{p1}/members", auth=api.admin).json()
    assert before == after
    positive = api.client.patch(
        f"/api/v1/projects/{p2}/members/{own_member}", json={"role": "developer"}, auth=bob
    )
    assert positive.status_code == 200


def test_mass_assignment_is_refused_az08(api: Api) -> None:
    response = api.client.post(
        "/api/v1/users",
        json={"username": "m1x", "password": "long-enough-1", "is_admin": True, "role": "admin"},
        auth=api.admin,
    )
    assert response.status_code == 400
    name, password = api.user()
    listed = api.client.get("/api/v1/users?limit=100", auth=api.admin).json()["items"]
    mine = next(user for user in listed if user["username"] == name)
    assert (mine["is_admin"], mine["disabled"]) == (False, False)
    escalate = api.client.patch(
        f"/api/v1/users/{name}", json={"is_admin": True}, auth=(name, password)
    )
    assert escalate.status_code == 400


def test_users_admin_and_self_service(api: Api) -> None:
    name, password = api.user()
    assert api.client.get("/api/v1/users", auth=(name, password)).status_code == 403
    wrong = api.client.patch(
        f"/api/v1/users/{name}",
        json={"password": "new-password-1", "current_password": "nope-nope"},
        auth=(name, password),
    )
    assert wrong.status_code == 403
    changed = api.client.patch(
        f"/api/v1/users/{name}",
        json={"password": "new-password-1", "current_password": password},
        auth=(name, password),
    )
    assert changed.status_code == 204
    assert api.client.get("/auth/token", auth=(name, password)).status_code == 401
    assert api.client.get("/auth/token", auth=(name, "new-password-1")).status_code == 200
    other = api.user()
    assert (
        api.client.patch(
            f"/api/v1/users/{other[0]}", json={"disabled": True}, auth=(name, "new-password-1")
        ).status_code
        == 404
    )
    disabled = api.client.patch(f"/api/v1/users/{name}", json={"disabled": True}, auth=api.admin)
    assert disabled.status_code == 204
    assert api.client.get("/auth/token", auth=(name, "new-password-1")).status_code == 401
    reset = api.client.patch(
        f"/api/v1/users/{name}",
        json={"disabled": False, "password": "reset-pass-1"},
        auth=api.admin,
    )
    assert reset.status_code == 204
    assert api.client.get("/auth/token", auth=(name, "reset-pass-1")).status_code == 200
    assert api.client.delete(f"/api/v1/users/{name}", auth=api.admin).status_code == 204
    assert api.client.get("/auth/token", auth=(name, "reset-pass-1")).status_code == 401


def test_registry_tokens_are_not_accepted_on_the_management_api(api: Api) -> None:
    token = api.client.get("/auth/token", auth=api.admin).json()["token"]
    response = api.client.get("/api/v1/users", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 401


def test_users_create_projects_and_become_their_admins(api: Api) -> None:
    user = api.user()
    created = api.client.post("/api/v1/projects", json={"name": f"own{user[0]}"}, auth=user)
    assert created.status_code == 201
    assert granted(api.client, user, f"own{user[0]}/app") == {"pull", "push", "delete"}
    listed = api.client.get("/api/v1/projects", auth=user).json()["items"]
    assert f"own{user[0]}" in [p["name"] for p in listed]
    assert all(p["public"] or p["name"] == f"own{user[0]}" for p in listed)
