"""Robot accounts, personal access tokens, login throttling and the token checks (TK-*)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import jwt
import pytest
import sqlalchemy
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from litestar.testing import TestClient
from pydantic import SecretStr

from api.app import create_app
from cli.startup import prepare_installation
from core.identity_settings import LoginLimitSettings
from core.settings import AuthSettings, Settings
from tests.api.identity_helpers import Api, claims, granted
from tests.api.oci import OCIClient


@pytest.fixture
def api(oci: OCIClient) -> Api:
    return Api(oci.client, (oci.username, oci.password))


def test_project_robot_lifecycle(api: Api, app_settings: Settings) -> None:
    project = api.project()
    name, secret, robot_id = api.robot(project, ["pull", "push"], repository="ci/*")
    assert name == f"robot${project}+{name.split('+')[1]}"
    assert granted(api.client, (name, secret), f"{project}/ci/app") == {"pull", "push"}
    assert granted(api.client, (name, secret), f"{project}/other") == set()
    listed = api.client.get(f"/api/v1/projects/{project}/robots", auth=api.admin).json()["items"]
    assert [r["secret"] for r in listed] == [None]
    engine = sqlalchemy.create_engine(app_settings.resolved_database_url)
    with engine.connect() as connection:
        stored = connection.execute(
            sqlalchemy.text("SELECT secret_hash FROM robot WHERE id = :id"), {"id": robot_id}
        ).scalar_one()
    engine.dispose()
    assert stored.startswith("$argon2id$")
    assert secret not in stored
    path = f"/api/v1/projects/{project}/robots/{robot_id}"
    rotated = api.client.patch(path, json={"rotate_secret": True}, auth=api.admin).json()
    assert api.client.get("/auth/token", auth=(name, secret)).status_code == 401
    new_secret = rotated["secret"]
    assert granted(api.client, (name, new_secret), f"{project}/ci/x") == {"pull", "push"}
    api.client.patch(path, json={"disabled": True}, auth=api.admin)
    assert api.client.get("/auth/token", auth=(name, new_secret)).status_code == 401
    api.client.patch(path, json={"disabled": False}, auth=api.admin)
    assert api.client.get("/auth/token", auth=(name, new_secret)).status_code == 200
    assert api.client.delete(path, auth=api.admin).status_code == 204
    assert api.client.get("/auth/token", auth=(name, new_secret)).status_code == 401


def test_expired_robot_is_refused(api: Api) -> None:
    project = api.project()
    response = api.client.post(
        f"/api/v1/projects/{project}/robots",
        json={
            "name": "short",
            "permissions": [{"repository": "*", "actions": ["pull"]}],
            "expires_at": (datetime.now(UTC) - timedelta(seconds=1)).isoformat(),
        },
        auth=api.admin,
    )
    body = response.json()
    assert api.client.get("/auth/token", auth=(body["name"], body["secret"])).status_code == 401


def test_robot_never_gets_more_than_its_creator_az07(api: Api) -> None:
    project = api.project()
    owner = api.user()
    api.member(project, "admin", user=owner[0])
    ok = api.client.post(
        f"/api/v1/projects/{project}/robots",
        json={"name": "ok", "permissions": [{"repository": "*", "actions": ["pull", "delete"]}]},
        auth=owner,
    )
    assert ok.status_code == 201
    robot = (ok.json()["name"], ok.json()["secret"])
    other = api.project()
    assert granted(api.client, robot, f"{other}/app") == set()
    by_robot = api.client.post(
        f"/api/v1/projects/{project}/robots",
        json={"name": "child", "permissions": [{"repository": "*", "actions": ["pull"]}]},
        auth=robot,
    )
    assert by_robot.status_code in (403, 404)
    system = api.client.post(
        "/api/v1/robots",
        json={
            "name": f"s{secrets.token_hex(3)}",
            "permissions": [{"repository": "*", "actions": ["pull"]}],
        },
        auth=owner,
    )
    assert system.status_code == 403


def test_robot_as_project_member_gets_the_role(api: Api) -> None:
    project, other = api.project(), api.project()
    name, secret, _ = api.robot(project, ["pull"])
    api.member(project, "maintainer", robot=name)
    assert granted(api.client, (name, secret), f"{project}/x") == {"pull", "push", "delete"}
    refused = api.client.post(
        f"/api/v1/projects/{other}/members", json={"robot": name, "role": "guest"}, auth=api.admin
    )
    assert refused.status_code == 422


def test_system_robot_spans_projects(api: Api) -> None:
    p1, p2 = api.project(), api.project()
    created = api.client.post(
        "/api/v1/robots",
        json={
            "name": f"s{secrets.token_hex(3)}",
            "permissions": [
                {"repository": f"{p1}/*", "actions": ["pull"]},
                {"repository": f"{p2}/app", "actions": ["push", "pull"]},
            ],
        },
        auth=api.admin,
    ).json()
    robot = (created["name"], created["secret"])
    assert granted(api.client, robot, f"{p1}/x") == {"pull"}
    assert granted(api.client, robot, f"{p2}/app") == {"pull", "push"}
    assert granted(api.client, robot, f"{p2}/other") == set()


def test_personal_access_tokens(api: Api) -> None:
    project = api.project()
    user = api.user()
    api.member(project, "developer", user=user[0])
    created = api.client.post(
        "/api/v1/users/me/tokens", json={"name": "ci", "scopes": ["pull"]}, auth=user
    )
    assert created.status_code == 201
    token, token_id = created.json()["token"], created.json()["id"]
    assert token.startswith("mrp_")
    assert granted(api.client, (user[0], token), f"{project}/app") == {"pull"}
    assert api.client.get("/auth/token", auth=("someone-else", token)).status_code == 401
    assert api.client.get("/api/v1/users/me/tokens", auth=(user[0], token)).status_code == 401
    listed = api.client.get("/api/v1/users/me/tokens", auth=user).json()["items"]
    assert [(t["name"], t["token"]) for t in listed] == [("ci", None)]
    assert api.client.delete(f"/api/v1/users/me/tokens/{token_id}", auth=user).status_code == 204
    assert api.client.get("/auth/token", auth=(user[0], token)).status_code == 401
    full = api.client.post(
        "/api/v1/users/me/tokens",
        json={"name": "all", "scopes": ["pull", "push", "api"]},
        auth=user,
    ).json()["token"]
    assert granted(api.client, (user[0], full), f"{project}/app") == {"pull", "push"}
    assert api.client.get(f"/api/v1/projects/{project}", auth=(user[0], full)).status_code == 200
    other = api.user()
    assert api.client.delete(f"/api/v1/users/me/tokens/{token_id}", auth=other).status_code == 404


def test_expired_token_is_refused(api: Api) -> None:
    user = api.user()
    past = (datetime.now(UTC) - timedelta(minutes=1)).isoformat()
    refused = api.client.post(
        "/api/v1/users/me/tokens",
        json={"name": "x", "scopes": ["pull"], "expires_at": past},
        auth=user,
    )
    assert refused.status_code == 422


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


def test_failed_logins_are_rate_limited(throttled: TestClient) -> None:  # type: ignore[type-arg]
    for _ in range(3):
        assert throttled.get("/auth/token", auth=("admin", "wrong")).status_code == 401
    limited = throttled.get("/auth/token", auth=("admin", "admin-password-1"))
    assert limited.status_code == 429
    assert 1 <= int(limited.headers["retry-after"]) <= 60
    api = throttled.get("/api/v1/users", auth=("admin", "wrong"))
    assert api.status_code == 429


def _tag_list(oci: OCIClient, repo: str, token: str) -> int:
    response = oci.client.get(f"/v2/{repo}/tags/list", headers={"Authorization": f"Bearer {token}"})
    return response.status_code


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _hs256(body: dict[str, object], key: bytes, kid: str) -> str:
    """An HS256 token keyed with our public key (the algorithm-confusion attack)."""
    head = _b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": kid}).encode())
    payload = _b64(json.dumps(body).encode())
    mac = hmac.new(key, f"{head}.{payload}".encode(), hashlib.sha256).digest()
    return f"{head}.{payload}.{_b64(mac)}"


def test_forged_tokens_are_refused_tk01(oci: OCIClient, repo: str) -> None:
    oci.push_image(repo, "v1")
    good = oci.token(f"repository:{repo}:pull")
    assert _tag_list(oci, repo, good) == 200
    body = claims(good)
    header = jwt.get_unverified_header(good)
    jwks = oci.client.get("/auth/jwks").json()["keys"][0]
    public = jwt.algorithms.ECAlgorithm.from_jwk(jwks)
    pem = public.public_bytes(  # type: ignore[union-attr]
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    foreign = ec.generate_private_key(ec.SECP256R1())
    forged = [
        jwt.encode(body, None, algorithm="none"),  # type: ignore[arg-type]
        _hs256(body, pem, header["kid"]),
        jwt.encode(body, foreign, algorithm="ES256", headers={"kid": header["kid"]}),
        jwt.encode(body, foreign, algorithm="ES256", headers={"kid": "../../etc/passwd"}),
        good[:-10],
    ]
    for token in forged:
        assert _tag_list(oci, repo, token) == 401


def test_claims_are_validated_tk02(oci: OCIClient, repo: str, app_settings: Settings) -> None:
    from core.services.auth import load_signing_keys
    from storage.db.engine import create_engines
    from storage.db.metadata import SqlMetadata

    oci.push_image(repo, "v1")
    key = load_signing_keys(SqlMetadata(create_engines(app_settings)))[-1]
    now = int(time.time())
    base = {
        "iss": "moorage",
        "sub": "admin",
        "aud": "moorage",
        "iat": now,
        "nbf": now - 5,
        "exp": now + 60,
        "access": [{"type": "repository", "name": repo, "actions": ["pull"]}],
    }

    def sign(**changes: object) -> str:
        payload = {k: v for k, v in {**base, **changes}.items() if v is not None}
        return jwt.encode(payload, key.private_key, algorithm="ES256", headers={"kid": key.kid})

    assert _tag_list(oci, repo, sign()) == 200
    for bad in (
        sign(iss="other"),
        sign(aud="other"),
        sign(aud=None),
        sign(exp=now - 120),
        sign(nbf=now + 600),
        sign(access=[{"type": "repository", "name": f"{repo}2", "actions": ["pull"]}]),
        sign(access=[{"type": "registry", "name": repo, "actions": ["pull"]}]),
        sign(access=[{"type": "repository", "name": "*", "actions": ["*"]}]),
    ):
        assert _tag_list(oci, repo, bad) == 401


def test_realm_ignores_forwarded_headers_tk06(tmp_path: Path) -> None:
    settings = Settings(
        data_dir=tmp_path,
        auth=AuthSettings(admin_password=SecretStr("admin-password-1")),
        public_url="https://reg.example",
    )
    prepare_installation(settings)
    with TestClient(create_app(settings)) as client:
        response = client.get(
            "/v2/",
            headers={
                "Host": "evil.test",
                "X-Forwarded-Host": "evil.test",
                "X-Forwarded-Proto": "http",
                "Forwarded": "host=evil.test;proto=http",
            },
        )
        challenge = response.headers["www-authenticate"]
        assert 'realm="https://reg.example/auth/token"' in challenge
        assert 'service="moorage"' in challenge
        for bad in (
            "https://evil.test",
            "//evil.test",
            "/\\evil.test",
            "https:evil.test",
            "/%2F%2Fevil.test",
        ):
            login = client.get("/auth/oidc/login", params={"redirect_url": bad})
            assert login.status_code == 400, bad


def test_fresh_installs_have_their_own_keys_tk05(tmp_path: Path) -> None:
    published = []
    for name in ("a", "b"):
        settings = Settings(
            data_dir=tmp_path / name,
            auth=AuthSettings(admin_password=SecretStr("admin-password-1")),
        )
        prepare_installation(settings)
        with TestClient(create_app(settings)) as client:
            (key,) = client.get("/auth/jwks").json()["keys"]
            published.append((key["x"], key["y"]))
    assert published[0] != published[1]


class _StaleFirstRead:
    """Metadata whose first key read sees the table as it was before another process
    inserted its first key (the start-up race of several API workers)."""

    def __init__(self, metadata: Any) -> None:
        self._metadata, self._stale = metadata, True

    def write(self) -> Any:
        return self._metadata.write()

    @contextmanager
    def read(self) -> Iterator[Any]:
        with self._metadata.read() as session:
            if self._stale:
                self._stale = False
                yield SimpleNamespace(signing_keys=SimpleNamespace(all=list))
            else:
                yield session


def test_processes_starting_together_sign_with_one_key(app_settings: Settings) -> None:
    """Two starting processes that both found no key end up with the same single key, so
    a token a worker of one issues verifies on a worker of the other from the start."""
    from core.ports import Metadata
    from core.services.auth import ensure_signing_key, load_signing_keys
    from core.tokens import TokenService
    from storage.db.engine import create_engines
    from storage.db.metadata import SqlMetadata

    before = load_signing_keys(SqlMetadata(create_engines(app_settings)))
    ensure_signing_key(cast("Metadata", _StaleFirstRead(SqlMetadata(create_engines(app_settings)))))
    first = load_signing_keys(SqlMetadata(create_engines(app_settings)))
    second = load_signing_keys(SqlMetadata(create_engines(app_settings)))
    assert [key.kid for key in first] == [key.kid for key in second] == [k.kid for k in before]
    assert second[0].public_jwk() == first[0].public_jwk() == before[0].public_jwk()
    services = [
        TokenService(keys, issuer="moorage", audience="moorage", ttl=300)
        for keys in (first, second)
    ]
    now = datetime.now(UTC)
    for issuer, verifier in (services, services[::-1]):
        assert verifier.verify(issuer.issue("w", [], False, now).token).subject == "w"
