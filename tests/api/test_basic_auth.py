"""HTTP Basic on ``/v2``: what ``curl -u robot:secret`` in a CI script does.

Users, robots and personal access tokens authenticate directly on the registry API with
the same authenticator, login limits, audit and grants as the token flow; clients that
send nothing still get the Bearer challenge; credentials that lack a right are told
which right is missing.
"""

from __future__ import annotations

import json
import secrets
from typing import Any

import httpx

from core.settings import Settings
from tests.api.identity_helpers import Api
from tests.api.oci import OCIClient, digest_of


def _api(oci: OCIClient) -> Api:
    return Api(oci.client, (oci.username, oci.password))


def _push(client: httpx.Client, auth: tuple[str, str], repo: str, tag: str) -> httpx.Response:
    """Push a one-layer image with Basic credentials only; the manifest PUT's response."""
    digests = []
    for data in (
        json.dumps({"architecture": "amd64", "os": "linux"}).encode(),
        secrets.token_bytes(64),
    ):
        digest = digest_of(data)
        blob = client.post(f"/v2/{repo}/blobs/uploads/?digest={digest}", content=data, auth=auth)
        if blob.status_code != 201:
            return blob
        digests.append((digest, len(data)))
    (config, config_size), (layer, layer_size) = digests
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": config,
            "size": config_size,
        },
        "layers": [
            {
                "mediaType": "application/vnd.oci.image.layer.v1.tar",
                "digest": layer,
                "size": layer_size,
            }
        ],
    }
    return client.put(
        f"/v2/{repo}/manifests/{tag}",
        content=json.dumps(manifest).encode(),
        headers={"Content-Type": "application/vnd.oci.image.manifest.v1+json"},
        auth=auth,
    )


def _audit(oci: OCIClient, project: str) -> list[Any]:
    registry = oci.client.app.state["registry"]  # type: ignore[attr-defined]
    registry.identity.audit.flush()
    response = oci.client.get(
        "/api/v1/audit", params={"project": project, "limit": 1000}, auth=_api(oci).admin
    )
    assert response.status_code == 200, response.text
    return list(response.json()["items"])


def test_a_robot_pulls_and_pushes_with_basic(oci: OCIClient) -> None:
    api = _api(oci)
    project = api.project()
    robot = api.robot(project, ["pull", "push"])[:2]
    repo = f"{project}/app"
    assert oci.client.get("/v2/", auth=robot).status_code == 200
    pushed = _push(oci.client, robot, repo, "v1")
    assert pushed.status_code == 201, pushed.text
    digest = pushed.headers["docker-content-digest"]
    for reference in ("v1", digest):
        pulled = oci.client.get(f"/v2/{repo}/manifests/{reference}", auth=robot)
        assert pulled.status_code == 200, pulled.text
        assert pulled.headers["docker-content-digest"] == digest
    layer = json.loads(pulled.content)["layers"][0]["digest"]
    assert oci.client.get(f"/v2/{repo}/blobs/{layer}", auth=robot).status_code == 200
    assert oci.client.get(f"/v2/{repo}/tags/list", auth=robot).json()["tags"] == ["v1"]
    listed = oci.client.get("/v2/_catalog", auth=robot).json()["repositories"]
    assert repo in listed

    events = _audit(oci, project)
    pushes = [e for e in events if e["action"] == "push_manifest"]
    assert [(e["actor"], e["actor_kind"], e["auth_method"]) for e in pushes] == [
        (robot[0], "robot", "robot_secret")
    ]
    pulls = [e for e in events if e["action"] == "pull_manifest" and e["status"] == 200]
    assert {e["actor"] for e in pulls} == {robot[0]}


def test_a_missing_right_is_named(oci: OCIClient) -> None:
    api = _api(oci)
    project = api.project()
    repo = f"{project}/app"
    assert oci.push_image(repo, "v1").digest
    reader = api.robot(project, ["pull"])[:2]
    assert oci.client.get(f"/v2/{repo}/manifests/v1", auth=reader).status_code == 200
    refused = _push(oci.client, reader, repo, "v2")
    assert refused.status_code == 403, refused.text
    error = refused.json()["errors"][0]
    assert error["code"] == "DENIED"
    assert error["message"] == f"missing push access to repository {repo}"
    assert error["detail"] == [{"Type": "repository", "Name": repo, "Action": "push"}]

    # A robot of another project holds nothing here: it is told it lacks pull.
    stranger = api.robot(api.project(), ["pull", "push"])[:2]
    other = oci.client.get(f"/v2/{repo}/manifests/v1", auth=stranger)
    assert other.status_code == 403
    assert other.json()["errors"][0]["message"] == f"missing pull access to repository {repo}"

    # A registry token that lacks the right says the same, with the Bearer challenge.
    token = oci.client.get(
        "/auth/token", params={"scope": f"repository:{repo}:pull,push"}, auth=reader
    ).json()["token"]
    bearer = oci.client.post(
        f"/v2/{repo}/blobs/uploads/", headers={"Authorization": f"Bearer {token}"}
    )
    assert bearer.status_code == 401
    assert bearer.json()["errors"][0]["message"] == f"missing push access to repository {repo}"
    assert 'error="insufficient_scope"' in bearer.headers["www-authenticate"]
    events = _audit(oci, project)
    denied = [e for e in events if e["actor"] == reader[0] and e["result"] == "denied"]
    assert denied
    assert {e["status"] for e in denied} == {401, 403}


def test_users_and_personal_access_tokens_use_basic(oci: OCIClient) -> None:
    api = _api(oci)
    project = api.project()
    repo = f"{project}/app"
    user = api.user()
    api.member(project, "developer", user=user[0])
    assert _push(oci.client, user, repo, "v1").status_code == 201
    created = oci.client.post(
        "/api/v1/users/me/tokens", json={"name": "ci", "scopes": ["pull"]}, auth=user
    )
    assert created.status_code == 201, created.text
    token = (user[0], created.json()["token"])
    assert oci.client.get(f"/v2/{repo}/manifests/v1", auth=token).status_code == 200
    refused = _push(oci.client, token, repo, "v2")
    assert refused.status_code == 403
    assert refused.json()["errors"][0]["message"] == f"missing push access to repository {repo}"


def test_no_credentials_still_get_the_bearer_challenge(oci: OCIClient, repo: str) -> None:
    oci.push_image(repo, "v1")
    for path in ("/v2/", f"/v2/{repo}/manifests/v1"):
        response = oci.client.get(path)
        assert response.status_code == 401
        assert response.headers["www-authenticate"].startswith("Bearer realm=")


def test_wrong_passwords_are_refused_and_limited(oci: OCIClient, app_settings: Settings) -> None:
    api = _api(oci)
    project = api.project()
    repo = f"{project}/app"
    oci.push_image(repo, "v1")
    name, secret, _ = api.robot(project, ["pull"])
    url = f"/v2/{repo}/manifests/v1"
    limit = app_settings.login_limit.max_failures
    for _ in range(limit):
        wrong = oci.client.get(url, auth=(name, "not-the-secret"))
        assert wrong.status_code == 401
        assert wrong.json()["errors"][0]["code"] == "UNAUTHORIZED"
        assert wrong.json()["errors"][0]["message"] == "invalid username or password"
    locked = oci.client.get(url, auth=(name, secret))
    assert locked.status_code == 429
    assert locked.json()["errors"][0]["code"] == "TOOMANYREQUESTS"
    assert int(locked.headers["retry-after"]) >= 1
    # The lock is the token service's too: one limit for every way in.
    assert oci.client.get("/auth/token", auth=(name, secret)).status_code == 429
    failed = [e for e in _audit(oci, project) if e["actor"] == name and e["status"] == 401]
    assert len(failed) == limit
    assert {e["actor_kind"] for e in failed} == {"unauthenticated"}
