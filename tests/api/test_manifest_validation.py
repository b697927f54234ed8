"""Manifests that contradict the stored content, or their media type's schema, are refused.

Each refusal is a 400 with an OCI error code naming the field, and nothing is stored: the
manifest is neither found by digest nor by the tag the push named. Non-distributable layers
(which the registry need not hold) are the one kind of descriptor that may be absent.
"""

from __future__ import annotations

import base64
import json
import secrets
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import TestClient
from pydantic import SecretStr

from api.app import create_app
from cli.startup import prepare_installation
from core.settings import AuthSettings, LimitSettings, Settings
from tests.api.oci import LAYER, OCI_CONFIG, OCI_INDEX, OCI_MANIFEST, OCIClient, digest_of

ND_LAYER = "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_FOREIGN = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"


def _error(response: Any) -> dict[str, Any]:
    assert response.status_code == 400, (response.status_code, response.text)
    return dict(response.json()["errors"][0])


def _absent(oci: OCIClient, repo: str, payload: bytes, tag: str) -> None:
    """Neither the digest of ``payload`` nor ``tag`` names a manifest in ``repo``."""
    for reference in (digest_of(payload), tag):
        head = oci.request("HEAD", f"/v2/{repo}/manifests/{reference}", repo)
        assert head.status_code == 404, (reference, head.status_code)


def _refused(
    oci: OCIClient,
    repo: str,
    manifest: dict[str, Any] | bytes,
    code: str = "MANIFEST_INVALID",
    media_type: str = OCI_MANIFEST,
) -> str:
    """Push ``manifest``, expect ``code``, check nothing was stored; return the message."""
    payload = manifest if isinstance(manifest, bytes) else json.dumps(manifest).encode()
    tag = f"t{uuid.uuid4().hex[:8]}"
    error = _error(oci.put_manifest(repo, tag, payload, media_type))
    assert error["code"] == code, error
    _absent(oci, repo, payload, tag)
    return str(error["message"])


def _index(oci: OCIClient, repo: str, **child_extra: Any) -> dict[str, Any]:
    child = oci.push_image(repo, f"c{uuid.uuid4().hex[:8]}")
    return {
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [
            {
                "mediaType": OCI_MANIFEST,
                "digest": child.digest,
                "size": len(child.payload),
                "platform": {"architecture": "amd64", "os": "linux"},
                **child_extra,
            }
        ],
    }


@pytest.mark.parametrize("delta", [-1, 1])
def test_layer_size_off_by_one_byte(oci: OCIClient, repo: str, delta: int) -> None:
    layers = [b"a" * 10, b"b" * 20, b"c" * 124]
    manifest = oci.image(repo, layers=layers)
    manifest["layers"][2]["size"] = 124 + delta
    message = _refused(oci, repo, manifest)
    assert message == (f"layers[2].size: {124 + delta} does not match the stored blob's size 124")


def test_layer_size_zero(oci: OCIClient, repo: str) -> None:
    manifest = oci.image(repo)
    manifest["layers"][0]["size"] = 0
    assert _refused(oci, repo, manifest).startswith("layers[0].size: 0 does not match")


@pytest.mark.parametrize("delta", [-1, 1])
def test_config_size_off_by_one_byte(oci: OCIClient, repo: str, delta: int) -> None:
    manifest = oci.image(repo)
    size = manifest["config"]["size"]
    manifest["config"]["size"] = size + delta
    message = _refused(oci, repo, manifest)
    assert message == f"config.size: {size + delta} does not match the stored blob's size {size}"


def test_config_size_zero(oci: OCIClient, repo: str) -> None:
    manifest = oci.image(repo)
    manifest["config"]["size"] = 0
    assert _refused(oci, repo, manifest).startswith("config.size: 0 does not match")


def test_index_child_must_have_its_stored_size(oci: OCIClient, repo: str) -> None:
    index = _index(oci, repo)
    size = index["manifests"][0]["size"]
    index["manifests"][0]["size"] = 1
    message = _refused(oci, repo, index, media_type=OCI_INDEX)
    assert message == f"manifests[0].size: 1 does not match the stored manifest's size {size}"


def test_index_child_must_exist(oci: OCIClient, repo: str) -> None:
    index = _index(oci, repo)
    index["manifests"][0]["digest"] = digest_of(b"never pushed")
    _refused(oci, repo, index, "MANIFEST_BLOB_UNKNOWN", OCI_INDEX)


def test_exact_sizes_are_accepted(oci: OCIClient, repo: str) -> None:
    index = _index(oci, repo)
    payload = json.dumps(index).encode()
    assert oci.put_manifest(repo, "ok", payload, OCI_INDEX).status_code == 201
    assert oci.request("GET", f"/v2/{repo}/manifests/ok", repo).content == payload


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"schemaVersion": 2.0}, "schemaVersion: must be an integer"),
        ({"schemaVersion": "2"}, "schemaVersion: must be an integer"),
        ({"schemaVersion": 3}, "schemaVersion: must be 2"),
        ({"mediaType": None}, "mediaType: must be a string"),
        ({"artifactType": "not a media type"}, "artifactType: 'not a media type' is not"),
        ({"annotations": {"a": 1}}, "annotations['a']: must be a string"),
        ({"annotations": None}, "annotations: must be an object"),
        ({"subject": "x"}, "subject: must be an object"),
        ({"layers": None}, "layers: must be an array"),
        ({"config": None}, "config: must be an object"),
    ],
)
def test_image_manifest_schema(
    oci: OCIClient, repo: str, change: dict[str, Any], field: str
) -> None:
    manifest = {**oci.image(repo), **change}
    assert _refused(oci, repo, manifest).startswith(field)


@pytest.mark.parametrize("missing", ["layers", "config", "schemaVersion"])
def test_image_manifest_required_fields(oci: OCIClient, repo: str, missing: str) -> None:
    manifest = oci.image(repo)
    del manifest[missing]
    assert _refused(oci, repo, manifest) == f"{missing}: is required"


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"mediaType": None}, "layers[0].mediaType: must be a string"),
        ({"mediaType": "tar"}, "layers[0].mediaType: 'tar' is not a media type"),
        ({"size": 1.0}, "layers[0].size: must be an integer"),
        ({"size": "9"}, "layers[0].size: must be an integer"),
        ({"digest": "sha256:abc"}, "layers[0].digest: invalid sha256 digest"),
        ({"urls": "https://example.com/x"}, "layers[0].urls: must be an array"),
        ({"urls": ["no-scheme"]}, "layers[0].urls[0]: must be an absolute URI"),
        ({"annotations": []}, "layers[0].annotations: must be an object"),
        ({"platform": "x"}, "layers[0].platform: must be an object"),
        ({"data": 5}, "layers[0].data: must be a string"),
        ({"data": "not base64!"}, "layers[0].data: is not valid base64"),
    ],
)
def test_descriptor_schema(oci: OCIClient, repo: str, change: dict[str, Any], field: str) -> None:
    manifest = oci.image(repo)
    manifest["layers"][0].update(change)
    assert _refused(oci, repo, manifest).startswith(field)


@pytest.mark.parametrize(
    ("platform", "field"),
    [
        ("x", "manifests[0].platform: must be an object"),
        ({}, "manifests[0].platform.architecture: is required"),
        ({"architecture": "amd64"}, "manifests[0].platform.os: is required"),
        ({"architecture": "amd64", "os": 1}, "manifests[0].platform.os: must be a string"),
        (
            {"architecture": "amd64", "os": "linux", "os.features": "x"},
            "manifests[0].platform.os.features: must be an array",
        ),
        (
            {"architecture": "arm", "os": "linux", "variant": None},
            "manifests[0].platform.variant: must be a string",
        ),
    ],
)
def test_index_platform_schema(oci: OCIClient, repo: str, platform: Any, field: str) -> None:
    index = _index(oci, repo, platform=platform)
    assert _refused(oci, repo, index, media_type=OCI_INDEX).startswith(field)


def test_index_schema(oci: OCIClient, repo: str) -> None:
    index = _index(oci, repo)
    assert _refused(oci, repo, {**index, "manifests": None}, media_type=OCI_INDEX).startswith(
        "manifests: must be an array"
    )
    without = {k: v for k, v in index.items() if k != "manifests"}
    assert _refused(oci, repo, without, media_type=OCI_INDEX) == "manifests: is required"
    assert _refused(oci, repo, {**index, "schemaVersion": 2.0}, media_type=OCI_INDEX).startswith(
        "schemaVersion: must be an integer"
    )


def test_data_must_match_digest_and_size(oci: OCIClient, repo: str) -> None:
    config = json.dumps({"architecture": "amd64", "os": "linux"}).encode()
    manifest = oci.image(repo)
    manifest["config"] = {
        "mediaType": OCI_CONFIG,
        "digest": oci.push_blob(repo, config),
        "size": len(config),
        "data": base64.b64encode(config).decode(),
    }
    payload = json.dumps(manifest).encode()
    assert oci.put_manifest(repo, "with-data", payload).status_code == 201

    other = base64.b64encode(config.replace(b"amd64", b"arm64")).decode()
    manifest["config"]["data"] = other
    assert _refused(oci, repo, manifest) == "config.data: does not match config.digest"
    manifest["config"]["data"] = base64.b64encode(config + b" ").decode()
    assert _refused(oci, repo, manifest) == (
        f"config.data: holds {len(config) + 1} bytes, but config.size is {len(config)}"
    )
    manifest["config"]["data"] = base64.b64encode(config).decode().rstrip("=") + "*"
    assert _refused(oci, repo, manifest) == "config.data: is not valid base64"


def test_deep_nesting_is_named(oci: OCIClient, repo: str) -> None:
    body = b'{"schemaVersion": 2, "x": ' + b"[" * 10_000 + b"]" * 10_000 + b"}"
    assert _refused(oci, repo, body) == "manifest nesting too deep"


def test_docker_schema2_is_checked_too(oci: OCIClient, repo: str) -> None:
    manifest = oci.image(repo)
    manifest["mediaType"] = DOCKER_MANIFEST
    manifest["config"]["mediaType"] = DOCKER_CONFIG
    payload = json.dumps(manifest).encode()
    assert oci.put_manifest(repo, "docker", payload, DOCKER_MANIFEST).status_code == 201
    manifest["layers"][0]["size"] += 1
    message = _refused(oci, repo, manifest, media_type=DOCKER_MANIFEST)
    assert message.startswith("layers[0].size:")
    without = {k: v for k, v in manifest.items() if k != "mediaType"}
    message = _refused(oci, repo, without, media_type=DOCKER_MANIFEST)
    assert message == "mediaType: is required"


def _nondistributable(digest: str, url: str | None = None) -> dict[str, Any]:
    layer: dict[str, Any] = {"mediaType": ND_LAYER, "digest": digest, "size": 123456}
    if url is not None:
        layer["urls"] = [url]
    return layer


def test_nondistributable_layers_need_not_be_stored(oci: OCIClient, repo: str) -> None:
    absent = digest_of(secrets.token_bytes(32))
    manifest = oci.image(repo)
    manifest["layers"].insert(
        0, _nondistributable(absent, f"https://store.example.com/blobs/{absent}")
    )
    payload = json.dumps(manifest).encode()
    response = oci.put_manifest(repo, "nd", payload)
    assert response.status_code == 201, response.text
    assert oci.request("GET", f"/v2/{repo}/manifests/nd", repo).content == payload
    blob = oci.request("HEAD", f"/v2/{repo}/blobs/{absent}", repo)
    assert blob.status_code == 404
    # The layers the registry holds are still checked.
    manifest["layers"][1]["size"] += 1
    assert _refused(oci, repo, manifest).startswith("layers[1].size:")


def test_docker_foreign_layers_need_not_be_stored(oci: OCIClient, repo: str) -> None:
    absent = digest_of(secrets.token_bytes(32))
    manifest = oci.image(repo)
    manifest["mediaType"] = DOCKER_MANIFEST
    manifest["config"]["mediaType"] = DOCKER_CONFIG
    layer = _nondistributable(absent, "https://mcr.example.com/layer")
    manifest["layers"].append({**layer, "mediaType": DOCKER_FOREIGN})
    assert oci.put_manifest(repo, "foreign", manifest, DOCKER_MANIFEST).status_code == 201


def test_absent_nondistributable_layer_needs_urls(oci: OCIClient, repo: str) -> None:
    manifest = oci.image(repo)
    manifest["layers"].append(_nondistributable(digest_of(secrets.token_bytes(32))))
    _refused(oci, repo, manifest, "MANIFEST_BLOB_UNKNOWN")
    manifest["layers"][-1]["urls"] = ["ftp://store.example.com/layer"]
    assert _refused(oci, repo, manifest).startswith("layers[1].urls[0]: must be an http")


def test_ordinary_layers_with_urls_must_be_stored(oci: OCIClient, repo: str) -> None:
    manifest = oci.image(repo)
    absent = digest_of(secrets.token_bytes(32))
    manifest["layers"].append(
        {"mediaType": LAYER, "digest": absent, "size": 5, "urls": ["https://x.example.com/"]}
    )
    _refused(oci, repo, manifest, "MANIFEST_BLOB_UNKNOWN")


@pytest.fixture(scope="module")
def restricted(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OCIClient]:
    """A registry (SQLite) that allows non-distributable layers from one host only."""
    password = secrets.token_urlsafe(12)
    settings = Settings(
        data_dir=Path(tmp_path_factory.mktemp("restricted")),
        auth=AuthSettings(admin_password=SecretStr(password), create_project_on_push=True),
        limits=LimitSettings(nondistributable_urls=r"^https://layers\.example\.com/"),
    )
    prepare_installation(settings)
    with TestClient(create_app(settings)) as client:
        yield OCIClient(client, password)


def test_nondistributable_urls_follow_the_configured_pattern(restricted: OCIClient) -> None:
    repo = f"p{uuid.uuid4().hex[:12]}/app"
    absent = digest_of(secrets.token_bytes(32))
    manifest = restricted.image(repo)
    manifest["layers"].append(_nondistributable(absent, "https://elsewhere.example.com/x"))
    message = _refused(restricted, repo, manifest)
    assert message == ("layers[1].urls[0]: is not an allowed location for non-distributable layers")
    manifest["layers"][-1]["urls"] = [f"https://layers.example.com/{absent}"]
    assert restricted.put_manifest(repo, "allowed", manifest).status_code == 201
