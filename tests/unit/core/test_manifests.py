"""The manifest parser."""

from __future__ import annotations

import json

import pytest

from core import mediatypes
from core.errors import OCIErrorCode, RegistryError
from core.manifests import ManifestRules, check_blobs, check_children, parse_manifest
from core.records import StoredRef

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


ND = "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"
OTHER = "sha256:" + "d" * 64


def _with_layers(*layers: dict[str, object]) -> bytes:
    body = json.loads(_manifest())
    body["layers"] = list(layers)
    return json.dumps(body).encode()


def test_sizes_are_checked_against_the_stored_blobs() -> None:
    parsed = parse_manifest(_manifest(), None)
    stored = {DIGEST: StoredRef(7, 2)}
    with pytest.raises(RegistryError) as caught:
        check_blobs(parsed, stored, ManifestRules())
    assert caught.value.message == "layers[0].size: 9 does not match the stored blob's size 2"
    assert caught.value.detail == {"field": "layers[0].size"}


def test_each_stored_blob_id_once() -> None:
    layer = {"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": DIGEST, "size": 2}
    parsed = parse_manifest(_with_layers(layer, layer), None)
    assert check_blobs(parsed, {DIGEST: StoredRef(7, 2)}, ManifestRules()) == (7,)


def test_absent_nondistributable_layers_follow_the_rules() -> None:
    layer = {"mediaType": ND, "digest": OTHER, "size": 5, "urls": ["https://a.example/x"]}
    parsed = parse_manifest(_with_layers(layer), None)
    stored = {DIGEST: StoredRef(7, 2)}
    assert check_blobs(parsed, stored, ManifestRules()) == (7,)
    assert check_blobs(parsed, stored, ManifestRules.from_pattern(r"^https://a\.example/")) == (7,)
    for rules in (ManifestRules.from_pattern(""), ManifestRules.from_pattern("^https://b")):
        with pytest.raises(RegistryError) as caught:
            check_blobs(parsed, stored, rules)
        assert caught.value.code is OCIErrorCode.MANIFEST_INVALID
        assert caught.value.message.startswith("layers[0].urls[0]: is not an allowed location")
    # A stored non-distributable layer is checked like any other.
    with pytest.raises(RegistryError):
        check_blobs(parsed, {**stored, OTHER: StoredRef(8, 6)}, ManifestRules())


def test_children_must_be_stored_with_their_size() -> None:
    body = {
        "schemaVersion": 2,
        "manifests": [{"mediaType": mediatypes.OCI_MANIFEST, "digest": DIGEST, "size": 1}],
    }
    parsed = parse_manifest(json.dumps(body).encode(), None)
    with pytest.raises(RegistryError) as caught:
        check_children(parsed, {})
    assert caught.value.code is OCIErrorCode.MANIFEST_BLOB_UNKNOWN
    with pytest.raises(RegistryError) as caught:
        check_children(parsed, {DIGEST: StoredRef(3, 527)})
    assert caught.value.message == (
        "manifests[0].size: 1 does not match the stored manifest's size 527"
    )
    assert check_children(parsed, {DIGEST: StoredRef(3, 1)}) == (3,)


def test_a_bad_url_pattern_names_the_setting() -> None:
    with pytest.raises(ValueError, match=r"limits\.nondistributable_urls"):
        ManifestRules.from_pattern("(")


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b'{"a": ' + b"[" * 10_000 + b"]" * 10_000 + b"}", "manifest nesting too deep"),
        (_manifest(schemaVersion=2.0), "schemaVersion: must be an integer, not a number"),
        (_manifest(mediaType=None), "mediaType: must be a string"),
        (
            json.dumps({"schemaVersion": 2, "manifests": [], "mediaType": None}).encode(),
            "mediaType: must be a string",
        ),
    ],
)
def test_messages_name_the_field(body: bytes, message: str) -> None:
    with pytest.raises(RegistryError) as caught:
        parse_manifest(body, None)
    assert caught.value.message == message
