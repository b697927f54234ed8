"""Every list of the management API pages alike: keyset, ``Link`` rel="next", ``next``.

Each list is walked from its first page by following ``Link`` headers until a page has
none: every item is seen exactly once, in the list's order, and each page's ``next``
names the cursor its ``Link`` carries. The app is this module's own (fresh database),
so each list holds exactly what the test put there.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from litestar.testing import TestClient

from api.app import create_app
from cli.startup import prepare_installation
from core.settings import Settings
from tests.api.conftest import PASSWORD, _settings
from tests.api.identity_helpers import Api
from tests.api.oci import OCIClient

Auth = tuple[str, str]
_LINK = re.compile(r'^<(?P<url>[^>]+)>; rel="next"$')


@pytest.fixture(scope="module", params=["sqlite-fs", "pg-s3"])
def fresh(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[OCIClient]:
    backend = str(request.param)
    settings: Settings = _settings(backend, tmp_path_factory.mktemp(f"pages-{backend}"), request)
    prepare_installation(settings)
    with TestClient(create_app(settings)) as client:
        yield OCIClient(client, PASSWORD)


@pytest.fixture
def api(fresh: OCIClient) -> Api:
    return Api(fresh.client, (fresh.username, fresh.password))


def walk(
    client: httpx.Client,
    path: str,
    auth: Auth,
    params: dict[str, str] | None = None,
    *,
    limit: int = 2,
) -> list[list[Any]]:
    """The pages of a list, following ``Link`` rel="next" from the first page to the end."""
    pages: list[list[Any]] = []
    response = client.get(path, params={"limit": limit, **(params or {})}, auth=auth)
    for _ in range(100):
        assert response.status_code == 200, response.text
        body = response.json()
        pages.append(body["items"])
        link = response.headers.get("link")
        if link is None:
            assert body["next"] is None
            return pages
        found = _LINK.match(link)
        assert found is not None, link
        url = found["url"]
        query = parse_qs(urlsplit(url).query)
        assert query["last"] == [body["next"]]
        assert query["limit"] == [str(limit)]
        assert len(body["items"]) == limit
        response = client.get(url, auth=auth)
    raise AssertionError("the list did not end")


def _flat(pages: list[list[Any]], field: str | None = None) -> list[Any]:
    return [item if field is None else item[field] for page in pages for item in page]


def test_projects_are_walked_in_name_order(api: Api) -> None:
    user = api.user()
    mine = sorted(api.project() for _ in range(5))
    for project in mine:
        api.member(project, "guest", user=user[0])
    api.project()  # not the user's
    pages = walk(api.client, "/api/v1/projects", user)
    assert _flat(pages, "name") == mine
    assert [len(page) for page in pages] == [2, 2, 1]


def test_repositories_and_tags_are_walked(api: Api, fresh: OCIClient) -> None:
    project = api.project()
    for path in ("c", "a/b", "d", "a"):
        fresh.push_image(f"{project}/{path}", "t1")
    for tag in ("t3", "t2", "t0"):
        fresh.put_manifest(f"{project}/a", tag, fresh.image(f"{project}/a"))
    base = f"/api/v1/projects/{project}/repositories"
    repositories = _flat(walk(api.client, base, api.admin), "name")
    assert repositories == [f"{project}/{p}" for p in ("a", "a/b", "c", "d")]
    assert _flat(walk(api.client, f"{base}/a/tags", api.admin)) == ["t0", "t1", "t2", "t3"]


def test_members_robots_and_tokens_are_walked_by_id(api: Api) -> None:
    project = api.project()
    users = [api.user() for _ in range(3)]
    ids = [api.member(project, "developer", user=u[0]) for u in users]
    members = _flat(walk(api.client, f"/api/v1/projects/{project}/members", api.admin))
    assert [m["id"] for m in members] == ids
    assert [m["name"] for m in members] == [u[0] for u in users]
    robots = [api.robot(project, ["pull"])[2] for _ in range(3)]
    listed = _flat(walk(api.client, f"/api/v1/projects/{project}/robots", api.admin), "id")
    assert listed == robots
    tokens = []
    for index in range(3):
        created = api.client.post(
            "/api/v1/users/me/tokens",
            json={"name": f"t{index}", "scopes": ["pull"]},
            auth=users[0],
        )
        assert created.status_code == 201, created.text
        tokens.append(created.json()["id"])
    assert _flat(walk(api.client, "/api/v1/users/me/tokens", users[0]), "id") == tokens


def test_system_lists_are_walked(api: Api) -> None:
    robots = []
    for _ in range(3):
        created = api.client.post(
            "/api/v1/robots",
            json={
                "name": f"s{secrets.token_hex(4)}",
                "permissions": [{"repository": "*", "actions": ["pull"]}],
            },
            auth=api.admin,
        )
        assert created.status_code == 201, created.text
        robots.append(created.json()["id"])
    listed = _flat(walk(api.client, "/api/v1/robots", api.admin), "id")
    assert [r for r in listed if r in robots] == robots
    assert listed == sorted(listed)
    issuers = []
    for index in range(3):
        created = api.client.post(
            "/api/v1/trusted-issuers",
            json={
                "issuer": f"https://issuer-{index}-{secrets.token_hex(3)}.example",
                "jwks_url": "https://issuer.example/jwks",
                "audience": "moorage",
                "permissions": [{"repository": "*", "actions": ["pull"]}],
            },
            auth=api.admin,
        )
        assert created.status_code == 201, created.text
        issuers.append(created.json()["id"])
    listed = _flat(walk(api.client, "/api/v1/trusted-issuers", api.admin), "id")
    assert [i for i in listed if i in issuers] == issuers
    assert listed == sorted(listed)
    endpoints = sorted(f"ep-{secrets.token_hex(4)}" for _ in range(3))
    for name in endpoints:
        created = api.client.post(
            "/api/v1/registries",
            json={"name": name, "url": f"https://{name}.example", "type": "oci"},
            auth=api.admin,
        )
        assert created.status_code == 201, created.text
    listed_names = _flat(walk(api.client, "/api/v1/registries", api.admin), "name")
    assert [n for n in listed_names if n in endpoints] == endpoints
    assert listed_names == sorted(listed_names)
    users = sorted(api.user()[0] for _ in range(3))
    names = _flat(walk(api.client, "/api/v1/users", api.admin), "username")
    assert names == sorted(names)
    assert [n for n in names if n in users] == users


def test_audit_log_is_walked_by_id(api: Api) -> None:
    project = api.project()
    user = api.user()
    api.member(project, "admin", user=user[0])
    for _ in range(5):
        assert api.client.get(f"/api/v1/projects/{project}", auth=user).status_code == 200
    params = {"actor": user[0], "project": project}
    every = api.client.get("/api/v1/audit", params={**params, "limit": 1000}, auth=api.admin)
    expected = [e["id"] for e in every.json()["items"]]
    assert len(expected) >= 5
    walked = _flat(walk(api.client, "/api/v1/audit", api.admin, params), "id")
    assert walked == expected
    scoped = f"/api/v1/projects/{project}/audit"
    assert _flat(walk(api.client, scoped, api.admin, {"actor": user[0]}), "id") == expected


def test_run_histories_are_walked_newest_first(api: Api) -> None:
    gc = []
    for _ in range(3):
        created = api.client.post("/api/v1/system/gc", json={"dry_run": True}, auth=api.admin)
        assert created.status_code == 202, created.text
        gc.append(created.json()["id"])
    listed = _flat(walk(api.client, "/api/v1/system/gc", api.admin), "id")
    assert [run for run in listed if run in gc] == gc[::-1]
    project = api.project()
    runs = []
    for _ in range(3):
        created = api.client.post(
            f"/api/v1/projects/{project}/retention/runs", json={"dry_run": True}, auth=api.admin
        )
        assert created.status_code == 202, created.text
        runs.append(created.json()["id"])
    history = walk(api.client, f"/api/v1/projects/{project}/retention/runs", api.admin)
    assert _flat(history, "id") == runs[::-1]


def _problem_names(response: httpx.Response, parameter: str) -> None:
    assert response.status_code == 400, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert [e["field"] for e in response.json()["errors"]] == [parameter]


@pytest.mark.parametrize(
    ("path", "params", "parameter"),
    [
        ("/api/v1/projects", {"limit": 0}, "limit"),
        ("/api/v1/users", {"limit": 1001}, "limit"),
        ("/api/v1/robots", {"limit": "many"}, "limit"),
        ("/api/v1/trusted-issuers", {"last": "abc"}, "last"),
        ("/api/v1/users/me/tokens", {"last": "-1"}, "last"),
        ("/api/v1/system/gc", {"last": "yesterday"}, "last"),
        ("/api/v1/audit", {"after": "x"}, "after"),
        ("/api/v1/projects", {"last": "p" * 600}, "last"),
    ],
)
def test_bad_sizes_and_cursors_are_named(
    api: Api, path: str, params: dict[str, Any], parameter: str
) -> None:
    _problem_names(api.client.get(path, params=params, auth=api.admin), parameter)


def test_openapi_lists_the_page_parameters(fresh: OCIClient) -> None:
    schema = fresh.client.get("/api/v1/schema/openapi.json")
    assert schema.status_code == 200, schema.text
    paths = schema.json()["paths"]
    lists = [
        "/api/v1/projects",
        "/api/v1/projects/{project}/repositories",
        "/api/v1/projects/{project}/repositories/{rest}",
        "/api/v1/projects/{project}/members",
        "/api/v1/projects/{project}/robots",
        "/api/v1/robots",
        "/api/v1/users",
        "/api/v1/users/me/tokens",
        "/api/v1/trusted-issuers",
        "/api/v1/registries",
        "/api/v1/webhooks",
        "/api/v1/projects/{project}/webhooks",
        "/api/v1/projects/{project}/webhooks/{hook}/deliveries",
        "/api/v1/audit",
        "/api/v1/projects/{project}/audit",
        "/api/v1/system/gc",
        "/api/v1/projects/{project}/retention/runs",
        "/api/v1/projects/{project}/promotion-rules",
        "/api/v1/projects/{project}/signing-keys",
    ]
    for path in lists:
        parameters = {p["name"]: p for p in paths[path]["get"]["parameters"]}
        assert {"limit", "last"} <= parameters.keys(), path
        assert parameters["limit"]["in"] == "query"
        assert parameters["limit"]["schema"].get("type") == "integer" or any(
            option.get("type") == "integer" for option in parameters["limit"]["schema"]["oneOf"]
        )
