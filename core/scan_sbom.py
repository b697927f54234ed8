"""SBOM documents of an image's inventory: CycloneDX 1.6 and SPDX 2.3, both JSON.

Built with ``cyclonedx-python-lib`` and ``spdx-tools`` and checked with their validators
before they leave this module (:class:`SbomInvalidError` otherwise). Each document
describes one image manifest (one platform): the image as the root component / package
and every package the analyzer found, with its purl and licenses. Identifiers derive
from the image digest, so the same inventory gives documents with the same ids.
"""

from __future__ import annotations

import io
import json
import re
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Final

from cyclonedx.factory.license import LicenseFactory
from cyclonedx.model.bom import Bom
from cyclonedx.model.component import Component, ComponentType
from cyclonedx.output.json import JsonV1Dot6
from cyclonedx.schema import SchemaVersion
from cyclonedx.validation.json import JsonStrictValidator
from packageurl import PackageURL
from spdx_tools.spdx.model.actor import Actor, ActorType
from spdx_tools.spdx.model.document import CreationInfo, Document
from spdx_tools.spdx.model.package import (
    ExternalPackageRef,
    ExternalPackageRefCategory,
    Package,
    PackagePurpose,
)
from spdx_tools.spdx.model.relationship import Relationship, RelationshipType
from spdx_tools.spdx.model.spdx_no_assertion import SpdxNoAssertion
from spdx_tools.spdx.validation.document_validator import validate_full_spdx_document
from spdx_tools.spdx.writer.json.json_writer import write_document_to_stream

from core.scan.packages import OS_TYPES
from core.scan_records import SCANNER_NAME, SCANNER_VERSION, Inventory

CYCLONEDX: Final = "application/vnd.cyclonedx+json"
SPDX: Final = "application/spdx+json"
#: The file name each document is stored under (``org.opencontainers.image.title``).
FILE_NAMES: Final = {CYCLONEDX: "sbom.cdx.json", SPDX: "sbom.spdx.json"}
_NAMESPACE: Final = uuid.UUID("6f3c8a52-9d5e-4a34-8d5b-3f1b2f4f0b11")


class SbomInvalidError(Exception):
    """A generated document failed its library's validation (a bug, never user input)."""


@dataclass(frozen=True, slots=True)
class SbomSubject:
    """The image a document describes."""

    repository: str
    digest: str
    created: datetime


def cyclonedx(subject: SbomSubject, inventory: Inventory) -> bytes:
    """The CycloneDX 1.6 JSON document of ``inventory``."""
    bom = Bom(serial_number=uuid.uuid5(_NAMESPACE, f"cdx:{subject.digest}"))
    bom.metadata.timestamp = subject.created
    root = Component(
        name=subject.repository,
        version=subject.digest,
        type=ComponentType.CONTAINER,
        bom_ref=subject.digest,
    )
    bom.metadata.component = root
    licenses = LicenseFactory()
    for index, package in enumerate(inventory.packages):
        bom.components.add(
            Component(
                name=package.name,
                version=package.version,
                type=ComponentType.LIBRARY,
                purl=PackageURL.from_string(package.purl),
                bom_ref=f"pkg-{index}",
                licenses=[licenses.make_from_string(text) for text in package.licenses if text],
            )
        )
    bom.register_dependency(root, list(bom.components))
    text = JsonV1Dot6(bom).output_as_string(indent=None)
    errors = JsonStrictValidator(SchemaVersion.V1_6).validate_str(text)
    if errors is not None:
        raise SbomInvalidError(f"CycloneDX document invalid: {errors}")
    return text.encode()


def _spdx_id(index: int) -> str:
    return f"SPDXRef-Package-{index}"


def _ref_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9.-]", "-", text)[:200] or "image"


def spdx(subject: SbomSubject, inventory: Inventory) -> bytes:
    """The SPDX 2.3 JSON document of ``inventory``."""
    name = f"{subject.repository}@{subject.digest}"
    namespace = uuid.uuid5(_NAMESPACE, f"spdx:{subject.digest}")
    creation = CreationInfo(
        spdx_version="SPDX-2.3",
        spdx_id="SPDXRef-DOCUMENT",
        name=name,
        document_namespace=f"https://moorage.invalid/spdx/{_ref_name(subject.repository)}-{namespace}",
        creators=[Actor(ActorType.TOOL, f"{SCANNER_NAME}-{SCANNER_VERSION}")],
        created=subject.created,
    )
    image = Package(
        spdx_id="SPDXRef-Image",
        name=subject.repository,
        download_location=SpdxNoAssertion(),
        version=subject.digest,
        files_analyzed=False,
        primary_package_purpose=PackagePurpose.CONTAINER,
    )
    packages = [image]
    relationships = [Relationship("SPDXRef-DOCUMENT", RelationshipType.DESCRIBES, "SPDXRef-Image")]
    for index, package in enumerate(inventory.packages):
        purpose = (
            PackagePurpose.OPERATING_SYSTEM if package.type in OS_TYPES else PackagePurpose.LIBRARY
        )
        packages.append(
            Package(
                spdx_id=_spdx_id(index),
                name=package.name,
                download_location=SpdxNoAssertion(),
                version=package.version,
                files_analyzed=False,
                external_references=[
                    ExternalPackageRef(
                        ExternalPackageRefCategory.PACKAGE_MANAGER, "purl", package.purl
                    )
                ],
                primary_package_purpose=purpose,
            )
        )
        relationships.append(
            Relationship("SPDXRef-Image", RelationshipType.CONTAINS, _spdx_id(index))
        )
    document = Document(creation, packages=packages, relationships=relationships)
    problems = validate_full_spdx_document(document)
    if problems:
        raise SbomInvalidError(f"SPDX document invalid: {problems[:3]}")
    stream = io.StringIO()
    write_document_to_stream(document, stream, validate=False)
    return json.dumps(json.loads(stream.getvalue()), separators=(",", ":")).encode()
