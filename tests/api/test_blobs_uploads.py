"""Blob reads and every upload path of the distribution spec."""

from __future__ import annotations

import os
from typing import Any

import pytest

from tests.api.oci import OCIClient, digest_of


def _start(oci: OCIClient, repo: str) -> str:
    response = oci.request("POST", f"/v2/{repo}/blobs/uploads/", repo)
    assert response.status_code == 202
    assert response.headers["range"] == "0-0"
    assert response.headers["docker-upload-uuid"]
    return response.headers["location"]


def test_monolithic_post_then_put(oci: OCIClient, repo: str) -> None:
    data = os.urandom(100_000)
    location = _start(oci, repo)
    response = oci.request("PUT", f"{location}?digest={digest_of(data)}", repo, content=data)
    assert response.status_code == 201
    assert response.headers["docker-content-digest"] == digest_of(data)
    assert response.headers["location"] == f"/v2/{repo}/blobs/{digest_of(data)}"
    got = oci.request("GET", f"/v2/{repo}/blobs/{digest_of(data)}", repo)
    assert got.status_code == 200
    assert got.content == data
    assert got.headers["docker-content-digest"] == digest_of(data)


def test_single_post_with_digest(oci: OCIClient, repo: str) -> None:
    data = os.urandom(5000)
    assert oci.push_blob(repo, data) == digest_of(data)
    head = oci.request("HEAD", f"/v2/{repo}/blobs/{digest_of(data)}", repo)
    assert head.status_code == 200
    assert head.headers["content-length"] == "5000"
    assert head.content == b""


def test_chunked_upload_with_content_range(oci: OCIClient, repo: str) -> None:
    data = os.urandom(300_000)
    location = _start(oci, repo)
    for start in range(0, len(data), 100_000):
        chunk = data[start : start + 100_000]
        response = oci.request(
            "PATCH",
            location,
            repo,
            content=chunk,
            headers={"Content-Range": f"{start}-{start + len(chunk) - 1}"},
        )
        assert response.status_code == 202, response.text
        assert response.headers["range"] == f"0-{start + len(chunk) - 1}"
    status = oci.request("GET", location, repo)
    assert status.status_code == 204
    assert status.headers["range"] == f"0-{len(data) - 1}"
    done = oci.request("PUT", f"{location}?digest={digest_of(data)}", repo)
    assert done.status_code == 201
    assert oci.request("GET", f"/v2/{repo}/blobs/{digest_of(data)}", repo).content == data


def test_streamed_patch_then_put_with_last_chunk(oci: OCIClient, repo: str) -> None:
    data = os.urandom(70_000)
    location = _start(oci, repo)
    assert oci.request("PATCH", location, repo, content=data[:50_000]).status_code == 202
    done = oci.request("PUT", f"{location}?digest={digest_of(data)}", repo, content=data[50_000:])
    assert done.status_code == 201
    assert oci.request("GET", f"/v2/{repo}/blobs/{digest_of(data)}", repo).content == data


def test_out_of_order_chunk_is_416_with_range(oci: OCIClient, repo: str) -> None:
    location = _start(oci, repo)
    oci.request("PATCH", location, repo, content=b"a" * 10, headers={"Content-Range": "0-9"})
    response = oci.request(
        "PATCH", location, repo, content=b"b" * 10, headers={"Content-Range": "20-29"}
    )
    assert response.status_code == 416
    assert response.headers["range"] == "0-9"
    again = oci.request(
        "PATCH", location, repo, content=b"a" * 10, headers={"Content-Range": "0-9"}
    )
    assert again.status_code == 416


def test_sha512_blob(oci: OCIClient, repo: str) -> None:
    data = os.urandom(4096)
    digest = digest_of(data, "sha512")
    response = oci.request("POST", f"/v2/{repo}/blobs/uploads/?digest={digest}", repo, content=data)
    assert response.status_code == 201
    assert oci.request("GET", f"/v2/{repo}/blobs/{digest}", repo).content == data


def test_empty_blob(oci: OCIClient, repo: str) -> None:
    digest = oci.push_blob(repo, b"")
    response = oci.request("GET", f"/v2/{repo}/blobs/{digest}", repo)
    assert response.status_code == 200
    assert response.content == b""


def test_wrong_digest_stores_nothing(oci: OCIClient, repo: str) -> None:
    data, claimed = b"real bytes", digest_of(b"other bytes")
    location = _start(oci, repo)
    response = oci.request("PUT", f"{location}?digest={claimed}", repo, content=data)
    assert response.status_code == 400
    assert response.json()["errors"][0]["code"] == "DIGEST_INVALID"
    assert oci.request("HEAD", f"/v2/{repo}/blobs/{claimed}", repo).status_code == 404
    assert oci.request("GET", location, repo).status_code == 404


def test_cancel_upload(oci: OCIClient, repo: str) -> None:
    location = _start(oci, repo)
    assert oci.request("DELETE", location, repo).status_code == 204
    status = oci.request("GET", location, repo)
    assert status.status_code == 404
    assert status.json()["errors"][0]["code"] == "BLOB_UPLOAD_UNKNOWN"


def test_range_requests(oci: OCIClient, repo: str) -> None:
    data = os.urandom(1000)
    digest = oci.push_blob(repo, data)
    url = f"/v2/{repo}/blobs/{digest}"
    part = oci.request("GET", url, repo, headers={"Range": "bytes=10-19"})
    assert part.status_code == 206
    assert part.content == data[10:20]
    assert part.headers["content-range"] == "bytes 10-19/1000"
    suffix = oci.request("GET", url, repo, headers={"Range": "bytes=-5"})
    assert suffix.content == data[-5:]
    open_end = oci.request("GET", url, repo, headers={"Range": "bytes=990-"})
    assert open_end.content == data[990:]
    bad = oci.request("GET", url, repo, headers={"Range": "bytes=2000-3000"})
    assert bad.status_code == 416
    assert bad.headers["content-range"] == "bytes */1000"


def test_delete_blob_unlinks_it(oci: OCIClient, repo: str) -> None:
    digest = oci.push_blob(repo, b"to be deleted")
    assert oci.request("DELETE", f"/v2/{repo}/blobs/{digest}", repo).status_code == 202
    missing = oci.request("GET", f"/v2/{repo}/blobs/{digest}", repo)
    assert missing.status_code == 404
    assert missing.json()["errors"][0]["code"] == "BLOB_UNKNOWN"
    assert oci.request("DELETE", f"/v2/{repo}/blobs/{digest}", repo).status_code == 404


def test_blob_of_other_repository_is_invisible(oci: OCIClient, repo: str) -> None:
    digest = oci.push_blob(repo, b"only in repo one")
    other = repo.replace("/app", "/other")
    oci.push_blob(other, b"make the repository exist")
    assert oci.request("HEAD", f"/v2/{other}/blobs/{digest}", other).status_code == 404


def test_mount_within_project_links(oci: OCIClient, repo: str) -> None:
    digest = oci.push_blob(repo, b"mount me")
    target = repo.replace("/app", "/copy")
    scopes = oci.token(f"repository:{target}:pull,push", f"repository:{repo}:pull")
    response = oci.client.post(
        f"/v2/{target}/blobs/uploads/?mount={digest}&from={repo}",
        headers={"Authorization": f"Bearer {scopes}"},
    )
    assert response.status_code == 201
    assert response.headers["location"] == f"/v2/{target}/blobs/{digest}"
    assert oci.request("GET", f"/v2/{target}/blobs/{digest}", target).content == b"mount me"


def test_mount_across_projects_copies(oci: OCIClient, repo: str) -> None:
    from tests.api.oci import unique_project

    digest = oci.push_blob(repo, b"cross tenant")
    target = f"{unique_project()}/app"
    scopes = oci.token(f"repository:{target}:pull,push", f"repository:{repo}:pull")
    response = oci.client.post(
        f"/v2/{target}/blobs/uploads/?mount={digest}&from={repo}",
        headers={"Authorization": f"Bearer {scopes}"},
    )
    assert response.status_code == 201
    assert oci.request("GET", f"/v2/{target}/blobs/{digest}", target).content == b"cross tenant"


def test_mount_without_pull_on_source_starts_an_upload(oci: OCIClient, repo: str) -> None:
    digest = oci.push_blob(repo, b"secret layer")
    target = repo.replace("/app", "/copy")
    token = oci.token(f"repository:{target}:pull,push")
    missing = digest_of(b"never pushed")
    for candidate in (digest, missing):
        response = oci.client.post(
            f"/v2/{target}/blobs/uploads/?mount={candidate}&from={repo}",
            headers={"Authorization": f"Bearer {token}"},
        )
        assert response.status_code == 202
        assert "/blobs/uploads/" in response.headers["location"]
    assert oci.request("HEAD", f"/v2/{target}/blobs/{digest}", target).status_code == 404


def _counting_upload_reads(oci: OCIClient, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Record every read of an upload's stored bytes (a completion that re-hashes)."""
    store = oci.client.app.state["registry"].store  # type: ignore[attr-defined]
    reads: list[str] = []
    original = store.read_upload

    def counted(tenant: str, upload_id: str, size: int | None = None) -> Any:
        reads.append(upload_id)
        return original(tenant, upload_id, size)

    monkeypatch.setattr(store, "read_upload", counted)
    return reads


def test_completing_put_without_body_reuses_the_running_hash(
    oci: OCIClient, repo: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """PATCH then an empty PUT (docker, skopeo): the bytes are hashed once, as they arrive."""
    reads = _counting_upload_reads(oci, monkeypatch)
    first, second = os.urandom(300_000), os.urandom(200_000)
    data = first + second
    location = _start(oci, repo)
    for piece in (first, second):
        patched = oci.request("PATCH", location, repo, content=piece)
        assert patched.status_code == 202
        location = patched.headers["location"]
    done = oci.request("PUT", f"{location}?digest={digest_of(data)}", repo)
    assert done.status_code == 201
    assert oci.request("GET", f"/v2/{repo}/blobs/{digest_of(data)}", repo).content == data
    assert reads == []
    # The running hash is the real one: a wrong digest is still refused after PATCHes.
    location = _start(oci, repo)
    location = oci.request("PATCH", location, repo, content=first).headers["location"]
    wrong = oci.request("PUT", f"{location}?digest={digest_of(second)}", repo)
    assert wrong.status_code == 400
    assert wrong.json()["errors"][0]["code"] == "DIGEST_INVALID"


def _listed(oci: OCIClient, project: str) -> list[str]:
    """The catalog's repositories of ``project`` (the page right after its name)."""
    token = oci.token("registry:catalog:*")
    page = oci.client.get(
        f"/v2/_catalog?n=50&last={project}", headers={"Authorization": f"Bearer {token}"}
    )
    assert page.status_code == 200, page.text
    return [name for name in page.json()["repositories"] if name.startswith(f"{project}/")]


def _managed(oci: OCIClient, project: str) -> list[str]:
    """The repositories the management API lists for ``project``."""
    response = oci.client.get(
        f"/api/v1/projects/{project}/repositories", auth=("admin", oci.password)
    )
    assert response.status_code == 200, response.text
    return [str(entry["name"]) for entry in response.json()["items"]]


def _tags(oci: OCIClient, repo: str) -> tuple[int, Any]:
    response = oci.request("GET", f"/v2/{repo}/tags/list", repo)
    return response.status_code, response.json()


def test_an_upload_does_not_create_its_repository(oci: OCIClient, repo: str) -> None:
    """A repository exists once it holds a linked blob or a manifest, not before."""
    project = repo.split("/", 1)[0]
    oci.push_image(repo, "v1")  # the project and one repository exist
    blobs, images, mounted = (f"{project}/{path}" for path in ("blobs", "images", "mounted"))
    location = oci.request("POST", f"/v2/{blobs}/blobs/uploads/", blobs).headers["location"]
    assert oci.request("PATCH", location, blobs, content=b"half").status_code == 202
    started = oci.request("POST", f"/v2/{images}/blobs/uploads/", images)
    assert started.status_code == 202
    missing = digest_of(b"not anywhere")
    scopes = oci.token(f"repository:{mounted}:pull,push", f"repository:{repo}:pull")
    fallback = oci.client.post(
        f"/v2/{mounted}/blobs/uploads/?mount={missing}&from={repo}",
        headers={"Authorization": f"Bearer {scopes}"},
    )
    assert fallback.status_code == 202  # an unknown blob: a plain upload, no repository
    assert _listed(oci, project) == [repo]
    assert _managed(oci, project) == [repo]
    for name in (blobs, images, mounted):
        status, body = _tags(oci, name)
        assert status == 404, body
        assert body["errors"][0]["code"] == "NAME_UNKNOWN"

    done = oci.request(
        "PUT", f"{location}?digest={digest_of(b'half-done')}", blobs, content=b"-done"
    )
    assert done.status_code == 201, done.text
    assert _tags(oci, blobs) == (200, {"name": blobs, "tags": []})
    pushed = oci.push_image(images, "v2")
    assert _tags(oci, images) == (200, {"name": images, "tags": ["v2"]})
    source = oci.push_blob(repo, b"mounted into a new repository")
    linked = oci.client.post(
        f"/v2/{mounted}/blobs/uploads/?mount={source}&from={repo}",
        headers={"Authorization": f"Bearer {scopes}"},
    )
    assert linked.status_code == 201, linked.text
    assert _listed(oci, project) == sorted([repo, blobs, images, mounted])
    assert oci.request("GET", f"/v2/{images}/manifests/v2", images).content == pushed.payload


def test_an_upload_refused_by_the_quota_creates_no_repository(oci: OCIClient, repo: str) -> None:
    project = repo.split("/", 1)[0]
    oci.push_image(repo, "v1")
    quota = oci.client.put(
        f"/api/v1/projects/{project}/quota", json={"bytes": 1}, auth=("admin", oci.password)
    )
    assert quota.status_code == 200, quota.text
    target = f"{project}/refused"
    data = b"over the quota"
    url = f"/v2/{target}/blobs/uploads/?digest={digest_of(data)}"
    refused = oci.request("POST", url, target, content=data)
    assert refused.status_code == 403, refused.text
    assert refused.json()["errors"][0]["code"] == "DENIED"
    status, body = _tags(oci, target)
    assert status == 404, body
    assert _listed(oci, project) == [repo]
