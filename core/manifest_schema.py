"""The JSON schemas of the manifest formats the registry understands, as checks.

Written from the OCI image-spec (v1.1: ``image-manifest-schema.json``,
``image-index-schema.json``, ``content-descriptor.json``, ``defs-descriptor.json`` and the
platform object of the index) and Docker's image manifest schema 2 (manifest and
manifest list). Each check refuses a document the schema does not allow with
``MANIFEST_INVALID`` and a message ``<field>: <rule>`` naming the first offending field
(e.g. ``layers[2].size: must be an integer``); the field is also in the error's detail.

Fields these schemas do not define are allowed (the spec lets documents carry them); the
checks only read the document, never change it.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any
from urllib.parse import urlsplit

from core import mediatypes
from core.digests import Digest
from core.errors import OCIErrorCode, RegistryError

#: RFC 6838 ``type/subtype`` as the image-spec's ``mediaType`` definition spells it.
MEDIA_TYPE = re.compile(
    r"^[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}\Z"
)
#: The largest ``size`` a descriptor may state (the schema's int64, non-negative).
MAX_SIZE = 2**63 - 1
#: Descriptors one manifest or index may list.
MAX_DESCRIPTORS = 10_000
_MAX_TEXT = 4096


def invalid(where: str, rule: str) -> RegistryError:
    """``MANIFEST_INVALID`` for the field ``where`` breaking ``rule``."""
    return RegistryError(OCIErrorCode.MANIFEST_INVALID, f"{where}: {rule}").with_detail(
        {"field": where}
    )


def _at(prefix: str, key: str) -> str:
    return f"{prefix}.{key}" if prefix else key


def _type_name(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"


def _object(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise invalid(where, f"must be an object, not {_type_name(value)}")
    return value


def _required(document: dict[str, Any], key: str, prefix: str) -> Any:
    if key not in document:
        raise invalid(_at(prefix, key), "is required")
    return document[key]


def _string(value: Any, where: str, *, non_empty: bool = False) -> str:
    if not isinstance(value, str):
        raise invalid(where, f"must be a string, not {_type_name(value)}")
    if non_empty and not value:
        raise invalid(where, "must not be empty")
    return value


def _media_type(value: Any, where: str) -> str:
    text = _string(value, where)
    if not MEDIA_TYPE.match(text):
        raise invalid(where, f"{text[:128]!r} is not a media type (type/subtype)")
    return text


def _integer(value: Any, where: str, minimum: int, maximum: int) -> int:
    # NOTE: JSON ``2.0`` parses as a float and ``true`` as a bool: neither is an integer.
    if not isinstance(value, int) or isinstance(value, bool):
        raise invalid(where, f"must be an integer, not {_type_name(value)}")
    if value < minimum or value > maximum:
        if minimum == maximum:
            raise invalid(where, f"must be {minimum}")
        raise invalid(where, f"must be between {minimum} and {maximum}")
    return value


def _string_map(value: Any, where: str) -> dict[str, str]:
    document = _object(value, where)
    for key, item in document.items():
        _string(item, f"{where}[{key[:64]!r}]")
    return document


def _array(value: Any, where: str) -> list[Any]:
    if not isinstance(value, list):
        raise invalid(where, f"must be an array, not {_type_name(value)}")
    if len(value) > MAX_DESCRIPTORS:
        raise invalid(where, f"holds more than {MAX_DESCRIPTORS} entries")
    return value


def _strings(value: Any, where: str) -> list[str]:
    items = _array(value, where)
    for i, item in enumerate(items):
        _string(item, f"{where}[{i}]")
    return items


def _uri(value: Any, where: str) -> str:
    text = _string(value, where, non_empty=True)
    if len(text) > _MAX_TEXT or not urlsplit(text).scheme:
        raise invalid(where, "must be an absolute URI")
    return text


@lru_cache(maxsize=4096)
def parse_digest(text: str) -> Digest:
    """``Digest.parse``, remembered (a push checks, then reads, each descriptor's digest)."""
    return Digest.parse(text)


def _digest(value: Any, where: str) -> Digest:
    text = _string(value, where)
    try:
        return parse_digest(text)
    except RegistryError as exc:
        raise invalid(where, exc.message) from exc


def schema_version(document: dict[str, Any]) -> None:
    """``schemaVersion``: required, the integer 2."""
    _integer(_required(document, "schemaVersion", ""), "schemaVersion", 2, 2)


def platform(value: Any, where: str) -> None:
    """The image-spec platform object (also Docker's manifest list platform)."""
    document = _object(value, where)
    for key in ("architecture", "os"):
        _string(_required(document, key, where), _at(where, key), non_empty=True)
    for key in ("os.version", "variant"):
        if key in document:
            _string(document[key], _at(where, key))
    for key in ("os.features", "features"):
        if key in document:
            _strings(document[key], _at(where, key))


def descriptor(value: Any, where: str) -> dict[str, Any]:
    """An OCI content descriptor (Docker's descriptors are a subset of it)."""
    document = _object(value, where)
    _media_type(_required(document, "mediaType", where), _at(where, "mediaType"))
    _digest(_required(document, "digest", where), _at(where, "digest"))
    _integer(_required(document, "size", where), _at(where, "size"), 0, MAX_SIZE)
    if "urls" in document:
        for i, url in enumerate(_array(document["urls"], _at(where, "urls"))):
            _uri(url, f"{where}.urls[{i}]")
    if "annotations" in document:
        _string_map(document["annotations"], _at(where, "annotations"))
    if "data" in document:
        _string(document["data"], _at(where, "data"))
    if "artifactType" in document:
        _media_type(document["artifactType"], _at(where, "artifactType"))
    if "platform" in document:
        platform(document["platform"], _at(where, "platform"))
    return document


def _descriptors(document: dict[str, Any], key: str) -> list[Any]:
    items = _array(_required(document, key, ""), key)
    for i, item in enumerate(items):
        descriptor(item, f"{key}[{i}]")
    return items


def _common(document: dict[str, Any], media_type: str) -> None:
    schema_version(document)
    if media_type in mediatypes.DOCKER_TYPES:
        declared = _required(document, "mediaType", "")
        if declared != media_type:
            raise invalid("mediaType", f"must be {media_type!r} in a Docker schema 2 document")
    elif "mediaType" in document:
        _media_type(document["mediaType"], "mediaType")
    if "artifactType" in document:
        _media_type(document["artifactType"], "artifactType")
    if "subject" in document:
        descriptor(document["subject"], "subject")
    if "annotations" in document:
        _string_map(document["annotations"], "annotations")


def image_manifest(document: dict[str, Any], media_type: str) -> None:
    """An OCI image manifest or a Docker schema 2 manifest: ``config`` and ``layers``."""
    _common(document, media_type)
    if "manifests" in document:
        raise invalid("manifests", "is not allowed in an image manifest")
    descriptor(_required(document, "config", ""), "config")
    _descriptors(document, "layers")


def index(document: dict[str, Any], media_type: str) -> None:
    """An OCI image index or a Docker manifest list: ``manifests``."""
    _common(document, media_type)
    for key in ("config", "layers"):
        if key in document:
            raise invalid(key, "is not allowed in an index")
    _descriptors(document, "manifests")


def check(document: dict[str, Any], media_type: str) -> None:
    """Check ``document`` against the schema of ``media_type`` (a manifest media type).

    Raises:
        RegistryError: ``MANIFEST_INVALID`` naming the first field the schema refuses.
    """
    if media_type in mediatypes.INDEXES:
        index(document, media_type)
    else:
        image_manifest(document, media_type)
