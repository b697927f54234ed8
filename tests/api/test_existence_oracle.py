"""No existence oracle, and no route-normalisation bypass (AZ-09).

A private project ``p1`` holds ``p1/app``; ``p1/nope`` and the project ``ghost`` do
not exist. Unauthenticated callers and bob (admin of ``p2`` only) must not be able to
tell the hidden from the missing: same status, error code, headers, body (up to the
name they asked for) and the same database statements. Spellings of the catalog and
of repository paths (dot segments, encoded slashes, case, doubled slashes) never
answer ``200`` without a token and never show bob anything of ``p1``.
"""

from __future__ import annotations

import http.client
import statistics
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from typing import Any

import httpx
import pytest
from sqlalchemy import event
from sqlalchemy.engine import Engine

from api.trust_wiring import RELOAD_THREAD
from api.webhook_wiring import REFRESH_THREAD
from tests.api.identity_helpers import Api, claims
from tests.api.oci import OCIClient, unique_project
from tests.services.moorage import MoorageServer

SAMPLES = 200
#: Values that differ between any two responses.
VOLATILE = {"date", "x-request-id", "content-length"}


@dataclass
class World:
    client: httpx.Client
    api: Api
    bob: tuple[str, str]
    p1: str
    p2: str
    ghost: str
    blob: str
    bob_token: str  # bob's registry token, asked for p1 scopes and the catalog

    @property
    def hidden(self) -> str:
        return f"{self.p1}/app"

    @property
    def missing(self) -> list[str]:
        return [f"{self.p1}/nope", f"{self.ghost}/app"]


def _build_world(client: httpx.Client, admin: tuple[str, str]) -> World:
    api = Api(client, admin)
    p1, p2 = api.project(), api.project()
    bob = api.user()
    api.member(p2, "admin", user=bob[0])
    as_admin = OCIClient(client, admin[1], username=admin[0])
    blob = as_admin.push_blob(f"{p1}/app", b"p1 layer " + uuid.uuid4().bytes)
    as_admin.push_image(f"{p1}/app", "latest", layers=[])
    as_admin.push_image(f"{p2}/app", "latest", layers=[])
    ghost = unique_project()
    scopes = [
        f"repository:{name}:pull,push,delete"
        for name in (f"{p1}/app", f"{p1}/nope", f"{ghost}/app")
    ]
    response = client.get(
        "/auth/token", params={"scope": [*scopes, "registry:catalog:*"]}, auth=bob
    )
    assert response.status_code == 200, response.text
    token = str(response.json()["token"])
    assert claims(token)["access"] == []  # bob holds nothing in p1 (nor in ghost)
    return World(client, api, bob, p1, p2, ghost, blob, token)


@pytest.fixture(scope="module")
def world(oci: OCIClient) -> World:
    return _build_world(oci.client, (oci.username, oci.password))


def _callers(world: World) -> dict[str, dict[str, str]]:
    return {"anonymous": {}, "bob": {"Authorization": f"Bearer {world.bob_token}"}}


def observed(response: httpx.Response, name: str) -> tuple[Any, ...]:
    """What a client sees, with the name it asked for replaced by a placeholder."""
    headers = sorted(
        (key.lower(), "" if key.lower() in VOLATILE else value.replace(name, "<name>"))
        for key, value in response.headers.items()
    )
    return response.status_code, headers, response.text.replace(name, "<name>")


def _endpoints(world: World) -> list[tuple[str, str]]:
    return [
        (method, suffix)
        for suffix in ("tags/list", "manifests/latest", f"blobs/{world.blob}")
        for method in ("GET", "HEAD")
    ]


@pytest.mark.parametrize("caller", ["anonymous", "bob"])
def test_hidden_and_missing_repositories_answer_alike(world: World, caller: str) -> None:
    headers = _callers(world)[caller]
    for method, suffix in _endpoints(world):
        seen = world.client.request(method, f"/v2/{world.hidden}/{suffix}", headers=headers)
        assert seen.status_code == 401, (method, suffix, seen.text)
        if method == "GET":
            assert [e["code"] for e in seen.json()["errors"]] == ["UNAUTHORIZED"]
        for missing in world.missing:
            absent = world.client.request(method, f"/v2/{missing}/{suffix}", headers=headers)
            assert observed(seen, world.hidden) == observed(absent, missing), (method, suffix)


@pytest.mark.parametrize("caller", ["anonymous", "bob"])
def test_hidden_and_missing_projects_answer_alike_in_the_management_api(
    world: World, caller: str
) -> None:
    auth = None if caller == "anonymous" else world.bob
    seen = world.client.get(f"/api/v1/projects/{world.p1}", auth=auth)
    absent = world.client.get(f"/api/v1/projects/{world.ghost}", auth=auth)
    assert seen.status_code == 404, seen.text
    assert seen.headers["content-type"].startswith("application/problem+json")
    assert seen.json()["title"] == absent.json()["title"]
    assert observed(seen, world.p1) == observed(absent, world.ghost)
    own = world.client.get(f"/api/v1/projects/{world.p2}", auth=world.bob)
    assert own.status_code == 200  # positive control


@contextmanager
def statements() -> Iterator[list[str]]:
    """The SQL statements requests run (background writers and reloads aside)."""
    seen: list[str] = []
    # NOTE: the audit writer thread and key reloads run on their own schedule.
    noise = ("audit", "signing_key")

    def record(*args: Any) -> None:
        statement = str(args[2])
        # NOTE: so do the audit writer, the webhook pull-subscriber refresh and the trust
        # policies' reload (started by a request's end once they are stale), each in a
        # thread of its own.
        if threading.current_thread().name in ("audit-writer", REFRESH_THREAD, RELOAD_THREAD):
            return
        if not any(word in statement for word in noise):
            seen.append(statement)

    event.listen(Engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(Engine, "before_cursor_execute", record)


def _statements_of(call: Callable[[], httpx.Response]) -> list[str]:
    call()  # warm caches (verified tokens, prepared statements) for both alike
    with statements() as seen:
        call()
    return sorted(seen)


def _requests(world: World) -> list[tuple[str, Callable[[str], httpx.Response]]]:
    bob = _callers(world)["bob"]
    return [
        ("anonymous tags", lambda r: world.client.get(f"/v2/{r}/tags/list")),
        ("bob manifest", lambda r: world.client.get(f"/v2/{r}/manifests/latest", headers=bob)),
        ("anonymous blob", lambda r: world.client.head(f"/v2/{r}/blobs/{world.blob}")),
    ]


def _project(world: World, name: str) -> httpx.Response:
    return world.client.get(f"/api/v1/projects/{name}", auth=world.bob)


def test_hidden_and_missing_run_the_same_database_statements(world: World) -> None:
    for label, call in _requests(world):
        hidden = _statements_of(partial(call, world.hidden))
        for missing in world.missing:
            assert hidden == _statements_of(partial(call, missing)), label
    hidden_project = _statements_of(partial(_project, world, world.p1))
    assert hidden_project == _statements_of(partial(_project, world, world.ghost))


def _timings(call: Callable[[], httpx.Response]) -> list[float]:
    samples = []
    for _ in range(SAMPLES):
        started = time.perf_counter()
        call()
        samples.append(time.perf_counter() - started)
    return samples


def test_latency_of_hidden_and_missing(world: World, record_property: Any) -> None:
    """Reports the median difference; the same-statements test is the assertion."""
    bob = _callers(world)["bob"]
    report = []
    for suffix in ("tags/list", "manifests/latest"):
        get = partial(world.client.get, headers=bob)
        hidden = _timings(partial(get, f"/v2/{world.hidden}/{suffix}"))
        missing = _timings(partial(get, f"/v2/{world.p1}/nope/{suffix}"))
        delta = statistics.median(hidden) - statistics.median(missing)
        report.append(f"{suffix}: median hidden - missing = {delta * 1e6:+.0f} us")
        assert len(hidden) == len(missing) == SAMPLES
    print("\n".join(report))
    record_property("median_differences", "; ".join(report))


def catalog_variants() -> list[str]:
    return [
        "/v2/_catalog",
        "/v2/_catalog/",
        "//v2//_catalog",
        "/v2/%5Fcatalog",
        "/v2/%5fcatalog",
        "/V2/_catalog",
        "/v2/_CATALOG",
        "/v2/./_catalog",
        "/v2/_catalog.",
        "/v2/_catalog?n=10000",
    ]


def repository_variants(world: World) -> list[str]:
    p1, p2 = world.p1, world.p2
    return [
        f"/v2/{p2}/../{p1}/app/tags/list",
        f"/v2/{p2}/app/../../{p1}/app/tags/list",
        f"/v2/{p1}%2fapp/tags/list",
        f"/v2/{p1}%2Fapp/tags/list",
        f"/v2/{p1}%252fapp/tags/list",
        f"/v2/{p1}/./app/tags/list",
        f"/v2/{p1}/app/./tags/list",
        f"/v2/{p1}/app/tags/list/",
        f"/v2/{p1}//app/tags/list",
        f"/v2/{p1}/app./tags/list",
        f"/v2/{p1}/app/tags/list.",
        f"/v2/{p1}./app/tags/list",
        f"/v2/{p1}/%2e/app/tags/list",
        f"/v2/{p2}/%2e%2e/{p1}/app/tags/list",
        f"/v2/{p1.upper()}/app/tags/list",
        f"/v2/{p1}/app/manifests/latest/",
        f"/v2/{p1}/app/blobs/{world.blob}/",
    ]


def _assert_nothing_of_p1(world: World, response: httpx.Response | Raw, who: str) -> None:
    status, body = response.status_code, response.text
    if who == "anonymous":
        assert status != 200, body
    if status == 200:
        assert world.hidden not in body, body
        assert '"tags"' not in body, body
    assert world.p1 not in _location(response), body


def _location(response: httpx.Response | Raw) -> str:
    return str(response.headers.get("location", ""))


def test_catalog_and_path_variants_in_process(world: World) -> None:
    for who, headers in _callers(world).items():
        for path in catalog_variants() + repository_variants(world):
            response = world.client.get(path, headers=headers)
            _assert_nothing_of_p1(world, response, who)


def _readable_by_bob(world: World, names: list[str]) -> set[str]:
    response = world.client.get(
        "/auth/token", params={"scope": [f"repository:{n}:pull" for n in names]}, auth=world.bob
    )
    assert response.status_code == 200, response.text
    return {entry["name"] for entry in claims(response.json()["token"])["access"]}


def test_catalog_lists_only_what_the_caller_may_read(world: World, oci: OCIClient) -> None:
    bob = _callers(world)["bob"]
    listed = world.client.get("/v2/_catalog?n=10000", headers=bob)
    assert listed.status_code == 200
    names = listed.json()["repositories"]
    assert f"{world.p2}/app" in names  # positive control: bob's own repository
    assert world.hidden not in names
    assert set(names) <= _readable_by_bob(world, names)
    anonymous = world.client.get("/v2/_catalog")
    assert anonymous.status_code == 401
    assert 'scope="registry:catalog:*"' in anonymous.headers["www-authenticate"]
    admin = oci.client.get(
        "/v2/_catalog?n=10000",
        headers={"Authorization": f"Bearer {oci.token('registry:catalog:*')}"},
    )
    assert world.hidden in admin.json()["repositories"]  # positive control


# --- against a real ``moorage api`` process (its ASGI server parses the raw path) ---


@dataclass
class Raw:
    """A response read off a raw socket."""

    status_code: int
    headers: dict[str, str]
    text: str


def raw_get(server: MoorageServer, path: str, headers: dict[str, str]) -> Raw:
    """``GET`` with ``path`` sent byte for byte (http.client does not normalise it)."""
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    try:
        connection.putrequest("GET", path, skip_accept_encoding=True)
        for key, value in headers.items():
            connection.putheader(key, value)
        connection.endheaders()
        response = connection.getresponse()
        body = response.read().decode("utf-8", "replace")
        return Raw(response.status, {k.lower(): v for k, v in response.getheaders()}, body)
    finally:
        connection.close()


@pytest.fixture(scope="module")
def served_world(moorage_sqlite_fs: MoorageServer) -> Iterator[tuple[MoorageServer, World]]:
    server = moorage_sqlite_fs
    with httpx.Client(base_url=server.url, timeout=30) as client:
        yield server, _build_world(client, (server.admin_username, server.admin_password))


@pytest.mark.integration
def test_catalog_and_path_variants_against_the_server(
    served_world: tuple[MoorageServer, World],
) -> None:
    server, world = served_world
    for who, headers in _callers(world).items():
        for path in catalog_variants() + repository_variants(world):
            _assert_nothing_of_p1(world, raw_get(server, path, headers), who)
    bob = _callers(world)["bob"]
    listed = raw_get(server, "/v2/_catalog", bob)
    assert listed.status_code == 200
    assert world.hidden not in listed.text
    assert f"{world.p2}/app" in listed.text  # positive control


@pytest.mark.integration
def test_hidden_and_missing_answer_alike_against_the_server(
    served_world: tuple[MoorageServer, World],
) -> None:
    server, world = served_world
    for headers in _callers(world).values():
        for suffix in ("tags/list", "manifests/latest", f"blobs/{world.blob}"):
            seen = raw_get(server, f"/v2/{world.hidden}/{suffix}", headers)
            absent = raw_get(server, f"/v2/{world.p1}/nope/{suffix}", headers)
            assert seen.status_code == 401, seen.text
            assert _raw_observed(seen, world.hidden) == _raw_observed(absent, f"{world.p1}/nope")
    encoded = raw_get(server, f"/v2/{world.p1}%2fnope/tags/list", _callers(world)["bob"])
    plain = raw_get(server, f"/v2/{world.p1}%2fapp/tags/list", _callers(world)["bob"])
    assert plain.status_code == encoded.status_code == 401


def _raw_observed(response: Raw, name: str) -> tuple[Any, ...]:
    headers = sorted(
        (key, "" if key in VOLATILE else value.replace(name, "<name>"))
        for key, value in response.headers.items()
    )
    return response.status_code, headers, response.text.replace(name, "<name>")
