"""Tenant isolation sweep: nothing of another project is reachable or even confirmable.

Alice (admin of p1) pushes an image, a referrer and leaves an upload open in ``p1/app``.
Bob (admin of p2 only) asks for p1 scopes anyway; every answer he gets about p1 must be
the answer for a project that does not exist (AZ-01, AZ-06, AZ-09).
"""

from __future__ import annotations

import json
import secrets
import uuid
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from tests.api.identity_helpers import Api, claims
from tests.api.oci import OCI_MANIFEST, OCIClient, digest_of, unique_project

ALL = "pull,push,delete"


@dataclass
class World:
    api: Api
    bob: tuple[str, str]
    p1: str
    p2: str
    ghost: str
    blob: str
    manifest: str
    upload: str  # the path of alice's open upload session in p1/app


def _token(api: Api, auth: tuple[str, str], *scopes: str) -> str:
    response = api.client.get("/auth/token", params={"scope": list(scopes)}, auth=auth)
    assert response.status_code == 200, response.text
    return str(response.json()["token"])


def _push_referrer(alice: OCIClient, repo: str, subject: str, size: int) -> None:
    artifact = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": "application/vnd.example.sbom",
        "config": {
            "mediaType": "application/vnd.oci.empty.v1+json",
            "digest": alice.push_blob(repo, b"{}"),
            "size": 2,
        },
        "layers": [],
        "subject": {"mediaType": OCI_MANIFEST, "digest": subject, "size": size},
    }
    payload = json.dumps(artifact).encode()
    assert alice.put_manifest(repo, digest_of(payload), payload).status_code == 201


@pytest.fixture
def world(oci: OCIClient) -> World:
    api = Api(oci.client, (oci.username, oci.password))
    p1, p2 = api.project(), api.project()
    alice, bob = api.user(), api.user()
    api.member(p1, "admin", user=alice[0])
    api.member(p2, "admin", user=bob[0])
    as_alice = OCIClient(oci.client, alice[1], username=alice[0])
    repo = f"{p1}/app"
    secret = b"alice's secret layer " + secrets.token_bytes(16)
    blob = as_alice.push_blob(repo, secret)
    image = as_alice.push_image(repo, "latest", layers=[])
    _push_referrer(as_alice, repo, image.digest, len(image.payload))
    started = as_alice.request("POST", f"/v2/{repo}/blobs/uploads/", repo)
    assert started.status_code == 202, started.text
    # NOTE: the image links X too, so the blob is reachable through a manifest as well.
    linked = as_alice.image(repo, layers=[])
    linked["layers"] = [
        {"mediaType": "application/octet-stream", "digest": blob, "size": len(secret)}
    ]
    assert as_alice.put_manifest(repo, "with-x", linked).status_code == 201
    return World(
        api, bob, p1, p2, unique_project(), blob, image.digest, started.headers["location"]
    )


def _shape(response: httpx.Response) -> tuple[int, list[str], list[str], str | None]:
    """What a client can observe, minus values that vary per request or name the path."""
    codes: list[str] = []
    title = None
    if response.content:
        body: Any = response.json()
        if isinstance(body, dict) and isinstance(body.get("errors"), list):
            codes = sorted(str(e.get("code")) for e in body["errors"])
        elif isinstance(body, dict):
            title = str(body.get("title"))
    skip = {"date", "x-request-id", "content-length"}
    headers = sorted(name for name in response.headers if name.lower() not in skip)
    return response.status_code, codes, headers, title


def _same_as_missing(
    world: World, method: str, path: str, token: str, ghost_token: str, **kwargs: Any
) -> None:
    client = world.api.client
    extra = kwargs.pop("headers", {})
    hidden = client.request(
        method, path, headers={**extra, "Authorization": f"Bearer {token}"}, **kwargs
    )
    missing = client.request(
        method,
        path.replace(world.p1, world.ghost),
        headers={**extra, "Authorization": f"Bearer {ghost_token}"},
        **kwargs,
    )
    assert not 200 <= hidden.status_code < 300, (method, path, hidden.text)
    assert _shape(hidden) == _shape(missing), (method, path, hidden.text, missing.text)


def test_bob_gets_no_access_to_p1_in_his_token(world: World) -> None:
    token = _token(world.api, world.bob, f"repository:{world.p1}/app:{ALL}")
    assert claims(token)["access"] == []
    both = _token(
        world.api, world.bob, f"repository:{world.p1}/app:{ALL}", f"repository:{world.p2}/app:{ALL}"
    )
    assert [entry["name"] for entry in claims(both)["access"]] == [f"{world.p2}/app"]


def test_p1_registry_objects_answer_like_a_missing_project(world: World) -> None:
    repo = f"{world.p1}/app"
    token = _token(world.api, world.bob, f"repository:{repo}:{ALL}")
    ghost = _token(world.api, world.bob, f"repository:{world.ghost}/app:{ALL}")
    reads = [
        ("HEAD", f"/v2/{repo}/blobs/{world.blob}"),
        ("GET", f"/v2/{repo}/blobs/{world.blob}"),
        ("HEAD", f"/v2/{repo}/manifests/latest"),
        ("GET", f"/v2/{repo}/manifests/latest"),
        ("HEAD", f"/v2/{repo}/manifests/{world.manifest}"),
        ("GET", f"/v2/{repo}/manifests/{world.manifest}"),
        ("GET", f"/v2/{repo}/tags/list"),
        ("GET", f"/v2/{repo}/referrers/{world.manifest}"),
        ("GET", world.upload),
        ("DELETE", f"/v2/{repo}/manifests/{world.manifest}"),
        ("DELETE", f"/v2/{repo}/blobs/{world.blob}"),
    ]
    for method, path in reads:
        _same_as_missing(world, method, path, token, ghost)
    chunk = {"content": b"bob was here", "headers": {"Content-Type": "application/octet-stream"}}
    _same_as_missing(world, "PATCH", world.upload, token, ghost, **chunk)
    separator = "&" if "?" in world.upload else "?"
    finish = f"{world.upload}{separator}digest={digest_of(b'bob was here')}"
    _same_as_missing(world, "PUT", finish, token, ghost, **chunk)
    _same_as_missing(world, "DELETE", world.upload, token, ghost)
    for guess in (None, token):  # anonymous too
        headers = {} if guess is None else {"Authorization": f"Bearer {guess}"}
        assert world.api.client.get(f"/v2/{repo}/tags/list", headers=headers).status_code == 401


def test_p1_objects_are_not_reachable_through_bobs_own_repository(world: World) -> None:
    own = f"{world.p2}/app"
    token = _token(world.api, world.bob, f"repository:{own}:{ALL}")
    headers = {"Authorization": f"Bearer {token}"}
    client = world.api.client
    upload_id = world.upload.rstrip("/").rsplit("/", 1)[-1].split("?")[0]
    pairs = [
        (f"/v2/{own}/blobs/{world.blob}", f"/v2/{own}/blobs/{digest_of(uuid.uuid4().bytes)}"),
        (
            f"/v2/{own}/manifests/{world.manifest}",
            f"/v2/{own}/manifests/{digest_of(uuid.uuid4().bytes)}",
        ),
        (f"/v2/{own}/blobs/uploads/{upload_id}", f"/v2/{own}/blobs/uploads/{uuid.uuid4()}"),
    ]
    for hit, nothing in pairs:
        for method in ("HEAD", "GET", "DELETE"):
            seen = client.request(method, hit, headers=headers)
            absent = client.request(method, nothing, headers=headers)
            assert 400 <= seen.status_code < 500, (method, hit, seen.text)
            assert _shape(seen) == _shape(absent), (method, hit, seen.text, absent.text)
    referrers = client.get(f"/v2/{own}/referrers/{world.manifest}", headers=headers)
    assert referrers.status_code == 200
    assert referrers.json()["manifests"] == []
    # alice's upload is still hers: bob's DELETE through p2 did not cancel it
    assert world.api.client.get(
        world.upload, headers={"Authorization": f"Bearer {_admin_token(world, world.p1)}"}
    ).status_code in (204, 200)


def _admin_token(world: World, project: str) -> str:
    return _token(world.api, world.api.admin, f"repository:{project}/app:{ALL}")


def _mount(world: World, source: str, digest: str) -> httpx.Response:
    token = _token(
        world.api, world.bob, f"repository:{world.p2}/app:pull,push", f"repository:{source}:pull"
    )
    return world.api.client.post(
        f"/v2/{world.p2}/app/blobs/uploads/?mount={digest}&from={source}",
        headers={"Authorization": f"Bearer {token}"},
    )


def test_cross_tenant_mount_is_a_fresh_upload_az01(world: World) -> None:
    mounted = _mount(world, f"{world.p1}/app", world.blob)
    from_ghost = _mount(world, f"{world.ghost}/app", world.blob)
    unknown = _mount(world, f"{world.p1}/app", digest_of(uuid.uuid4().bytes))
    for response in (mounted, from_ghost, unknown):
        assert response.status_code == 202, response.text
        assert "/blobs/uploads/" in response.headers["location"]
        assert world.p1 not in response.text + response.headers["location"]
    assert _shape(mounted) == _shape(from_ghost) == _shape(unknown)
    token = _token(world.api, world.bob, f"repository:{world.p2}/app:pull")
    for method in ("HEAD", "GET"):
        response = world.api.client.request(
            method,
            f"/v2/{world.p2}/app/blobs/{world.blob}",
            headers={"Authorization": f"Bearer {token}"},
        )
        assert response.status_code == 404, response.text
    admin = world.api.client.head(
        f"/v2/{world.p2}/app/blobs/{world.blob}",
        headers={"Authorization": f"Bearer {_admin_token(world, world.p2)}"},
    )
    assert admin.status_code == 404  # no link row was created in p2 either


def test_catalog_shows_bob_nothing_of_p1(world: World) -> None:
    token = _token(world.api, world.bob, "registry:catalog:*")
    response = world.api.client.get(
        "/v2/_catalog?n=10000", headers={"Authorization": f"Bearer {token}"}
    )
    assert response.status_code == 200
    listed = response.json()["repositories"]
    assert not [name for name in listed if name.split("/")[0] == world.p1]
    everything = _token(world.api, world.api.admin, "registry:catalog:*")
    admin = world.api.client.get(
        "/v2/_catalog?n=10000", headers={"Authorization": f"Bearer {everything}"}
    )
    assert f"{world.p1}/app" in admin.json()["repositories"]  # positive control


@pytest.mark.parametrize("suffix", ["", "/members", "/robots", "/audit"])
def test_management_api_hides_p1(world: World, suffix: str) -> None:
    client = world.api.client
    hidden = client.get(f"/api/v1/projects/{world.p1}{suffix}", auth=world.bob)
    missing = client.get(f"/api/v1/projects/{world.ghost}{suffix}", auth=world.bob)
    assert not 200 <= hidden.status_code < 300, hidden.text
    assert _shape(hidden) == _shape(missing), (hidden.text, missing.text)
    own = client.get(f"/api/v1/projects/{world.p2}{suffix}", auth=world.bob)
    assert own.status_code == 200, own.text  # positive control
