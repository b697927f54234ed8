"""Manifests by tag and digest, indexes, artifacts with subjects, tags and referrers."""

from __future__ import annotations

import json
from typing import Any

from tests.api.oci import OCI_INDEX, OCIClient, digest_of

DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"


def test_put_get_head_by_tag_and_digest(oci: OCIClient, repo: str) -> None:
    pushed = oci.push_image(repo, "v1")
    for reference in ("v1", pushed.digest):
        got = oci.request("GET", f"/v2/{repo}/manifests/{reference}", repo)
        assert got.status_code == 200
        assert got.content == pushed.payload
        assert got.headers["docker-content-digest"] == pushed.digest
        assert got.headers["content-type"] == "application/vnd.oci.image.manifest.v1+json"
        head = oci.request("HEAD", f"/v2/{repo}/manifests/{reference}", repo)
        assert head.status_code == 200
        assert head.content == b""
        assert head.headers["content-length"] == str(len(pushed.payload))


def test_put_by_digest_checks_the_digest(oci: OCIClient, repo: str) -> None:
    manifest = json.dumps(oci.image(repo)).encode()
    good = oci.put_manifest(repo, digest_of(manifest), manifest)
    assert good.status_code == 201
    wrong = oci.put_manifest(repo, digest_of(b"something else"), manifest)
    assert wrong.status_code == 400
    assert wrong.json()["errors"][0]["code"] == "DIGEST_INVALID"


def test_manifest_with_unknown_blob_is_refused(oci: OCIClient, repo: str) -> None:
    manifest = oci.image(repo)
    manifest["layers"][0]["digest"] = digest_of(b"not uploaded")
    response = oci.put_manifest(repo, "broken", manifest)
    assert response.status_code == 400
    assert response.json()["errors"][0]["code"] == "MANIFEST_BLOB_UNKNOWN"
    assert oci.request("GET", f"/v2/{repo}/manifests/broken", repo).status_code == 404


def test_docker_manifest_and_list(oci: OCIClient, repo: str) -> None:
    manifest = oci.image(repo)
    manifest["mediaType"] = DOCKER_MANIFEST
    manifest["config"]["mediaType"] = "application/vnd.docker.container.image.v1+json"
    payload = json.dumps(manifest).encode()
    assert oci.put_manifest(repo, "docker", payload, DOCKER_MANIFEST).status_code == 201
    listing = {
        "schemaVersion": 2,
        "mediaType": DOCKER_LIST,
        "manifests": [
            {
                "mediaType": DOCKER_MANIFEST,
                "digest": digest_of(payload),
                "size": len(payload),
                "platform": {"architecture": "amd64", "os": "linux"},
            }
        ],
    }
    assert oci.put_manifest(repo, "list", listing, DOCKER_LIST).status_code == 201
    got = oci.request("GET", f"/v2/{repo}/manifests/list", repo)
    assert got.headers["content-type"] == DOCKER_LIST


def test_index_requires_its_manifests(oci: OCIClient, repo: str) -> None:
    child = oci.push_image(repo, "child")
    index: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [
            {
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "digest": child.digest,
                "size": len(child.payload),
            }
        ],
    }
    assert oci.put_manifest(repo, "index", index, OCI_INDEX).status_code == 201
    index["manifests"][0]["digest"] = digest_of(b"absent manifest")
    refused = oci.put_manifest(repo, "index2", index, OCI_INDEX)
    assert refused.status_code == 400
    assert refused.json()["errors"][0]["code"] == "MANIFEST_BLOB_UNKNOWN"


def test_tag_moves_and_delete_by_tag_keeps_manifest(oci: OCIClient, repo: str) -> None:
    first = oci.push_image(repo, "latest")
    second = oci.push_image(repo, "latest")
    got = oci.request("GET", f"/v2/{repo}/manifests/latest", repo)
    assert got.headers["docker-content-digest"] == second.digest
    assert oci.request("DELETE", f"/v2/{repo}/manifests/latest", repo).status_code == 202
    assert oci.request("GET", f"/v2/{repo}/manifests/latest", repo).status_code == 404
    assert oci.request("GET", f"/v2/{repo}/manifests/{second.digest}", repo).status_code == 200
    assert oci.request("GET", f"/v2/{repo}/manifests/{first.digest}", repo).status_code == 200


def test_delete_by_digest_removes_tags(oci: OCIClient, repo: str) -> None:
    pushed = oci.push_image(repo, "gone")
    assert oci.request("DELETE", f"/v2/{repo}/manifests/{pushed.digest}", repo).status_code == 202
    missing = oci.request("GET", f"/v2/{repo}/manifests/gone", repo)
    assert missing.status_code == 404
    assert missing.json()["errors"][0]["code"] == "MANIFEST_UNKNOWN"
    tags = oci.request("GET", f"/v2/{repo}/tags/list", repo).json()["tags"]
    assert "gone" not in tags
    again = oci.request("DELETE", f"/v2/{repo}/manifests/{pushed.digest}", repo)
    assert again.status_code == 404


def test_tags_list_pagination(oci: OCIClient, repo: str) -> None:
    pushed = oci.push_image(repo, "a")
    for tag in ("d", "b", "c"):
        assert oci.put_manifest(repo, tag, pushed.payload).status_code == 201
    page = oci.request("GET", f"/v2/{repo}/tags/list?n=2", repo)
    assert page.json() == {"name": repo, "tags": ["a", "b"]}
    assert page.headers["link"] == f'</v2/{repo}/tags/list?n=2&last=b>; rel="next"'
    rest = oci.request("GET", f"/v2/{repo}/tags/list?n=2&last=b", repo)
    assert rest.json()["tags"] == ["c", "d"]
    assert "link" not in rest.headers
    assert oci.request("GET", f"/v2/{repo}/tags/list?n=0", repo).json()["tags"] == []


def test_unknown_repository(oci: OCIClient, repo: str) -> None:
    response = oci.request("GET", f"/v2/{repo}/tags/list", repo)
    assert response.status_code == 404
    assert response.json()["errors"][0]["code"] == "NAME_UNKNOWN"


def test_catalog_pagination(oci: OCIClient, repo: str) -> None:
    project = repo.split("/", maxsplit=1)[0]
    for name in ("one", "two", "three"):
        oci.push_blob(f"{project}/{name}", b"x")
    token = oci.token("registry:catalog:*")
    names: list[str] = []
    url: str | None = "/v2/_catalog?n=2"
    for _ in range(10_000):
        if url is None:
            break
        response = oci.client.get(url, headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 200
        page = response.json()["repositories"]
        assert len(page) <= 2
        names += page
        link = response.headers.get("link")
        url = link[1 : link.index(">")] if link else None
    assert names == sorted(names)
    assert {f"{project}/one", f"{project}/two", f"{project}/three"} <= set(names)


def test_artifact_with_subject_and_referrers(oci: OCIClient, repo: str) -> None:
    subject = oci.push_image(repo, "app")
    descriptor = {
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "digest": subject.digest,
        "size": len(subject.payload),
    }
    empty = oci.push_blob(repo, b"{}")
    referrers = []
    for artifact_type in ("application/vnd.example.sbom", "application/vnd.example.sig"):
        artifact = {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "artifactType": artifact_type,
            "config": {
                "mediaType": "application/vnd.oci.empty.v1+json",
                "digest": empty,
                "size": 2,
            },
            "layers": [],
            "subject": descriptor,
            "annotations": {"org.example.kind": artifact_type},
        }
        payload = json.dumps(artifact).encode()
        response = oci.put_manifest(repo, digest_of(payload), payload)
        assert response.status_code == 201
        assert response.headers["oci-subject"] == subject.digest
        referrers.append(digest_of(payload))
    index = oci.request("GET", f"/v2/{repo}/referrers/{subject.digest}", repo)
    assert index.status_code == 200
    assert index.headers["content-type"] == OCI_INDEX
    found = {m["digest"]: m for m in index.json()["manifests"]}
    assert set(found) == set(referrers)
    assert {m["artifactType"] for m in found.values()} == {
        "application/vnd.example.sbom",
        "application/vnd.example.sig",
    }
    assert all(m["annotations"]["org.example.kind"] == m["artifactType"] for m in found.values())
    filtered = oci.request(
        "GET",
        f"/v2/{repo}/referrers/{subject.digest}?artifactType=application/vnd.example.sig",
        repo,
    )
    assert filtered.headers["oci-filters-applied"] == "artifactType"
    assert [m["artifactType"] for m in filtered.json()["manifests"]] == [
        "application/vnd.example.sig"
    ]
    none = oci.request("GET", f"/v2/{repo}/referrers/{digest_of(b'nothing')}", repo)
    assert none.status_code == 200
    assert none.json()["manifests"] == []


def test_subject_may_be_pushed_after_its_referrer(oci: OCIClient, repo: str) -> None:
    empty = oci.push_blob(repo, b"{}")
    missing_subject = digest_of(b"future subject")
    artifact = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "artifactType": "application/vnd.example.early",
        "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": empty, "size": 2},
        "layers": [],
        "subject": {
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": missing_subject,
            "size": 10,
        },
    }
    response = oci.put_manifest(repo, "early", artifact)
    assert response.status_code == 201
    listed = oci.request("GET", f"/v2/{repo}/referrers/{missing_subject}", repo).json()
    assert len(listed["manifests"]) == 1


def test_reading_a_malformed_tag_is_unknown(oci: OCIClient, repo: str) -> None:
    oci.push_image(repo, "t")
    response = oci.request("GET", f"/v2/{repo}/manifests/.INVALID", repo)
    assert response.status_code == 404
    assert response.json()["errors"][0]["code"] == "MANIFEST_UNKNOWN"
