"""SBOM documents of an image's inventory: CycloneDX 1.6 and SPDX 2.3, both JSON.

Built with ``cyclonedx-python-lib`` and ``spdx-tools``. Every document shape is checked
with those libraries' own validators by the tests (images, indexes, SBOMs served to
scanner clients), not on each scan: validating a generated document cost more than
building it (CycloneDX's schema check compares every pair of components), the same code
builds every document, and a scan's inventory is the only input. An image's document
describes one image manifest (one platform): the image as the root component / package
and every package the analyzer found, with its purl and licenses. An index's document
(:func:`cyclonedx_index`, :func:`spdx_index`) describes the index: the index as the
root, each platform image as a container component (CycloneDX: nested, its packages
nested in it; SPDX: a package the index ``CONTAINS``, which ``CONTAINS`` its packages),
with its platform and digest. Identifiers derive from the digests, so the same
inventories give documents with the same ids.
"""

from __future__ import annotations

import functools
import gc
import json
import re
import uuid
import weakref
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Final, ParamSpec

from cyclonedx.contrib.license.factories import LicenseFactory
from cyclonedx.model import Property
from cyclonedx.model.bom import Bom
from cyclonedx.model.bom_ref import BomRef
from cyclonedx.model.component import Component, ComponentType
from cyclonedx.model.dependency import Dependable, Dependency
from cyclonedx.output.json import JsonV1Dot6
from packageurl import PackageURL
from spdx_tools.spdx.jsonschema.document_converter import DocumentConverter
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

from core.sbom_formats import CYCLONEDX, FILE_NAMES, SPDX, SbomSubject
from core.scan.packages import OS_TYPES
from core.scan_records import SCANNER_NAME, SCANNER_VERSION, Inventory

__all__ = [
    "CYCLONEDX",
    "FILE_NAMES",
    "IMAGE_BUILDERS",
    "INDEX_BUILDERS",
    "SPDX",
    "SbomSubject",
    "cyclonedx",
    "cyclonedx_index",
    "sbom_document",
    "spdx",
    "spdx_index",
]

_P = ParamSpec("_P")
_NAMESPACE: Final = uuid.UUID("6f3c8a52-9d5e-4a34-8d5b-3f1b2f4f0b11")


#: The CycloneDX property naming an index member's platform (``os/arch[/variant]``).
PLATFORM_PROPERTY: Final = "moorage:image:platform"


class _DependencyIndex:
    """Finds a :class:`Bom`'s dependency entry by its reference instead of by a scan.

    ``Bom.register_dependency`` looks for the target's entry by scanning every entry, and
    the JSON output registers every component once more (its ``validate``): quadratic in
    the components, most of a 1,000-package document's time. This index takes that method's
    place on one ``Bom`` instance (the library serializes by the instance's class, so a
    subclass would not render): the same entries in the same set, found through a dict.
    It holds its ``Bom`` weakly, so the two make no reference cycle (a document's
    thousands of objects are freed as soon as it is rendered, not by a later collection).
    """

    def __init__(self, bom: Bom) -> None:
        self._bom = weakref.ref(bom)
        self._by_ref: dict[BomRef, Dependency] = {}
        self._indexed: object = None
        bom.register_dependency = self.register  # type: ignore[method-assign]

    def _owner(self) -> Bom:
        bom = self._bom()
        if bom is None:
            raise ReferenceError("the BOM of this dependency index is gone")
        return bom

    def _entries(self) -> dict[BomRef, Dependency]:
        entries = self._owner().dependencies
        if len(self._by_ref) != len(entries) or entries is not self._indexed:
            # NOTE: rebuilt when the entries were replaced (the setter) or added elsewhere
            self._by_ref = {entry.ref: entry for entry in entries}
            self._indexed = entries
        return self._by_ref

    def register(self, target: Dependable, depends_on: Iterable[Dependable] | None = None) -> None:
        """What ``Bom.register_dependency`` does: an entry for ``target``, one per dependent."""
        targets = list(depends_on or ())
        by_ref = self._entries()
        entry = by_ref.get(target.bom_ref)
        if entry is None:
            entry = Dependency(target.bom_ref, [Dependency(t.bom_ref) for t in targets])
            self._owner().dependencies.add(entry)
            by_ref[target.bom_ref] = entry
        elif targets:
            entry.dependencies.update(Dependency(t.bom_ref) for t in targets)
        for dependent in targets:
            self.register(dependent)


def _collector_paused(build: Callable[_P, bytes]) -> Callable[_P, bytes]:
    """Run a document builder with the cyclic garbage collector paused.

    A 1,000-package CycloneDX document is some 190,000 objects while it is built, none of
    them in a reference cycle (so reference counting frees them all); the collections
    their allocation triggers only walk the process's heap, a fifth of the document's
    time in a worker's heap. Collections resume after the document, and a collector some
    other code paused stays paused.
    """

    @functools.wraps(build)
    def run(*args: _P.args, **kwargs: _P.kwargs) -> bytes:
        if not gc.isenabled():
            return build(*args, **kwargs)
        gc.disable()
        try:
            return build(*args, **kwargs)
        finally:
            gc.enable()

    return run


def _components(inventory: Inventory, prefix: str) -> list[Component]:
    licenses = LicenseFactory()
    return [
        Component(
            name=package.name,
            version=package.version,
            type=ComponentType.LIBRARY,
            purl=PackageURL.from_string(package.purl),
            bom_ref=f"{prefix}pkg-{index}",
            licenses=[licenses.make_from_string(text) for text in package.licenses if text],
        )
        for index, package in enumerate(inventory.packages)
    ]


def _cdx_bom(subject: SbomSubject) -> tuple[Bom, Component]:
    bom = Bom(serial_number=uuid.uuid5(_NAMESPACE, f"cdx:{subject.digest}"))
    _DependencyIndex(bom)
    bom.metadata.timestamp = subject.created
    root = Component(
        name=subject.repository,
        version=subject.digest,
        type=ComponentType.CONTAINER,
        bom_ref=subject.digest,
    )
    bom.metadata.component = root
    return bom, root


def _cdx_text(bom: Bom) -> bytes:
    return JsonV1Dot6(bom).output_as_string(indent=None).encode()


@_collector_paused
def cyclonedx(subject: SbomSubject, inventory: Inventory) -> bytes:
    """The CycloneDX 1.6 JSON document of ``inventory``."""
    bom, root = _cdx_bom(subject)
    for component in _components(inventory, ""):
        bom.components.add(component)
    bom.register_dependency(root, list(bom.components))
    return _cdx_text(bom)


@_collector_paused
def cyclonedx_index(subject: SbomSubject, images: Sequence[Inventory]) -> bytes:
    """The CycloneDX 1.6 JSON document of an index whose images have ``images``."""
    bom, root = _cdx_bom(subject)
    for number, inventory in enumerate(images):
        packages = _components(inventory, f"img-{number}-")
        image = Component(
            name=subject.repository,
            version=inventory.digest,
            type=ComponentType.CONTAINER,
            bom_ref=inventory.digest,
            description=f"image for {inventory.platform}" if inventory.platform else None,
            properties=[Property(name=PLATFORM_PROPERTY, value=inventory.platform)]
            if inventory.platform
            else [],
            components=packages,
        )
        bom.components.add(image)
        bom.register_dependency(image, packages)
    bom.register_dependency(root, list(bom.components))
    return _cdx_text(bom)


def _spdx_id(index: int) -> str:
    return f"SPDXRef-Package-{index}"


def _ref_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9.-]", "-", text)[:200] or "image"


def _spdx_packages(
    inventory: Inventory, owner: str, prefix: str
) -> tuple[list[Package], list[Relationship]]:
    packages, relationships = [], []
    for index, package in enumerate(inventory.packages):
        purpose = (
            PackagePurpose.OPERATING_SYSTEM if package.type in OS_TYPES else PackagePurpose.LIBRARY
        )
        spdx_id = f"{prefix}{_spdx_id(index)}"
        packages.append(
            Package(
                spdx_id=spdx_id,
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
        relationships.append(Relationship(owner, RelationshipType.CONTAINS, spdx_id))
    return packages, relationships


def _spdx_container(
    spdx_id: str,
    name: str,
    digest: str,
    comment: str | None = None,
    summary: str | None = None,
) -> Package:
    """An image or index as an SPDX package (its digest as the version)."""
    return Package(
        spdx_id=spdx_id,
        name=name,
        download_location=SpdxNoAssertion(),
        version=digest,
        files_analyzed=False,
        primary_package_purpose=PackagePurpose.CONTAINER,
        summary=summary,
        comment=comment,
    )


def _spdx_creation(subject: SbomSubject) -> CreationInfo:
    namespace = uuid.uuid5(_NAMESPACE, f"spdx:{subject.digest}")
    return CreationInfo(
        spdx_version="SPDX-2.3",
        spdx_id="SPDXRef-DOCUMENT",
        name=f"{subject.repository}@{subject.digest}",
        document_namespace=f"https://moorage.invalid/spdx/{_ref_name(subject.repository)}-{namespace}",
        creators=[Actor(ActorType.TOOL, f"{SCANNER_NAME}-{SCANNER_VERSION}")],
        created=subject.created,
    )


def _spdx_text(document: Document) -> bytes:
    # NOTE: the library's JSON converter, as its writer uses it; the writer would first
    # deep-copy the document to drop repeated list items (these documents have none: one
    # creator, one purl per package) and indent the text
    converter = DocumentConverter()  # type: ignore[no-untyped-call]
    return json.dumps(converter.convert(document), separators=(",", ":")).encode()


@_collector_paused
def spdx_index(subject: SbomSubject, images: Sequence[Inventory]) -> bytes:
    """The SPDX 2.3 JSON document of an index whose images have ``images``."""
    root = _spdx_container("SPDXRef-Index", subject.repository, subject.digest, "OCI image index")
    packages = [root]
    relationships = [Relationship("SPDXRef-DOCUMENT", RelationshipType.DESCRIBES, "SPDXRef-Index")]
    for number, inventory in enumerate(images):
        image_id = f"SPDXRef-Image-{number}"
        platform = inventory.platform
        packages.append(
            _spdx_container(
                image_id,
                subject.repository,
                inventory.digest,
                f"platform: {platform}" if platform else None,
                f"image for {platform}" if platform else None,
            )
        )
        relationships.append(Relationship("SPDXRef-Index", RelationshipType.CONTAINS, image_id))
        found, contains = _spdx_packages(inventory, image_id, f"SPDXRef-Image-{number}-")
        packages += found
        relationships += contains
    return _spdx_text(
        Document(_spdx_creation(subject), packages=packages, relationships=relationships)
    )


@_collector_paused
def spdx(subject: SbomSubject, inventory: Inventory) -> bytes:
    """The SPDX 2.3 JSON document of ``inventory``."""
    image = _spdx_container("SPDXRef-Image", subject.repository, subject.digest)
    found, contains = _spdx_packages(inventory, "SPDXRef-Image", "")
    relationships = [Relationship("SPDXRef-DOCUMENT", RelationshipType.DESCRIBES, "SPDXRef-Image")]
    return _spdx_text(
        Document(
            _spdx_creation(subject),
            packages=[image, *found],
            relationships=relationships + contains,
        )
    )


#: The document builders of one image and of an index, by media type.
IMAGE_BUILDERS: Final = {CYCLONEDX: cyclonedx, SPDX: spdx}
INDEX_BUILDERS: Final = {CYCLONEDX: cyclonedx_index, SPDX: spdx_index}


def sbom_document(
    media_type: str, subject: SbomSubject, images: Sequence[Inventory]
) -> dict[str, Any]:
    """The ``media_type`` document of ``subject``: its image's, or (an index) the index's."""
    if len(images) == 1 and images[0].digest == subject.digest:
        found: dict[str, Any] = json.loads(IMAGE_BUILDERS[media_type](subject, images[0]))
    else:
        found = json.loads(INDEX_BUILDERS[media_type](subject, images))
    return found
