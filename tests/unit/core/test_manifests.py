"""The manifest parser."""

from __future__ import annotations

import json

import pytest

from core import mediatypes
from core.errors import OCIErrorCode, RegistryError
from core.manifests import parse_manifest

DIGEST = "sha256:" + "c" * 64


def _manifest(**extra: object) -> bytes:
    body = {
        "schemaVersion": 2,
        "mediaType": mediatypes.OCI_MANIFEST,
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": DIGEST,
            "size": 2,
        },
        "layers": [
            {"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": DIGEST, "size": 9}
        ],
        **extra,
    }
    return json.dumps(body).encode()


def test_image_manifest() -> None:
    parsed = parse_manifest(_manifest(), mediatypes.OCI_MANIFEST)
    assert parsed.media_type == mediatypes.OCI_MANIFEST
    assert parsed.artifact_type == "application/vnd.oci.image.config.v1+json"
    assert [str(d.digest) for d in parsed.blobs] == [DIGEST, DIGEST]
    assert not parsed.is_index


def test_artifact_with_subject() -> None:
    subject = {"mediaType": mediatypes.OCI_MANIFEST, "digest": DIGEST, "size": 5}
    parsed = parse_manifest(
        _manifest(artifactType="application/x-sbom", subject=subject, annotations={"a": "b"}), None
    )
    assert parsed.artifact_type == "application/x-sbom"
    assert str(parsed.subject) == DIGEST
    assert parsed.annotations == {"a": "b"}


def test_index_without_content_type() -> None:
    body = {
        "schemaVersion": 2,
        "manifests": [{"mediaType": mediatypes.OCI_MANIFEST, "digest": DIGEST, "size": 3}],
    }
    parsed = parse_manifest(json.dumps(body).encode(), "application/json")
    assert parsed.is_index
    assert parsed.artifact_type is None
    assert [str(d.digest) for d in parsed.children] == [DIGEST]


@pytest.mark.parametrize(
    ("payload", "content_type"),
    [
        (_manifest(), mediatypes.OCI_INDEX),
        (
            _manifest().replace(b'"schemaVersion": 2', b'"schemaVersion": 2, "schemaVersion": 2'),
            None,
        ),
        (_manifest(manifests=[]), None),
        (b"\xef\xbb\xbf" + _manifest(), None),
        (_manifest(config={"mediaType": "x", "digest": "sha256:zz", "size": 1}), None),
        (_manifest(config={"mediaType": "x", "digest": DIGEST, "size": True}), None),
        (_manifest(annotations={"a": 1}), None),
        (b"[" * 100_000, None),
        (b"{}", "text/plain"),
    ],
)
def test_rejected(payload: bytes, content_type: str | None) -> None:
    with pytest.raises(RegistryError) as caught:
        parse_manifest(payload, content_type)
    assert caught.value.code is OCIErrorCode.MANIFEST_INVALID
