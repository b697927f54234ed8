"""Role guards of the management API, one refusal per role boundary.

Anonymous callers get ``401`` where a route needs credentials; system routes refuse
everyone but system administrators with ``403``; project routes answer ``404`` to a
caller who cannot see the project and ``403`` to one whose roles (``core.rbac``) lack
the permission. Guards run before the body is read: a refused caller with a malformed
body learns nothing about the route's schema, and nothing changes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from tests.api.identity_helpers import Api
from tests.api.oci import OCIClient

Auth = tuple[str, str]


@dataclass
class Setup:
    api: Api
    project: str
    roles: dict[str, Auth | None]
    member_id: int

    def user(self, role: str) -> Auth:
        auth = self.roles[role]
        assert auth is not None
        return auth


@pytest.fixture(scope="module")
def setup(oci: OCIClient) -> Setup:
    api = Api(oci.client, (oci.username, oci.password))
    project = api.project()
    roles: dict[str, Auth | None] = {"anonymous": None, "outsider": api.user()}
    for role in ("limited-guest", "guest", "developer", "maintainer", "admin"):
        user = roles[role] = api.user()
        api.member(project, role, user=user[0])
    target = api.user()
    member_id = api.member(project, "guest", user=target[0])
    return Setup(api, project, roles, member_id)


ROBOT = {"name": "guarded", "permissions": [{"repository": "*", "actions": ["pull"]}]}

CASES: list[tuple[str, str, str, Any, int]] = [
    # (role, method, path with {p} and {m}, JSON body, status)
    ("anonymous", "GET", "/api/v1/projects/{p}/members", None, 401),
    ("anonymous", "GET", "/api/v1/projects/{p}/robots", None, 401),
    ("anonymous", "GET", "/api/v1/users/me/tokens", None, 401),
    ("anonymous", "GET", "/api/v1/users", None, 401),
    ("anonymous", "GET", "/api/v1/system/gc", None, 401),
    ("anonymous", "GET", "/api/v1/audit", None, 401),
    ("anonymous", "GET", "/api/v1/projects/{p}/audit", None, 401),
    ("outsider", "GET", "/api/v1/system/gc", None, 403),
    ("outsider", "GET", "/api/v1/system/gc/gc-none", None, 403),
    ("outsider", "GET", "/api/v1/audit", None, 403),
    ("outsider", "GET", "/api/v1/robots", None, 403),
    ("outsider", "GET", "/api/v1/users", None, 403),
    ("outsider", "POST", "/api/v1/users", {"username": "x1", "password": "p" * 12}, 403),
    ("outsider", "POST", "/api/v1/users", {"is_admin": True}, 403),
    ("outsider", "POST", "/api/v1/system/gc", {"dry_run": "not a bool"}, 403),
    ("outsider", "POST", "/api/v1/trusted-issuers", {}, 403),
    ("outsider", "GET", "/api/v1/projects/{p}", None, 404),
    ("outsider", "GET", "/api/v1/projects/{p}/members", None, 404),
    ("outsider", "POST", "/api/v1/projects/{p}/robots", {"name": 5}, 404),
    ("outsider", "GET", "/api/v1/projects/{p}/audit", None, 404),
    ("outsider", "GET", "/api/v1/projects/{p}/repositories", None, 404),
    ("outsider", "PUT", "/api/v1/projects/{p}/quota", {"bytes": 1}, 404),
    ("limited-guest", "GET", "/api/v1/projects/{p}/members", None, 403),
    ("limited-guest", "GET", "/api/v1/projects/{p}/robots", None, 403),
    ("guest", "GET", "/api/v1/projects/{p}/retention/runs", None, 403),
    ("guest", "POST", "/api/v1/projects/{p}/retention/runs", {"dry_run": True}, 403),
    ("guest", "GET", "/api/v1/projects/{p}/immutability", None, 403),
    ("developer", "POST", "/api/v1/projects/{p}/members", {"user": "x", "role": "admin"}, 403),
    ("developer", "POST", "/api/v1/projects/{p}/members", {}, 403),
    ("developer", "PATCH", "/api/v1/projects/{p}", {"public": True}, 403),
    ("developer", "PUT", "/api/v1/projects/{p}/immutability", {"rules": []}, 403),
    ("maintainer", "PATCH", "/api/v1/projects/{p}/members/{m}", {"role": "admin"}, 403),
    ("maintainer", "DELETE", "/api/v1/projects/{p}/members/{m}", None, 403),
    ("maintainer", "POST", "/api/v1/projects/{p}/robots", ROBOT, 403),
    ("maintainer", "GET", "/api/v1/projects/{p}/audit", None, 403),
    ("maintainer", "DELETE", "/api/v1/projects/{p}", None, 403),
    ("admin", "PUT", "/api/v1/projects/{p}/quota", {"bytes": 1}, 403),
    ("admin", "GET", "/api/v1/robots", None, 403),
]


@pytest.mark.parametrize(("role", "method", "path", "body", "status"), CASES)
def test_guard_refuses(
    setup: Setup, role: str, method: str, path: str, body: Any, status: int
) -> None:
    url = path.format(p=setup.project, m=setup.member_id)
    auth = setup.roles[role]
    kwargs: dict[str, Any] = {} if body is None else {"json": body}
    response = setup.api.client.request(method, url, auth=auth, **kwargs)
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["status"] == status
    if status == 401:
        assert "www-authenticate" in response.headers


def test_refused_writes_change_nothing(setup: Setup) -> None:
    api, project = setup.api, setup.project
    members = f"/api/v1/projects/{project}/members"
    before = api.client.get(members, auth=api.admin).json()["items"]
    for role in ("developer", "maintainer"):
        auth = setup.user(role)
        api.client.patch(f"{members}/{setup.member_id}", json={"role": "admin"}, auth=auth)
        api.client.delete(f"{members}/{setup.member_id}", auth=auth)
    assert api.client.get(members, auth=api.admin).json()["items"] == before
    assert api.client.get(f"/api/v1/projects/{project}", auth=api.admin).status_code == 200


@pytest.mark.parametrize(
    ("role", "method", "path", "status"),
    [
        ("limited-guest", "GET", "/api/v1/projects/{p}", 200),
        ("guest", "GET", "/api/v1/projects/{p}/members", 200),
        ("guest", "GET", "/api/v1/projects/{p}/robots", 200),
        ("developer", "GET", "/api/v1/projects/{p}/retention/runs", 200),
        ("admin", "GET", "/api/v1/projects/{p}/audit", 200),
        ("outsider", "GET", "/api/v1/users/me/tokens", 200),
    ],
)
def test_guard_admits_the_role_just_inside(
    setup: Setup, role: str, method: str, path: str, status: int
) -> None:
    url = path.format(p=setup.project)
    response = setup.api.client.request(method, url, auth=setup.roles[role])
    assert response.status_code == status, response.text
