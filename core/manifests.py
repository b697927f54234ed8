"""Parsing and validating manifests and indexes.

The parser is strict where ambiguity could be exploited (duplicate keys, a body whose
``mediaType`` disagrees with its ``Content-Type``, both ``layers`` and ``manifests``) and
bounded where input size could hurt (descriptor count, nesting depth). Documents of the
known media types must satisfy their JSON schema (``core.manifest_schema``), and a
descriptor's embedded ``data`` must be valid base64 of exactly its digest and size. The
bytes stored and served are always exactly the bytes received.

What needs the stored content (descriptor sizes against stored blobs and manifests, and
which non-distributable layers may be absent) is decided by :func:`check_blobs` and
:func:`check_children` on the rows one lookup per kind finds.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from core import manifest_schema, mediatypes
from core.digests import Digest
from core.errors import OCIErrorCode, RegistryError
from core.records import StoredRef

MAX_DESCRIPTORS = manifest_schema.MAX_DESCRIPTORS
#: Standard base64 with padding (RFC 4648 section 4), as the image-spec requires.
_BASE64 = re.compile(r"(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?\Z")
#: URLs a non-distributable layer the registry does not hold may point to, by default.
DEFAULT_NONDISTRIBUTABLE_URLS = r"^https?://"


@dataclass(frozen=True, slots=True)
class Descriptor:
    media_type: str
    digest: Digest
    size: int
    artifact_type: str | None = None
    #: Where the descriptor is in the document (``config``, ``layers[2]``, ...).
    where: str = ""
    urls: tuple[str, ...] = ()
    #: A non-distributable layer: the registry need not hold its content.
    nondistributable: bool = False


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


@dataclass(frozen=True, slots=True)
class ManifestRules:
    """Deployment choices of what manifests the registry accepts.

    ``nondistributable_urls``: a regular expression every URL of a non-distributable
    layer the registry does not hold must match (searched, so anchor it); ``None``
    refuses such layers unless their blob is stored.
    """

    nondistributable_urls: re.Pattern[str] | None = re.compile(DEFAULT_NONDISTRIBUTABLE_URLS)

    @classmethod
    def from_pattern(cls, pattern: str) -> ManifestRules:
        """Rules from a configured pattern (empty: no absent layers are accepted).

        Raises:
            ValueError: ``pattern`` is not a regular expression.
        """
        try:
            return cls(re.compile(pattern) if pattern else None)
        except re.error as exc:
            raise ValueError(f"limits.nondistributable_urls: {exc}") from exc


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
    except UnicodeDecodeError as exc:
        raise _invalid("manifest is not valid UTF-8") from exc
    try:
        document = json.loads(text, object_pairs_hook=_no_duplicates)
    except RegistryError:
        raise
    except RecursionError as exc:
        raise _invalid("manifest nesting too deep") from exc
    except ValueError as exc:
        raise _invalid("manifest is not valid UTF-8 JSON") from exc
    if not isinstance(document, dict):
        raise _invalid("manifest must be a JSON object")
    return document


def _data(value: dict[str, Any], where: str, digest: Digest, size: int) -> None:
    """Check a descriptor's embedded ``data``: base64 of exactly its digest and size."""
    text = value["data"]
    if not _BASE64.match(text):
        raise manifest_schema.invalid(f"{where}.data", "is not valid base64")
    try:
        content = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise manifest_schema.invalid(f"{where}.data", "is not valid base64") from exc
    if len(content) != size:
        raise manifest_schema.invalid(
            f"{where}.data", f"holds {len(content)} bytes, but {where}.size is {size}"
        )
    if Digest.of(content, digest.algorithm) != digest:
        raise manifest_schema.invalid(f"{where}.data", f"does not match {where}.digest")


def _descriptor(value: dict[str, Any], where: str, *, layer: bool = False) -> Descriptor:
    """A descriptor the schema check has accepted, with its ``data`` checked."""
    digest = manifest_schema.parse_digest(value["digest"])
    size: int = value["size"]
    if "data" in value:
        _data(value, where, digest, size)
    media_type: str = value["mediaType"]
    return Descriptor(
        media_type,
        digest,
        size,
        value.get("artifactType"),
        where,
        tuple(value.get("urls", ())),
        layer and media_type in mediatypes.NONDISTRIBUTABLE_LAYERS,
    )


def _descriptors(values: list[Any], key: str, *, layers: bool = False) -> tuple[Descriptor, ...]:
    return tuple(_descriptor(item, f"{key}[{i}]", layer=layers) for i, item in enumerate(values))


def _media_type(document: dict[str, Any], content_type: str | None) -> str:
    declared = document.get("mediaType")
    if "mediaType" in document and not isinstance(declared, str):
        raise manifest_schema.invalid("mediaType", "must be a string")
    header = (content_type or "").split(";", 1)[0].strip() or None
    if header in {"application/json", "application/octet-stream"}:
        header = None
    if header and declared and header != declared:
        raise manifest_schema.invalid("mediaType", "does not match the Content-Type header")
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
        RegistryError: ``MANIFEST_INVALID`` for anything malformed, naming the field.
    """
    document = _load(raw)
    media_type = _media_type(document, content_type)
    if "layers" in document and "manifests" in document:
        raise _invalid("a manifest cannot hold both layers and manifests")
    manifest_schema.check(document, media_type)
    artifact_type = document.get("artifactType")
    subject = None
    if "subject" in document:
        subject = _descriptor(document["subject"], "subject").digest
    annotations = dict(document.get("annotations", {}))
    if media_type in mediatypes.INDEXES:
        children = _descriptors(document["manifests"], "manifests")
        return ParsedManifest(media_type, artifact_type, subject, (), children, annotations)
    config = _descriptor(document["config"], "config")
    layers = _descriptors(document["layers"], "layers", layers=True)
    # NOTE: the referrers API reports config.mediaType when artifactType is absent.
    artifact_type = artifact_type or config.media_type
    return ParsedManifest(media_type, artifact_type, subject, (config, *layers), (), annotations)


def _url_refusal(descriptor: Descriptor, rules: ManifestRules) -> RegistryError | None:
    """Why an absent non-distributable layer cannot be accepted, or ``None`` if it can."""
    if not descriptor.urls:
        return RegistryError(
            OCIErrorCode.MANIFEST_BLOB_UNKNOWN,
            f"{descriptor.where}: non-distributable layer is not stored and lists no urls",
        ).with_detail({"digests": [str(descriptor.digest)], "field": descriptor.where})
    for i, url in enumerate(descriptor.urls):
        where = f"{descriptor.where}.urls[{i}]"
        parts = urlsplit(url)
        if parts.scheme not in {"http", "https"} or not parts.netloc or parts.fragment:
            return manifest_schema.invalid(where, "must be an http or https URL without fragment")
        pattern = rules.nondistributable_urls
        if pattern is None or pattern.search(url) is None:
            return manifest_schema.invalid(
                where, "is not an allowed location for non-distributable layers"
            )
    return None


def check_blobs(
    parsed: ParsedManifest, stored: dict[str, StoredRef], rules: ManifestRules
) -> tuple[int, ...]:
    """The ids of the blobs ``parsed`` references, after checking them against ``stored``.

    ``stored`` maps digests to the blobs the repository holds (one lookup for all of the
    manifest's blob digests). Every descriptor's ``size`` must equal its stored blob's
    size; a non-distributable layer may be absent when it lists ``urls`` that ``rules``
    allow. Blob ids are returned once each.

    Raises:
        RegistryError: ``MANIFEST_INVALID`` naming the descriptor whose size or URL is
            wrong; ``MANIFEST_BLOB_UNKNOWN`` listing blobs the repository does not hold.
    """
    missing: list[str] = []
    ids: dict[int, None] = {}
    for descriptor in parsed.blobs:
        found = stored.get(str(descriptor.digest))
        if found is None:
            if descriptor.nondistributable:
                refusal = _url_refusal(descriptor, rules)
                if refusal is None:
                    continue
                if refusal.code is OCIErrorCode.MANIFEST_INVALID:
                    raise refusal
            missing.append(str(descriptor.digest))
            continue
        if found.size != descriptor.size:
            raise manifest_schema.invalid(
                f"{descriptor.where}.size",
                f"{descriptor.size} does not match the stored blob's size {found.size}",
            )
        ids[found.id] = None
    if missing:
        raise RegistryError(
            OCIErrorCode.MANIFEST_BLOB_UNKNOWN, "manifest references blobs that are not stored"
        ).with_detail({"digests": sorted(set(missing))[:20]})
    return tuple(ids)


def check_children(parsed: ParsedManifest, stored: dict[str, StoredRef]) -> tuple[int, ...]:
    """The ids of the manifests an index lists, each stored with the size it states.

    Raises:
        RegistryError: ``MANIFEST_BLOB_UNKNOWN`` listing children the repository does not
            hold; ``MANIFEST_INVALID`` naming a child whose ``size`` is not the stored one.
    """
    missing = sorted({str(d.digest) for d in parsed.children} - stored.keys())
    if missing:
        raise RegistryError(
            OCIErrorCode.MANIFEST_BLOB_UNKNOWN, "index references unknown manifests"
        ).with_detail({"digests": missing[:20]})
    ids: dict[int, None] = {}
    for descriptor in parsed.children:
        found = stored[str(descriptor.digest)]
        if found.size != descriptor.size:
            raise manifest_schema.invalid(
                f"{descriptor.where}.size",
                f"{descriptor.size} does not match the stored manifest's size {found.size}",
            )
        ids[found.id] = None
    return tuple(ids)
