"""The SBOM documents of an image and of an index: valid for their libraries, complete graphs.

The CycloneDX document's dependency entries are registered through an index of their
references (the library's own registration scans every entry); what a consumer relies on
is the graph that comes out: the root depends on every package, every package has its own
entry, an index's images each depend on their packages, and the library's strict schema
and SPDX's validator accept both documents.
"""

from __future__ import annotations

import gc
import json
import weakref
from datetime import UTC, datetime

from cyclonedx.model.bom import Bom
from cyclonedx.model.component import Component
from cyclonedx.schema import SchemaVersion
from cyclonedx.validation.json import JsonStrictValidator
from spdx_tools.spdx.parser.json import json_parser
from spdx_tools.spdx.validation.document_validator import validate_full_spdx_document

from core.scan.packages import OsRelease, Package, PackageType
from core.scan_records import Inventory
from core.scan_sbom import (
    SbomSubject,
    _DependencyIndex,
    cyclonedx,
    cyclonedx_index,
    spdx,
    spdx_index,
)

IMAGE = "sha256:" + "a" * 64
OTHER = "sha256:" + "b" * 64
INDEX = "sha256:" + "c" * 64


def inventory(digest: str, count: int, platform: str | None = None) -> Inventory:
    packages = tuple(
        Package(
            PackageType.NPM if n % 2 else PackageType.DEB,
            f"pkg-{n:04d}",
            f"1.{n % 3}.0",
            f"pkg:npm/pkg-{n:04d}@1.{n % 3}.0"
            if n % 2
            else f"pkg:deb/debian/pkg-{n:04d}@1.{n % 3}.0?arch=amd64&distro=debian-12",
            "somewhere",
            licenses=("MIT",) if n % 5 == 0 else (),
        )
        for n in range(count)
    )
    return Inventory(digest, platform, OsRelease("debian", "12"), packages)


def subject(digest: str) -> SbomSubject:
    return SbomSubject("library/app", digest, datetime(2026, 12, 1, tzinfo=UTC))


def dependency_graph(document: dict) -> dict[str, set[str]]:
    return {d["ref"]: set(d.get("dependsOn", [])) for d in document["dependencies"]}


def test_an_images_documents_hold_every_package_and_validate(tmp_path):
    found = inventory(IMAGE, 300)
    text = cyclonedx(subject(IMAGE), found)
    assert JsonStrictValidator(SchemaVersion.V1_6).validate_str(text.decode()) is None
    document = json.loads(text)
    refs = {c["bom-ref"] for c in document["components"]}
    assert len(refs) == 300
    assert {c["purl"] for c in document["components"]} == {p.purl for p in found.packages}
    graph = dependency_graph(document)
    assert graph == {IMAGE: refs} | {ref: set() for ref in refs}
    path = tmp_path / "image.spdx.json"
    path.write_bytes(spdx(subject(IMAGE), found))
    parsed = json_parser.parse_from_file(str(path))
    assert validate_full_spdx_document(parsed) == []
    assert len(parsed.packages) == 301
    assert cyclonedx(subject(IMAGE), found) == text


def test_an_index_document_nests_each_image_with_its_packages(tmp_path):
    images = [inventory(IMAGE, 40, "linux/amd64"), inventory(OTHER, 25, "linux/arm64")]
    text = cyclonedx_index(subject(INDEX), images)
    assert JsonStrictValidator(SchemaVersion.V1_6).validate_str(text.decode()) is None
    document = json.loads(text)
    graph = dependency_graph(document)
    assert graph[INDEX] == {IMAGE, OTHER}
    nested = {c["bom-ref"]: {n["bom-ref"] for n in c["components"]} for c in document["components"]}
    assert {ref: len(packages) for ref, packages in nested.items()} == {IMAGE: 40, OTHER: 25}
    assert graph[IMAGE] == nested[IMAGE]
    assert graph[OTHER] == nested[OTHER]
    assert all(graph[ref] == set() for ref in nested[IMAGE] | nested[OTHER])
    path = tmp_path / "index.spdx.json"
    path.write_bytes(spdx_index(subject(INDEX), images))
    assert validate_full_spdx_document(json_parser.parse_from_file(str(path))) == []


def test_a_rendered_documents_objects_are_freed_without_a_collection():
    gc.disable()
    try:
        bom = Bom()
        _DependencyIndex(bom)
        bom.register_dependency(Component(name="root", bom_ref="root"), [])
        freed = weakref.ref(bom)
        del bom
        assert freed() is None
    finally:
        gc.enable()
