"""Trusted issuers with a loopback issuer minting Kubernetes service-account tokens."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.api.identity_helpers import Api, granted
from tests.api.oci import OCIClient
from tests.services.issuer import LoopbackIssuer, start_issuer


@pytest.fixture(scope="module")
def issuer() -> Iterator[LoopbackIssuer]:
    server = start_issuer()
    yield server
    server.stop()


@pytest.fixture
def api(oci: OCIClient) -> Api:
    return Api(oci.client, (oci.username, oci.password))


def _register(api: Api, issuer: LoopbackIssuer, project: str, **extra: object) -> int:
    response = api.client.post(
        "/api/v1/trusted-issuers",
        json={
            "issuer": issuer.url,
            "audience": "moorage",
            "subject_pattern": "system:serviceaccount:ci:*",
            "permissions": [{"repository": f"{project}/*", "actions": ["pull", "push"]}],
            **extra,
        },
        auth=api.admin,
    )
    assert response.status_code in (201, 409), response.text
    listed = api.client.get("/api/v1/trusted-issuers", auth=api.admin).json()["items"]
    return int(next(i["id"] for i in listed if i["issuer"] == issuer.url))


def test_workload_token_as_password(api: Api, issuer: LoopbackIssuer) -> None:
    project = api.project()
    issuer_id = _register(api, issuer, project, jwks_url=issuer.jwks_url)
    try:
        token = issuer.mint("ci", "builder", "moorage")
        assert granted(api.client, ("k8s", token), f"{project}/app") == {"pull", "push"}
        assert granted(api.client, ("k8s", token), "otherproject/app") == set()
        for bad in (
            issuer.mint("ci", "builder", "someone-else"),
            issuer.mint("prod", "builder", "moorage"),
            issuer.mint("ci", "builder", "moorage", ttl=-120),
        ):
            assert api.client.get("/auth/token", auth=("k8s", bad)).status_code == 401
        bearer = {"Authorization": f"Bearer {token}"}
        assert api.client.get("/api/v1/users", headers=bearer).status_code == 403
        user = api.user()
        assert api.client.get("/api/v1/trusted-issuers", auth=user).status_code == 403
    finally:
        api.client.delete(f"/api/v1/trusted-issuers/{issuer_id}", auth=api.admin)
    token = issuer.mint("ci", "builder", "moorage")
    assert api.client.get("/auth/token", auth=("k8s", token)).status_code == 401


def test_issuer_by_discovery_url(api: Api, issuer: LoopbackIssuer) -> None:
    project = api.project()
    issuer_id = _register(api, issuer, project, discovery_url=issuer.discovery_url)
    try:
        token = issuer.mint("ci", "deployer", "moorage")
        assert granted(api.client, ("k8s", token), f"{project}/svc") == {"pull", "push"}
    finally:
        api.client.delete(f"/api/v1/trusted-issuers/{issuer_id}", auth=api.admin)
