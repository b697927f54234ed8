"""Token authentication, challenges, anonymous pulls and the projects API."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from pathlib import Path

import jwt
import pytest
from litestar.testing import TestClient
from pydantic import SecretStr

from api.app import create_app
from cli.startup import prepare_installation
from core.settings import AuthSettings, Settings
from core.tokens import ALGORITHM, SigningKey
from tests.api.oci import OCIClient, unique_project


def _claims(token: str) -> dict[str, object]:
    payload = token.split(".")[1]
    return dict(json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))))


def test_ping_challenges_without_a_token(oci: OCIClient) -> None:
    response = oci.client.get("/v2/")
    assert response.status_code == 401
    challenge = response.headers["www-authenticate"]
    assert challenge.startswith('Bearer realm="http://testserver.local/auth/token"')
    assert 'service="moorage"' in challenge
    assert response.json()["errors"][0]["code"] == "UNAUTHORIZED"
    token = oci.token()
    assert oci.client.get("/v2/", headers={"Authorization": f"Bearer {token}"}).status_code == 200


def test_v2_answers_name_the_api_version_on_challenges_and_errors_too(
    oci: OCIClient, repo: str
) -> None:
    """Distribution's client library (Kraken's registry backend) takes a registry for v2
    only when its ``GET /v2/`` challenge carries the version header."""
    version = "registry/2.0"
    assert oci.client.get("/v2/").headers.get("docker-distribution-api-version") == version
    pushed = oci.client.post(f"/v2/{repo}/blobs/uploads/")
    assert pushed.status_code == 401
    assert pushed.headers.get("docker-distribution-api-version") == version
    token = oci.token(f"repository:{repo}:pull")
    missing = oci.client.head(
        f"/v2/{repo}/blobs/sha256:{'0' * 64}", headers={"Authorization": f"Bearer {token}"}
    )
    assert missing.status_code == 404
    assert missing.headers.get("docker-distribution-api-version") == version
    assert (
        oci.client.get("/v2/", headers={"Authorization": f"Bearer {token}"}).headers.get(
            "docker-distribution-api-version"
        )
        == version
    )


def test_wrong_password_gets_no_token(oci: OCIClient) -> None:
    response = oci.client.get("/auth/token", auth=("admin", "wrong"))
    assert response.status_code == 401
    unknown = oci.client.get("/auth/token", auth=("nobody", "wrong"))
    assert unknown.status_code == 401


def test_token_is_short_lived_and_scoped(oci: OCIClient, repo: str) -> None:
    claims = _claims(oci.token(f"repository:{repo}:pull,push", "repository:other/x:bogus"))
    assert claims["aud"] == "moorage"
    assert int(claims["exp"]) - int(claims["iat"]) <= 300  # type: ignore[call-overload]
    assert claims["access"] == [{"type": "repository", "name": repo, "actions": ["pull", "push"]}]


def test_push_without_token_is_challenged_with_scope(oci: OCIClient, repo: str) -> None:
    response = oci.client.post(f"/v2/{repo}/blobs/uploads/")
    assert response.status_code == 401
    assert f'scope="repository:{repo}:push"' in response.headers["www-authenticate"]


def test_token_for_other_repository_is_insufficient(oci: OCIClient, repo: str) -> None:
    oci.push_image(repo, "t")
    token = oci.token("repository:elsewhere/app:pull")
    response = oci.client.get(
        f"/v2/{repo}/manifests/t", headers={"Authorization": f"Bearer {token}"}
    )
    assert response.status_code == 401
    assert 'error="insufficient_scope"' in response.headers["www-authenticate"]


def _signed(oci: OCIClient, claims: dict[str, object], *, foreign_key: bool = False) -> str:
    """``claims`` signed as the registry signs (ES256, its current ``kid``).

    With ``foreign_key`` the signature comes from a key the registry never had.
    """
    assert isinstance(oci.client, TestClient)
    tokens = oci.client.app.state["registry"].auth.tokens
    key = tokens.signing_key(datetime.now(UTC))
    private = SigningKey.generate().private_key if foreign_key else key.private_key
    return jwt.encode(claims, private, algorithm=ALGORITHM, headers={"kid": key.kid, "typ": "JWT"})


def _manifest_status(oci: OCIClient, repo: str, token: str) -> int:
    headers = {"Authorization": f"Bearer {token}"}
    return oci.client.get(f"/v2/{repo}/manifests/t", headers=headers).status_code


def _pull_claims(oci: OCIClient, repo: str) -> dict[str, object]:
    """The claims of a pull token the registry issued for ``repo`` (valid as they are)."""
    return _claims(oci.token(f"repository:{repo}:pull"))


def test_token_signed_with_the_registry_key_is_accepted(oci: OCIClient, repo: str) -> None:
    """The baseline for the forgeries below: the same signing, claims left as issued."""
    oci.push_image(repo, "t")
    assert _manifest_status(oci, repo, _signed(oci, _pull_claims(oci, repo))) == 200


def test_forged_signature_is_rejected(oci: OCIClient, repo: str) -> None:
    oci.push_image(repo, "t")
    forged = _signed(oci, _pull_claims(oci, repo), foreign_key=True)
    assert _manifest_status(oci, repo, forged) == 401


@pytest.mark.parametrize(("claim", "value"), [("aud", "another-service"), ("iss", "another")])
def test_token_for_another_audience_or_issuer_is_rejected(
    oci: OCIClient, repo: str, claim: str, value: str
) -> None:
    oci.push_image(repo, "t")
    forged = _signed(oci, {**_pull_claims(oci, repo), claim: value})
    assert _manifest_status(oci, repo, forged) == 401


def test_expired_token_is_rejected(oci: OCIClient, repo: str) -> None:
    oci.push_image(repo, "t")
    now = int(datetime.now(UTC).timestamp())
    expired = {**_pull_claims(oci, repo), "iat": now - 600, "nbf": now - 600, "exp": now - 60}
    assert _manifest_status(oci, repo, _signed(oci, expired)) == 401


def test_anonymous_pull_of_public_project_only(oci: OCIClient) -> None:
    public, private = unique_project(), unique_project()
    for name, is_public in ((public, True), (private, False)):
        created = oci.client.post(
            "/api/v1/projects",
            json={"name": name, "public": is_public},
            auth=("admin", oci.password),
        )
        assert created.status_code == 201
        oci.push_image(f"{name}/app", "v1")
    anonymous = oci.token(
        f"repository:{public}/app:pull,push", f"repository:{private}/app:pull", anonymous=True
    )
    assert _claims(anonymous)["access"] == [
        {"type": "repository", "name": f"{public}/app", "actions": ["pull"]}
    ]
    headers = {"Authorization": f"Bearer {anonymous}"}
    assert oci.client.get(f"/v2/{public}/app/manifests/v1", headers=headers).status_code == 200
    assert oci.client.get(f"/v2/{public}/app/manifests/v1").status_code == 200
    assert oci.client.get(f"/v2/{private}/app/manifests/v1", headers=headers).status_code == 401
    assert oci.client.post(f"/v2/{public}/app/blobs/uploads/", headers=headers).status_code == 401


def test_catalog_hides_private_projects_from_anonymous(oci: OCIClient, repo: str) -> None:
    oci.push_image(repo, "t")
    anonymous = oci.token("registry:catalog:*", anonymous=True)
    listed = oci.client.get("/v2/_catalog", headers={"Authorization": f"Bearer {anonymous}"})
    assert repo not in listed.json()["repositories"]


def test_projects_api(oci: OCIClient) -> None:
    name = unique_project()
    admin = ("admin", oci.password)
    assert oci.client.post("/api/v1/projects", json={"name": name}).status_code == 401
    assert (
        oci.client.post("/api/v1/projects", json={"name": name}, auth=("admin", "bad")).status_code
        == 401
    )
    created = oci.client.post("/api/v1/projects", json={"name": name, "public": False}, auth=admin)
    assert created.status_code == 201
    assert created.json()["name"] == name
    duplicate = oci.client.post("/api/v1/projects", json={"name": name}, auth=admin)
    assert duplicate.status_code == 409
    assert duplicate.headers["content-type"].startswith("application/problem+json")
    invalid = oci.client.post("/api/v1/projects", json={"name": "Bad Name"}, auth=admin)
    assert invalid.status_code in (400, 422)
    assert oci.client.get(f"/api/v1/projects/{name}", auth=admin).json()["public"] is False
    oci.push_image(f"{name}/app", "v1")
    listed = oci.client.get("/api/v1/projects?limit=100", auth=admin).json()
    assert "items" in listed
    assert oci.client.delete(f"/api/v1/projects/{name}", auth=admin).status_code == 204
    assert oci.client.get(f"/api/v1/projects/{name}", auth=admin).status_code == 404
    gone = oci.request("GET", f"/v2/{name}/app/manifests/v1", f"{name}/app")
    assert gone.status_code == 404


def test_push_to_missing_project_refused_unless_created_on_push(tmp_path: Path) -> None:
    settings = Settings(
        data_dir=tmp_path,
        auth=AuthSettings(admin_password=SecretStr("pw"), create_project_on_push=False),
    )
    prepare_installation(settings)
    with TestClient(create_app(settings)) as client:
        strict = OCIClient(client, "pw")
        refused = strict.request("POST", "/v2/nowhere/app/blobs/uploads/", "nowhere/app")
        assert refused.status_code == 401
        created = client.post("/api/v1/projects", json={"name": "somewhere"}, auth=("admin", "pw"))
        assert created.status_code == 201
        allowed = strict.request("POST", "/v2/somewhere/app/blobs/uploads/", "somewhere/app")
        assert allowed.status_code == 202


def test_openapi_schema_is_served(oci: OCIClient) -> None:
    schema = oci.client.get("/api/v1/schema/openapi.json")
    assert schema.status_code == 200
    assert "/api/v1/projects" in schema.json()["paths"]
