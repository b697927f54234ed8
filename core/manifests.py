"""Parsing and validating manifests and indexes.

The parser is strict where ambiguity could be exploited (duplicate keys, a body whose
``mediaType`` disagrees with its ``Content-Type``, both ``layers`` and ``manifests``) and
bounded where input size could hurt (descriptor count, nesting depth). The bytes stored
and served are always exactly the bytes received.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from core import mediatypes
from core.digests import Digest
from core.errors import OCIErrorCode, RegistryError

MAX_DESCRIPTORS = 10_000


@dataclass(frozen=True, slots=True)
class Descriptor:
    media_type: str
    digest: Digest
    size: int
    artifact_type: str | None = None


@dataclass(frozen=True, slots=True)
class ParsedManifest:
    """What the registry needs to know about a manifest it stores."""

    media_type: str
    artifact_type: str | None
    subject: Digest | None
    #: Blobs the manifest references (config and layers); empty for an index.
    blobs: tuple[Descriptor, ...]
    #: Manifests an index references; empty for an image manifest.
    children: tuple[Descriptor, ...]
    annotations: dict[str, str] = field(default_factory=dict)

    @property
    def is_index(self) -> bool:
        return self.media_type in mediatypes.INDEXES


def _invalid(message: str) -> RegistryError:
    return RegistryError(OCIErrorCode.MANIFEST_INVALID, message)


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise _invalid(f"duplicate key {key[:64]!r}")
        result[key] = value
    return result


def _load(raw: bytes) -> dict[str, Any]:
    if raw.startswith(b"\xef\xbb\xbf"):
        raise _invalid("manifest must not start with a byte order mark")
    try:
        text = raw.decode("utf-8")
        document = json.loads(text, object_pairs_hook=_no_duplicates)
    except RegistryError:
        raise
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise _invalid("manifest is not valid UTF-8 JSON") from exc
    if not isinstance(document, dict):
        raise _invalid("manifest must be a JSON object")
    return document


def _string(value: Any, what: str) -> str:
    if not isinstance(value, str) or not value or len(value) > 255:  # noqa: PLR2004
        raise _invalid(f"{what} must be a non-empty string")
    return value


def _descriptor(value: Any, what: str) -> Descriptor:
    if not isinstance(value, dict):
        raise _invalid(f"{what} must be a descriptor object")
    media_type = _string(value.get("mediaType"), f"{what}.mediaType")
    try:
        digest = Digest.parse(str(value.get("digest", "")))
    except RegistryError as exc:
        raise _invalid(f"{what}.digest is invalid") from exc
    size = value.get("size")
    if not isinstance(size, int) or isinstance(size, bool) or size < 0 or size > 2**53:
        raise _invalid(f"{what}.size must be a non-negative integer")
    artifact_type = value.get("artifactType")
    if artifact_type is not None:
        artifact_type = _string(artifact_type, f"{what}.artifactType")
    return Descriptor(media_type, digest, size, artifact_type)


def _descriptors(value: Any, what: str) -> tuple[Descriptor, ...]:
    if not isinstance(value, list):
        raise _invalid(f"{what} must be a list")
    if len(value) > MAX_DESCRIPTORS:
        raise _invalid(f"{what} holds more than {MAX_DESCRIPTORS} descriptors")
    return tuple(_descriptor(item, f"{what}[{i}]") for i, item in enumerate(value))


def _annotations(value: Any) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise _invalid("annotations must map strings to strings")
    return dict(value)


def _media_type(document: dict[str, Any], content_type: str | None) -> str:
    declared = document.get("mediaType")
    if declared is not None and not isinstance(declared, str):
        raise _invalid("mediaType must be a string")
    header = (content_type or "").split(";", 1)[0].strip() or None
    if header in {"application/json", "application/octet-stream"}:
        header = None
    if header and declared and header != declared:
        raise _invalid("mediaType does not match the Content-Type header")
    media_type = header or declared
    if media_type is None:
        media_type = mediatypes.OCI_INDEX if "manifests" in document else mediatypes.OCI_MANIFEST
    if media_type not in mediatypes.MANIFEST_TYPES:
        raise RegistryError(
            OCIErrorCode.MANIFEST_INVALID, f"unsupported manifest media type {media_type[:128]!r}"
        )
    return media_type


def parse_manifest(raw: bytes, content_type: str | None) -> ParsedManifest:
    """Validate ``raw`` as an image manifest or index and extract its references.

    Raises:
        RegistryError: ``MANIFEST_INVALID`` for anything malformed.
    """
    document = _load(raw)
    media_type = _media_type(document, content_type)
    if document.get("schemaVersion") != 2:  # noqa: PLR2004
        raise _invalid("schemaVersion must be 2")
    if "layers" in document and "manifests" in document:
        raise _invalid("a manifest cannot hold both layers and manifests")
    artifact_type = document.get("artifactType")
    if artifact_type is not None:
        artifact_type = _string(artifact_type, "artifactType")
    subject = None
    if document.get("subject") is not None:
        subject = _descriptor(document["subject"], "subject").digest
    annotations = _annotations(document.get("annotations"))
    if media_type in mediatypes.INDEXES:
        if "config" in document or "layers" in document:
            raise _invalid("an index cannot hold config or layers")
        children = _descriptors(document.get("manifests"), "manifests")
        return ParsedManifest(media_type, artifact_type, subject, (), children, annotations)
    if "manifests" in document:
        raise _invalid("an image manifest cannot hold manifests")
    config = _descriptor(document.get("config"), "config")
    layers = _descriptors(document.get("layers", []), "layers")
    # NOTE: the referrers API reports config.mediaType when artifactType is absent.
    artifact_type = artifact_type or config.media_type
    return ParsedManifest(media_type, artifact_type, subject, (config, *layers), (), annotations)
