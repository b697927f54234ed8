"""Keycloak identities against a real ``moorage api`` process (granian, several workers).

Revocation (a user disabled in Keycloak, a removed member, a deleted robot, a revoked
personal access token) must refuse new registry tokens on every worker at once, however
warm that worker's caches are; registry tokens are short-lived and an expired one cannot
push. Keycloak group roles, a Keycloak service account and a Keycloak token presented to
a trusted issuer drive crane through exactly what their roles allow.
"""

from __future__ import annotations

import base64
import json
import secrets
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from core.access import Scope
from core.tokens import SigningKey, TokenService
from tests.api.identity_helpers import claims
from tests.clients.commands import make_client_home, run
from tests.clients.images import build_image
from tests.identity.conftest import API_WORKERS
from tests.identity.test_keycloak import CI_CLIENT, realm_admin, user_token
from tests.services.keycloak import Keycloak
from tests.services.moorage import MoorageServer
from tests.services.sockets import Answer, ask_every_worker, worker_pids

pytestmark = pytest.mark.xdist_group("keycloak")

DEVELOPERS = "/moorage/kc-team/developer"
PUSH = "repository:{}:pull,push"
#: The lifetime of a registry token may not exceed this, nor the clock-skew allowance 60 s.
MAX_TOKEN_SECONDS, MAX_SKEW_SECONDS = 300, 60


def basic(username: str, password: str) -> dict[str, str]:
    value = base64.b64encode(f"{username}:{password}".encode()).decode()
    return {"Authorization": f"Basic {value}"}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def on_every_worker(
    server: MoorageServer, method: str, path: str, headers: dict[str, str]
) -> list[Answer]:
    """The answers to one request repeated (bounded) until every worker has answered it."""
    answers = ask_every_worker(server.pid, server.port, method, path, headers)
    workers = worker_pids(server.pid, server.port)
    assert len(workers) == API_WORKERS
    assert answers.keys() == workers, f"not every worker answered: {answers.keys()} {workers}"
    return [answer for found in answers.values() for answer in found]


def token_statuses(server: MoorageServer, headers: dict[str, str], scope: str) -> set[int]:
    """The statuses of ``GET /auth/token`` with ``headers`` on every worker."""
    path = f"/auth/token?service=moorage&scope={scope}"
    return {answer.status for answer in on_every_worker(server, "GET", path, headers)}


def granted_everywhere(server: MoorageServer, headers: dict[str, str], repo: str) -> set[str]:
    """The actions on ``repo`` every worker grants (asserting that all of them agree)."""
    path = f"/auth/token?service=moorage&scope=repository:{repo}:pull,push,delete"
    verdicts: set[frozenset[str]] = set()
    for answer in on_every_worker(server, "GET", path, headers):
        assert answer.status == 200, answer.body
        access = claims(json.loads(answer.body)["token"])["access"]
        verdicts.add(frozenset(a for e in access if e["name"] == repo for a in e["actions"]))
    assert len(verdicts) == 1, f"workers disagree: {verdicts}"
    return set(verdicts.pop())


@contextmanager
def keycloak_user(keycloak: Keycloak, groups: list[str]) -> Iterator[tuple[str, str, str]]:
    """A fresh Keycloak user ``(username, password, id)`` in ``groups``; deleted afterwards."""
    admin = realm_admin(keycloak)
    name, password = f"alice-{secrets.token_hex(4)}", secrets.token_urlsafe(12)
    user_id = admin.create_user(
        {
            "username": name,
            "enabled": True,
            "email": f"{name}@moorage.test",
            "emailVerified": True,
            "firstName": "Alice",
            "lastName": "Process",
            "groups": groups,
            "credentials": [{"type": "password", "value": password, "temporary": False}],
        }
    )
    try:
        yield name, password, user_id
    finally:
        admin.delete_user(user_id)


@pytest.fixture(scope="module")
def kc_api(kc_process: MoorageServer) -> Iterator[httpx.Client]:
    """The process's management API as its administrator, with project ``kc-team``."""
    auth = (kc_process.admin_username, kc_process.admin_password)
    with httpx.Client(base_url=kc_process.url, auth=auth, timeout=30.0) as client:
        created = client.post("/api/v1/projects", json={"name": "kc-team"})
        assert created.status_code == 201, created.text
        yield client


def new_project(api: httpx.Client, name: str | None = None) -> str:
    name = name or f"p{secrets.token_hex(4)}"
    created = api.post("/api/v1/projects", json={"name": name})
    assert created.status_code == 201, created.text
    return name


def add_member(api: httpx.Client, project: str, user: str, role: str) -> int:
    added = api.post(f"/api/v1/projects/{project}/members", json={"user": user, "role": role})
    assert added.status_code == 201, added.text
    return int(added.json()["id"])


def personal_token(server: MoorageServer, kc_token: str) -> tuple[str, int]:
    created = httpx.post(
        f"{server.url}/api/v1/users/me/tokens",
        json={"name": "laptop", "scopes": ["pull", "push"]},
        headers=bearer(kc_token),
        timeout=30.0,
    )
    assert created.status_code == 201, created.text
    return str(created.json()["token"]), int(created.json()["id"])


def installation_tokens(server: MoorageServer) -> TokenService:
    """A token service holding the installation's signing keys, read from its database."""
    database = Path(server.env["MOORAGE_DATA_DIR"]) / "moorage.db"
    with sqlite3.connect(f"file:{database}?mode=ro", uri=True) as connection:
        rows = connection.execute(
            "SELECT kid, private_pem FROM signing_key ORDER BY created_at"
        ).fetchall()
    keys = [SigningKey.from_pem(kid, pem) for kid, pem in rows]
    return TokenService(keys, issuer="moorage", audience="moorage", ttl=MAX_TOKEN_SECONDS)


def push_statuses(server: MoorageServer, token: str, repo: str) -> list[Answer]:
    """Start a blob upload (the first request of every push) with ``token`` on every worker."""
    return on_every_worker(server, "POST", f"/v2/{repo}/blobs/uploads/", bearer(token))


def test_process_runs_several_workers(kc_process: MoorageServer) -> None:
    assert len(worker_pids(kc_process.pid, kc_process.port)) == API_WORKERS
    assert {a.status for a in on_every_worker(kc_process, "GET", "/healthz", {})} == {200}


def test_revocation_refuses_new_tokens_on_every_worker(
    kc_process: MoorageServer, kc_api: httpx.Client, keycloak: Keycloak
) -> None:
    project = new_project(kc_api, "p1")
    scope = PUSH.format(f"{project}/app")
    with keycloak_user(keycloak, []) as (alice, password, user_id):
        member = add_member(kc_api, project, alice, "developer")
        kc_token = user_token(keycloak, alice, password)
        pat, _ = personal_token(kc_process, kc_token)
        robot = kc_api.post(
            f"/api/v1/projects/{project}/robots",
            json={"name": "ci", "permissions": [{"repository": "*", "actions": ["pull", "push"]}]},
        ).json()
        credentials = {
            "keycloak token": basic(alice, kc_token),
            "personal access token": basic(alice, pat),
            "robot": basic(robot["name"], robot["secret"]),
        }
        for headers in credentials.values():
            assert granted_everywhere(kc_process, headers, f"{project}/app") == {"pull", "push"}
        answer = httpx.get(
            f"{kc_process.url}/auth/token",
            params={"service": "moorage", "scope": scope},
            headers=credentials["keycloak token"],
        )
        issued = claims(answer.json()["token"])
        assert 0 < issued["exp"] - issued["iat"] <= MAX_TOKEN_SECONDS

        realm_admin(keycloak).update_user(user_id, {"enabled": False})
        removed = kc_api.delete(f"/api/v1/projects/{project}/members/{member}")
        deleted = kc_api.delete(f"/api/v1/projects/{project}/robots/{robot['id']}")
        assert (removed.status_code, deleted.status_code) == (204, 204)

        for name, headers in credentials.items():
            assert token_statuses(kc_process, headers, scope) == {401}, name


def test_expired_registry_token_cannot_push(
    kc_process: MoorageServer, kc_api: httpx.Client
) -> None:
    project = new_project(kc_api)
    repo = f"{project}/app"
    tokens = installation_tokens(kc_process)
    access = [Scope("repository", repo, frozenset({"pull", "push"}))]
    now = datetime.now(UTC)
    fresh = tokens.issue("alice", access, False, now).token
    assert {a.status for a in push_statuses(kc_process, fresh, repo)} == {202}
    issued_at = now - timedelta(seconds=MAX_TOKEN_SECONDS + MAX_SKEW_SECONDS + 1)
    expired = tokens.issue("alice", access, False, issued_at).token
    assert claims(expired)["exp"] == int(now.timestamp()) - MAX_SKEW_SECONDS - 1
    for answer in push_statuses(kc_process, expired, repo):
        assert answer.status == 401
        assert [e["code"] for e in json.loads(answer.body)["errors"]] == ["UNAUTHORIZED"]


def test_removed_members_get_no_new_rights_on_any_worker(
    kc_process: MoorageServer, kc_api: httpx.Client, keycloak: Keycloak
) -> None:
    project = new_project(kc_api)
    with keycloak_user(keycloak, [DEVELOPERS]) as (name, password, user_id):
        member = add_member(kc_api, project, name, "developer")
        kc_token = user_token(keycloak, name, password)
        pat, _ = personal_token(kc_process, kc_token)
        credentials = [basic(name, kc_token), basic(name, pat)]
        for headers in credentials:
            for repo in (f"{project}/app", "kc-team/app"):
                assert granted_everywhere(kc_process, headers, repo) == {"pull", "push"}

        admin = realm_admin(keycloak)
        admin.group_user_remove(user_id, admin.get_group_by_path(DEVELOPERS)["id"])
        removed = kc_api.delete(f"/api/v1/projects/{project}/members/{member}")
        assert removed.status_code == 204

        for headers in credentials:
            for repo in (f"{project}/app", "kc-team/app"):
                assert granted_everywhere(kc_process, headers, repo) == set(), repo


def test_revoked_personal_token_fails_on_every_worker(
    kc_process: MoorageServer, kc_api: httpx.Client, keycloak: Keycloak
) -> None:
    scope = PUSH.format("kc-team/app")
    with keycloak_user(keycloak, [DEVELOPERS]) as (name, password, _):
        kc_token = user_token(keycloak, name, password)
        pat, pat_id = personal_token(kc_process, kc_token)
        assert granted_everywhere(kc_process, basic(name, pat), "kc-team/app") == {"pull", "push"}
        revoked = httpx.delete(
            f"{kc_process.url}/api/v1/users/me/tokens/{pat_id}", headers=bearer(kc_token)
        )
        assert revoked.status_code == 204, revoked.text
        assert token_statuses(kc_process, basic(name, pat), scope) == {401}
        assert token_statuses(kc_process, basic(name, kc_token), scope) == {200}


# --- AZ-11: Keycloak identities drive crane as their roles allow ---------------------------

EXPECTED = {
    "guest group": {"pull"},
    "developer group": {"pull", "push"},
    "maintainer group": {"pull", "push", "delete"},
    "service account": {"pull", "push"},
    "trusted issuer": {"pull", "push"},
}
REALM_USERS = {
    "guest group": ("bob", "bob-password"),
    "developer group": ("dave", "dave-password"),
    "maintainer group": ("carol", "carol-password"),
}


def ci_token(keycloak: Keycloak) -> str:
    answer = httpx.post(
        keycloak.token_endpoint,
        data={
            "grant_type": "client_credentials",
            "client_id": CI_CLIENT[0],
            "client_secret": CI_CLIENT[1],
        },
    )
    assert answer.status_code == 200, answer.text
    return str(answer.json()["access_token"])


@pytest.fixture(scope="module")
def issuer_api(plain_process: MoorageServer, keycloak: Keycloak) -> Iterator[httpx.Client]:
    """A process without OIDC that trusts Keycloak's ``moorage-ci`` tokens for ``ci/*``."""
    auth = (plain_process.admin_username, plain_process.admin_password)
    with httpx.Client(base_url=plain_process.url, auth=auth, timeout=30.0) as client:
        new_project(client, "ci")
        registered = client.post(
            "/api/v1/trusted-issuers",
            json={
                "issuer": keycloak.issuer,
                "discovery_url": f"{keycloak.issuer}/.well-known/openid-configuration",
                "audience": "moorage",
                "subject_claim": "azp",
                "subject_pattern": CI_CLIENT[0],
                "permissions": [{"repository": "ci/*", "actions": ["pull", "push"]}],
            },
        )
        assert registered.status_code == 201, registered.text
        yield client


class Crane:
    """crane with a private DOCKER_CONFIG holding one registry login."""

    def __init__(self, executable: str, home: Path, host: str, login: tuple[str, str]) -> None:
        client_home = make_client_home(home)
        auth = base64.b64encode(f"{login[0]}:{login[1]}".encode()).decode()
        config = {"auths": {host: {"auth": auth}}}
        (client_home.docker_config / "config.json").write_text(json.dumps(config))
        self.executable, self.env, self.host = executable, client_home.env(), host

    def attempt(self, *args: str) -> tuple[bool, str]:
        result = run([self.executable, "--insecure", *args], env=self.env, check=False)
        return result.returncode == 0, result.stdout + result.stderr


def _identity(who: str, keycloak: Keycloak) -> tuple[str, str]:
    if who == "service account":
        return CI_CLIENT
    if who == "trusted issuer":
        return "ci", ci_token(keycloak)
    username, password = REALM_USERS[who]
    return username, user_token(keycloak, username, password)


def _checked(allowed: bool, outcome: tuple[bool, str], what: str) -> None:
    succeeded, output = outcome
    assert succeeded == allowed, f"{what}: {output}"
    if not allowed:
        assert "UNAUTHORIZED" in output or "DENIED" in output, f"{what}: {output}"


@pytest.mark.parametrize("who", sorted(EXPECTED))
def test_keycloak_identities_drive_crane_by_role(
    who: str, request: pytest.FixtureRequest, keycloak: Keycloak, crane: str, tmp_path: Path
) -> None:
    trusted = who == "trusted issuer"
    server: MoorageServer = request.getfixturevalue("plain_process" if trusted else "kc_process")
    name = f"{'ci' if trusted else 'kc-team'}/{who.replace(' ', '-')}-{secrets.token_hex(3)}"
    repo = f"{server.host_port}/{name}"
    image = build_image(tmp_path / "layout", tag="v1")
    request.getfixturevalue("issuer_api" if trusted else "kc_api")
    admin_login = (server.admin_username, server.admin_password)
    admin = Crane(crane, tmp_path / "admin", server.host_port, admin_login)
    _checked(True, admin.attempt("push", str(image.layout), f"{repo}:seed"), "seed")

    client = Crane(crane, tmp_path / "who", server.host_port, _identity(who, keycloak))
    allowed = EXPECTED[who]
    pulled = client.attempt("pull", "--format=oci", f"{repo}:seed", str(tmp_path / "pulled"))
    _checked("pull" in allowed, pulled, "pull")
    listed = client.attempt("ls", repo)
    _checked("pull" in allowed, listed, "ls")
    assert "seed" in listed[1].split()
    catalog = client.attempt("catalog", server.host_port)
    _checked(True, catalog, "catalog")
    assert name in catalog[1].split()
    _checked("push" in allowed, client.attempt("push", str(image.layout), f"{repo}:mine"), "push")
    deleted = client.attempt("delete", f"{repo}@{image.manifest_digest}")
    _checked("delete" in allowed, deleted, "delete")
