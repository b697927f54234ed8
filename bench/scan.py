"""Scanning: SBOM generation against Syft, a large image, OSV import, re-match of stored SBOMs.

``python -m bench.scan [--packages 1000] [--mb 500] [--records 20000] [--sboms 10000]
[--database sqlite|postgres] [--only sbom|large]``
synthesizes images (a Debian 12 os-release, a dpkg ``status`` database, Python
``dist-info`` and npm ``package.json`` trees, random filler files up to ``--mb`` MiB) and
OSV exports for their packages, then measures in one run:

1. ``sbom``: SBOM generation on the same images, written as OCI layout directories:
   Moorage's analyzer (``core.scan.analyzer``, in process, the code the analyze activity
   runs) plus its CycloneDX and SPDX documents (``core.scan_sbom``), against
   ``syft scan oci-dir:`` writing CycloneDX and SPDX JSON; ``ratio`` = moorage / syft.
   The images: this machine's dpkg database alone, the synthesized packages alone, and
   the large image.
2. ``large_image``: the large image's analyze and match (``core.vulndb.matching.match``
   against the imported data) times and the packages each side found.
3. ``osv_import``: a full import of the synthesized ``all.zip`` exports through the
   importer ``moorage vulndb import`` uses, into SQLite (or, with ``--database
   postgres``, a PostgreSQL started here, as the import, the match and the re-match then
   use); records per second.
4. ``rematch``: ``--sboms`` stored inventories (images of ``--sbom-packages`` packages
   each, rows written in bulk), an incremental data update, then the re-match activity
   (``scan_rematch_reports``, pages of 100 as the workflow asks) until no page is left.

``--only sbom`` leaves out the re-match (4); ``--only large`` runs the import and the
large image alone. Results are printed as JSON lines; nothing here asserts on time.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import secrets
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import insert
from temporalio.testing import ActivityEnvironment

from activities.scans import ScanActivities
from cli.composition import compose
from cli.startup import prepare_installation
from core.digests import Digest
from core.names import RepositoryName
from core.records import NewManifest
from core.scan.analyzer import Analyzer
from core.scan_jobs import RematchInput, RematchPage
from core.scan_records import Inventory, ScanStatus, os_to_json, package_to_json
from core.scan_sbom import SbomSubject, cyclonedx, spdx
from core.scan_settings import ScanSettings
from core.settings import Settings
from core.vulndb.matching import match
from storage.db.scans import INVENTORY, REPORT
from tests.scanning.images import LAYER_GZIP, OCI_CONFIG, OCI_MANIFEST, Layer, MemorySource
from tests.scanning.osv_exports import write_export
from tests.services.postgres import start_postgres
from tests.services.tools import tools_bin_dir

MIB = 1024 * 1024
SYFT = tools_bin_dir() / "syft"
OS_RELEASE = (
    'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nID=debian\nVERSION_ID="12"\n'
    "VERSION_CODENAME=bookworm\n"
)
#: Size of one filler file and most filler bytes in one layer.
FILLER_FILE = MIB
FILLER_LAYER = 64 * MIB
#: Share of the packages per kind (the rest are npm packages).
DPKG_SHARE, PYTHON_SHARE = 0.6, 0.2
#: Reports per re-match page (the workflow's default).
REMATCH_PAGE = RematchInput().limit


@dataclass(frozen=True, slots=True)
class Counts:
    """How many packages of each kind an image holds."""

    dpkg: int
    python: int
    npm: int

    @classmethod
    def of(cls, total: int) -> Counts:
        dpkg = int(total * DPKG_SHARE)
        python = int(total * PYTHON_SHARE)
        return cls(dpkg, python, total - dpkg - python)

    @property
    def total(self) -> int:
        return self.dpkg + self.python + self.npm


def deb_name(number: int) -> str:
    return f"bench-deb-{number:05d}"


def deb_source(number: int) -> str:
    return f"bench-src-{number // 2:05d}"


def py_name(number: int) -> str:
    return f"bench-py-{number:05d}"


def js_name(number: int) -> str:
    return f"bench-js-{number:05d}"


def version(number: int) -> str:
    return f"1.{number % 5}.0"


def dpkg_status(count: int) -> str:
    """A dpkg ``status`` database of ``count`` installed packages (two per source)."""
    stanzas = [
        f"Package: {deb_name(n)}\nStatus: install ok installed\nPriority: optional\n"
        f"Architecture: amd64\nSource: {deb_source(n)}\nVersion: {version(n)}-1\n"
        f"Description: bench package {n}\n"
        for n in range(count)
    ]
    return "\n".join(stanzas)


def package_layers(counts: Counts) -> list[Layer]:
    """Layers holding ``counts`` packages: os-release and dpkg, Python, npm."""
    base = Layer().file("etc/os-release", OS_RELEASE)
    base.file("var/lib/dpkg/status", dpkg_status(counts.dpkg))
    python = Layer()
    for n in range(counts.python):
        name, ver = py_name(n), version(n)
        directory = f"usr/local/lib/python3.11/site-packages/{name.replace('-', '_')}-{ver}"
        python.file(
            f"{directory}.dist-info/METADATA",
            f"Metadata-Version: 2.1\nName: {name}\nVersion: {ver}\nSummary: bench\n",
        )
    npm = Layer()
    for n in range(counts.npm):
        document = {"name": js_name(n), "version": version(n), "license": "MIT"}
        npm.file(f"usr/lib/node_modules/{js_name(n)}/package.json", json.dumps(document))
    return [base, python, npm]


def filler_layers(total_bytes: int) -> Iterator[Layer]:
    """Layers of random files adding up to ``total_bytes``."""
    left, number = total_bytes, 0
    while left > 0:
        layer, size = Layer(), 0
        while left > 0 and size < FILLER_LAYER:
            chunk = min(FILLER_FILE, left)
            layer.file(f"opt/data/{number // 1000:03d}/blob{number:06d}.bin", os.urandom(chunk))
            number, size, left = number + 1, size + chunk, left - chunk
        yield layer


def build_image(counts: Counts, filler_mb: int) -> tuple[MemorySource, str]:
    """An image of ``counts`` packages and ``filler_mb`` MiB of random files."""
    source = MemorySource()
    layers: list[Layer | bytes] = [*package_layers(counts)]
    # NOTE: filler layers go in as tar bytes so each Layer's entries can be dropped early
    layers += [layer.tar() for layer in filler_layers(filler_mb * MIB)]
    return source, source.add_image(layers)


def dpkg_image() -> tuple[MemorySource, str]:
    """This machine's dpkg database and os-release alone (the issue's Syft figure)."""
    layer = Layer().file("etc/os-release", Path("/etc/os-release").read_bytes())
    layer.file("var/lib/dpkg/status", Path("/var/lib/dpkg/status").read_bytes())
    source = MemorySource()
    return source, source.add_image([layer])


class LayoutSource:
    """An image source over an OCI layout directory (what Syft reads too)."""

    def __init__(self, layout: Path, chunk: int = MIB) -> None:
        self._blobs, self._chunk = layout / "blobs" / "sha256", chunk

    def _path(self, digest: str) -> Path:
        return self._blobs / digest.split(":", 1)[1]

    def manifest(self, digest: str) -> bytes | None:
        path = self._path(digest)
        return path.read_bytes() if path.is_file() else None

    def blob(self, digest: str) -> Iterator[bytes]:
        with self._path(digest).open("rb") as handle:
            while chunk := handle.read(self._chunk):
                yield chunk


def moorage_sbom(layout: Path, digest: str) -> tuple[Inventory, float, float]:
    """Analyze the image and render both documents; the inventory and the two steps' seconds."""
    start = time.perf_counter()
    [result] = Analyzer(ScanSettings()).analyze(LayoutSource(layout), digest)
    if result.failure is not None:
        raise RuntimeError(f"analysis failed: {result.failure}")
    inventory = Inventory(digest, None, result.os, result.packages)
    analyzed = time.perf_counter()
    subject = SbomSubject("bench/image", digest, datetime.now(UTC))
    cyclonedx(subject, inventory)
    spdx(subject, inventory)
    return inventory, analyzed - start, time.perf_counter() - analyzed


def syft_sbom(layout: Path, work: Path) -> tuple[int, float]:
    """Syft's CycloneDX and SPDX documents of the layout; packages found and seconds."""
    env = {
        **os.environ,
        "HOME": str(work),
        "XDG_CONFIG_HOME": str(work / "config"),
        "XDG_CACHE_HOME": str(work / "cache"),
        "SYFT_CHECK_FOR_APP_UPDATE": "false",
    }
    cdx, spdx_out = work / "syft.cdx.json", work / "syft.spdx.json"
    start = time.perf_counter()
    subprocess.run(
        [
            str(SYFT),
            "scan",
            f"oci-dir:{layout}",
            "-q",
            "-o",
            f"cyclonedx-json={cdx}",
            "-o",
            f"spdx-json={spdx_out}",
        ],
        env=env,
        capture_output=True,
        timeout=3600,
        check=True,
    )
    seconds = time.perf_counter() - start
    packages = json.loads(spdx_out.read_text()).get("packages") or []
    # NOTE: SPDX lists the image itself (and the distribution) too: count purls of packages
    found = sum(
        1
        for p in packages
        for r in p.get("externalRefs") or []
        if r.get("referenceType") == "purl"
        and not str(r.get("referenceLocator")).startswith("pkg:oci/")
    )
    return found, seconds


def compare_sbom(name: str, source: MemorySource, digest: str, work: Path) -> dict[str, Any]:
    """Moorage and Syft on one image written as an OCI layout; seconds and ratio."""
    layout = source.write_oci_layout(work / name, digest)
    size = sum(p.stat().st_size for p in (layout / "blobs" / "sha256").iterdir())
    inventory, analyze_s, documents_s = moorage_sbom(layout, digest)
    moorage_s = analyze_s + documents_s
    syft_found, syft_s = syft_sbom(layout, work)
    shutil.rmtree(layout)
    return {
        "bench": "sbom",
        "image": name,
        "image_mib": round(size / MIB, 1),
        "moorage_packages": len(inventory.packages),
        "syft_packages": syft_found,
        "moorage_seconds": round(moorage_s, 2),
        "moorage_analyze_seconds": round(analyze_s, 2),
        "moorage_documents_seconds": round(documents_s, 2),
        "syft_seconds": round(syft_s, 2),
        "ratio": round(moorage_s / syft_s, 2) if syft_s > 0 else None,
    }


# -- OSV data -------------------------------------------------------------------------------


def osv_records(records: int, generation: int) -> dict[str, list[dict[str, Any]]]:
    """``records`` OSV records (3/5 Debian, 1/5 PyPI, 1/5 npm), some for the image's packages.

    ``generation`` 2 is a data update: every fifth record changes its fixed version and
    ``modified`` stamp, and one record in twenty is new.
    """
    stamp = f"2026-0{generation}-01T00:00:00Z"
    first = "2026-01-01T00:00:00Z"
    total = records + (records // 20 if generation > 1 else 0)
    # NOTE: names are spread over a universe of a few records per name, of which the
    # image holds a few (as in real data: most records are for packages an image lacks)
    universe = max(1, records // 4)
    out: dict[str, list[dict[str, Any]]] = {"Debian": [], "PyPI": [], "npm": []}
    for n in range(total):
        kind = ("Debian", "Debian", "Debian", "PyPI", "npm")[n % 5]
        changed = generation > 1 and (n % 5 == 0 or n >= records)
        fixed_minor = (n % 4) + (1 if changed else 0)
        at = (n // 5) % universe
        if kind == "Debian":
            name, ecosystem = f"bench-src-{at:05d}", "Debian:12"
            fixed, range_type = f"1.{fixed_minor}.0-2", "ECOSYSTEM"
        elif kind == "PyPI":
            name, ecosystem = py_name(at), "PyPI"
            fixed, range_type = f"1.{fixed_minor}.0", "ECOSYSTEM"
        else:
            name, ecosystem = js_name(at), "npm"
            fixed, range_type = f"1.{fixed_minor}.0", "SEMVER"
        out[kind].append(
            {
                "schema_version": "1.7.0",
                "id": f"BENCH-{n:07d}",
                "modified": stamp if changed else first,
                "published": first,
                "aliases": [f"CVE-2026-{n + 10000}"],
                "summary": f"bench vulnerability {n}",
                "severity": [
                    {"type": "CVSS_V3", "score": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:N/A:N"}
                ],
                "affected": [
                    {
                        "package": {"ecosystem": ecosystem, "name": name},
                        "ranges": [
                            {"type": range_type, "events": [{"introduced": "0"}, {"fixed": fixed}]}
                        ],
                    }
                ],
            }
        )
    return out


def import_osv(
    settings: Settings, root_dir: Path, data: dict[str, list[dict[str, Any]]]
) -> dict[str, Any]:
    """Import every ecosystem's export; records read and seconds."""
    root = compose(settings)
    try:
        locations = {e: write_export(root_dir, e, r) for e, r in data.items()}
        start = time.perf_counter()
        read = saved = 0
        incremental = False
        for ecosystem, location in sorted(locations.items()):
            result = root.osv_importer.run(ecosystem, str(location))
            read, saved = read + result.read, saved + result.saved
            incremental = incremental or result.incremental
        seconds = time.perf_counter() - start
    finally:
        root.close()
    return {"read": read, "saved": saved, "incremental": incremental, "seconds": seconds}


# -- the large image ------------------------------------------------------------------------


def large_image(
    settings: Settings, counts: Counts, filler_mb: int, work: Path
) -> tuple[dict[str, Any], Inventory]:
    """Analyze and match the large image (Syft's SBOM time beside it)."""
    build_start = time.perf_counter()
    source, digest = build_image(counts, filler_mb)
    layout = source.write_oci_layout(work / "large", digest)
    del source
    size = sum(p.stat().st_size for p in (layout / "blobs" / "sha256").iterdir())
    build_s = time.perf_counter() - build_start
    start = time.perf_counter()
    [result] = Analyzer(ScanSettings()).analyze(LayoutSource(layout), digest)
    analyze_s = time.perf_counter() - start
    if result.failure is not None:
        raise RuntimeError(f"analysis failed: {result.failure}")
    inventory = Inventory(digest, None, result.os, result.packages)
    root = compose(settings)
    try:
        start = time.perf_counter()
        findings = match(inventory.packages, inventory.os, root.vulndb)
        match_s = time.perf_counter() - start
    finally:
        root.close()
    start = time.perf_counter()
    subject = SbomSubject("bench/large", digest, datetime.now(UTC))
    cyclonedx(subject, inventory)
    spdx(subject, inventory)
    documents_s = time.perf_counter() - start
    syft_found, syft_s = syft_sbom(layout, work)
    shutil.rmtree(layout)
    moorage_sbom_s = analyze_s + documents_s
    return {
        "bench": "large_image",
        "image_mib": round(size / MIB, 1),
        "build_seconds": round(build_s, 1),
        "packages_stated": counts.total,
        "moorage_packages": len(inventory.packages),
        "syft_packages": syft_found,
        "analyze_seconds": round(analyze_s, 2),
        "match_seconds": round(match_s, 2),
        "findings": len(findings),
        "documents_seconds": round(documents_s, 2),
        "syft_seconds": round(syft_s, 2),
        "sbom_ratio": round(moorage_sbom_s / syft_s, 2) if syft_s > 0 else None,
    }, inventory


# -- re-match -------------------------------------------------------------------------------


def _manifest_payload(number: int) -> bytes:
    config = f"sha256:{Digest.of(f'config {number}'.encode()).hex}"
    layer = f"sha256:{Digest.of(f'layer {number}'.encode()).hex}"
    return json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, "digest": config, "size": 2},
            "layers": [{"mediaType": LAYER_GZIP, "digest": layer, "size": 2}],
        }
    ).encode()


def store_sboms(settings: Settings, inventory: Inventory, sboms: int, per_sbom: int) -> float:
    """Store ``sboms`` image manifests with inventories and reports; seconds taken.

    Each inventory is a window of ``per_sbom`` packages of ``inventory`` (rows written
    in bulk: the stores' one-row writes are not what is measured).
    """
    start = time.perf_counter()
    packages = inventory.packages
    root = compose(settings)
    try:
        repository = root.repositories.ensure(
            RepositoryName.parse(f"bench{secrets.token_hex(4)}/app"), create_project=True
        )
        now = datetime.now(UTC)
        os_json = os_to_json(inventory.os)
        batch = 500
        for first in range(0, sboms, batch):
            numbers = range(first, min(first + batch, sboms))
            digests = []
            with root.metadata.write() as session:
                for number in numbers:
                    payload = _manifest_payload(number)
                    digest = str(Digest.of(payload))
                    session.manifests.add(
                        repository.id,
                        NewManifest(digest, OCI_MANIFEST, None, None, None, payload, (), ()),
                    )
                    digests.append(digest)
                session.commit()
            inventories, reports = [], []
            for number, digest in zip(numbers, digests, strict=True):
                at = (number * per_sbom) % max(1, len(packages))
                window = (packages + packages)[at : at + per_sbom]
                inventories.append(
                    {
                        "project_id": repository.project_id,
                        "digest": digest,
                        "platform": None,
                        "os": os_json,
                        "packages": json.dumps(
                            [package_to_json(p) for p in window], separators=(",", ":")
                        ),
                        "failure": None,
                        "created_at": now,
                    }
                )
                reports.append(
                    {
                        "project_id": repository.project_id,
                        "repository": str(repository.name),
                        "digest": digest,
                        "status": str(ScanStatus.SUCCEEDED),
                        "reason": None,
                        "scanner": "Moorage",
                        "started_at": now,
                        "finished_at": now,
                        "data_updated_at": None,
                        "worst": -1,
                        "findings": "[]",
                        "platforms": "[]",
                    }
                )
            with root.engines.writing() as connection, connection.begin():
                connection.execute(insert(INVENTORY), inventories)
                connection.execute(insert(REPORT), reports)
    finally:
        root.close()
    return time.perf_counter() - start


def rematch(settings: Settings) -> tuple[int, int, float]:
    """Run the re-match activity page by page as the workflow does; (pages, matched, s)."""
    root = compose(settings)
    try:
        activities = ScanActivities(root.scans, root.sboms)
        environment = ActivityEnvironment()
        after, matched, pages = 0, 0, 0
        start = time.perf_counter()
        while True:
            page: RematchPage = environment.run(
                activities.scan_rematch_reports, RematchInput(after, REMATCH_PAGE)
            )
            pages, matched, after = pages + 1, matched + page.matched, page.next_after
            if not page.more:
                break
        return pages, matched, time.perf_counter() - start
    finally:
        root.close()


# -- the run --------------------------------------------------------------------------------


def _settings(root: Path, name: str, database_url: str | None = None) -> Settings:
    return Settings(
        data_dir=root / name,
        auth={"admin_password": secrets.token_urlsafe(16)},  # type: ignore[arg-type]
        database_url=database_url,
    )


def _load() -> str:
    return " ".join(f"{v:.2f}" for v in os.getloadavg())


def _emit(result: dict[str, Any]) -> None:
    print(json.dumps({**result, "load": _load()}), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--packages", type=int, default=1000, help="packages in the images")
    parser.add_argument("--mb", type=int, default=500, help="MiB of the large image")
    parser.add_argument("--records", type=int, default=20000, help="OSV records to import")
    parser.add_argument("--sboms", type=int, default=10000, help="stored SBOMs to re-match")
    parser.add_argument("--sbom-packages", type=int, default=100, help="packages per SBOM")
    parser.add_argument(
        "--only",
        choices=["sbom", "large"],
        default=None,
        help="sbom: the three SBOM comparisons (and the import the large image's match"
        " reads), no re-match; large: the import and the large image alone",
    )
    parser.add_argument(
        "--database",
        choices=["sqlite", "postgres"],
        default="sqlite",
        help="the database of the import, match and re-match (postgres: started here)",
    )
    args = parser.parse_args()
    counts = Counts.of(args.packages)
    with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as stack:
        work = Path(tmp)
        database_url = None
        if args.database == "postgres":
            postgres = start_postgres(work / "pg")
            stack.callback(postgres.stop)
            database_url = postgres.create_database("bench_scan")
        settings = _settings(work, "moorage", database_url)
        prepare_installation(settings)
        _emit({"bench": "database", "database": args.database})
        # 1. SBOM generation, side by side
        if args.only != "large":
            _emit(compare_sbom("host-dpkg", *dpkg_image(), work))
            _emit(compare_sbom("packages", *build_image(counts, 0), work))
        # 3. OSV import (before the large image: its match reads this data)
        data = osv_records(args.records, 1)
        imported = import_osv(settings, work / "osv1", data)
        _emit(
            {
                "bench": "osv_import",
                "records": imported["read"],
                "saved": imported["saved"],
                "seconds": round(imported["seconds"], 2),
                "records_per_second": round(imported["read"] / imported["seconds"], 1),
            }
        )
        # 2. the large image
        result, inventory = large_image(settings, counts, args.mb, work)
        _emit(result)
        if args.only is not None:
            return
        # 4. re-match after a data update
        fill_s = store_sboms(settings, inventory, args.sboms, args.sbom_packages)
        update = import_osv(settings, work / "osv2", osv_records(args.records, 2))
        pages, matched, rematch_s = rematch(settings)
        _emit(
            {
                "bench": "rematch",
                "sboms": args.sboms,
                "packages_per_sbom": args.sbom_packages,
                "fill_seconds": round(fill_s, 1),
                "update_incremental": update["incremental"],
                "update_saved": update["saved"],
                "update_seconds": round(update["seconds"], 2),
                "pages": pages,
                "matched": matched,
                "seconds": round(rematch_s, 2),
                "sboms_per_second": round(matched / rematch_s, 1) if rematch_s > 0 else None,
            }
        )


if __name__ == "__main__":
    main()
