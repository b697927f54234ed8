"""osv-scanner (offline, on the same OSV zips and the same image) as the findings oracle.

osv-scanner v2 reads its offline databases from
``$OSV_SCANNER_LOCAL_DB_CACHE_DIRECTORY/osv-scalibr/<ecosystem>/all.zip`` (the
``osv-scanner/<ecosystem>`` directory of older documentation is not read: it answers
"no offline version"). The image is a docker-archive tarball of a fixture holding
vulnerable and fixed packages of every ecosystem the fixtures cover.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import zipfile
from datetime import UTC, datetime
from pathlib import Path

from adapters.osv_files import OsvFiles
from core.outbound import OutboundPolicy
from core.scan.analyzer import Analyzer
from core.scan_settings import ScanSettings
from core.settings import Settings
from core.vulndb.importer import OsvImporter
from core.vulndb.matching import match
from storage.db.engine import create_engines
from storage.db.migrate import upgrade
from storage.db.vulndb import SqlVulnDb
from tests.scanning.images import Layer, MemorySource, write_docker_archive
from tests.scanning.osv_exports import fixture_records, write_export
from tests.services.tools import find_tool

ECOSYSTEMS = ("Debian", "PyPI", "npm", "Maven", "Go")
STATUS = """Package: libssl3
Status: install ok installed
Architecture: amd64
Source: openssl
Version: 3.0.11-1~deb12u1

Package: openssl
Status: install ok installed
Architecture: amd64
Version: 3.0.11-1~deb12u1

Package: zlib1g
Status: install ok installed
Architecture: amd64
Source: zlib
Version: 1:1.2.13.dfsg-1

Package: base-files
Status: install ok installed
Architecture: amd64
Version: 12.4+deb12u2
"""


def _jar(group: str, artifact: str, version: str) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(
            "META-INF/MANIFEST.MF", f"Manifest-Version: 1.0\nImplementation-Version: {version}\n"
        )
        archive.writestr(
            f"META-INF/maven/{group}/{artifact}/pom.properties",
            f"groupId={group}\nartifactId={artifact}\nversion={version}\n",
        )
    return buffer.getvalue()


def fixture_image() -> tuple[MemorySource, str]:
    site = "usr/local/lib/python3.11/site-packages"
    layer = (
        Layer()
        .file(
            "etc/os-release",
            'ID=debian\nVERSION_ID="12"\nVERSION_CODENAME=bookworm\n'
            'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\n',
        )
        .file("var/lib/dpkg/status", STATUS)
        .file(
            f"{site}/PyYAML-5.3.1.dist-info/METADATA",
            "Metadata-Version: 2.1\nName: PyYAML\nVersion: 5.3.1\n",
        )
        .file("app/node_modules/lodash/package.json", '{"name":"lodash","version":"4.17.20"}')
        .file("app/node_modules/left-pad/package.json", '{"name":"left-pad","version":"1.3.0"}')
        .file(
            "app/node_modules/.package-lock.json",
            '{"lockfileVersion": 3, "packages": {"": {"name": "app"}, '
            '"node_modules/lodash": {"version": "4.17.20"}, '
            '"node_modules/left-pad": {"version": "1.3.0"}}}',
        )
        .file(
            "app/package.json",
            '{"name":"app","version":"1.0.0","dependencies":{"lodash":"4.17.20"}}',
        )
        .file(
            "opt/app/log4j-core-2.14.1.jar",
            _jar("org.apache.logging.log4j", "log4j-core", "2.14.1"),
        )
        .file(
            "opt/app/log4j-core-2.17.1.jar",
            _jar("org.apache.logging.log4j", "log4j-core", "2.17.1"),
        )
        .file("usr/local/bin/crane", Path(find_tool("crane")).read_bytes(), mode=0o755)
    )
    source = MemorySource()
    return source, source.add_image([layer])


def moorage_findings(source, digest, tmp: Path, db_root: Path) -> set[tuple[str, str, str]]:
    settings = Settings(data_dir=tmp / "data")
    upgrade(settings)
    engines = create_engines(settings)
    try:
        vulndb = SqlVulnDb(engines)
        importer = OsvImporter(vulndb, OsvFiles(OutboundPolicy()), lambda: datetime.now(UTC))
        for ecosystem in ECOSYSTEMS:
            importer.run(ecosystem, str(db_root / ecosystem))
        [result] = Analyzer(ScanSettings()).analyze(source, digest)
        assert result.failure is None
        findings = match(result.packages, result.os, vulndb)
    finally:
        engines.dispose()
    # Keyed as osv-scanner names packages: the installed binary package for distributions,
    # the ecosystem's name otherwise (Maven group:artifact, Go versions without "v").
    return {
        (f.package, f.version, f.vulnerability_id)
        if f.package_type in {"deb", "apk", "rpm"}
        else (f.matched_name, f.matched_version, f.vulnerability_id)
        for f in findings
    }


def scanner_findings(archive: Path, db_root: Path, tmp: Path) -> set[tuple[str, str, str]]:
    cache = tmp / "cache"
    for ecosystem in ECOSYSTEMS:
        target = cache / "osv-scalibr" / ecosystem
        target.mkdir(parents=True)
        (target / "all.zip").write_bytes((db_root / ecosystem / "all.zip").read_bytes())
    env = {**os.environ, "HOME": str(tmp), "OSV_SCANNER_LOCAL_DB_CACHE_DIRECTORY": str(cache)}
    done = subprocess.run(
        [
            find_tool("osv-scanner"),
            "scan",
            "image",
            "--archive",
            str(archive),
            "--offline",
            "--format",
            "json",
            "--all-packages",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode in {0, 1}, done.stderr
    found = set()
    for result in json.loads(done.stdout).get("results", []):
        for entry in result.get("packages", []):
            package = entry["package"]
            for vulnerability in entry.get("vulnerabilities") or []:
                name = package.get("os_package_name") or package["name"]
                found.add((name, package["version"], vulnerability["id"]))
    return found


#: Findings one side has and the other does not, and why.
EXPLAINED: dict[tuple[str, str, str, str], str] = {
    ("libssl3", "3.0.11-1~deb12u1", "MOORAGE-TEST-0005", "osv-scanner only"): (
        "the range is introduced 0 with limit 3.0.0; OSV's evaluation requires the version to "
        "be below a limit and 3.0.11 is not: osv-scanner ignores limit events in ECOSYSTEM ranges"
    ),
    ("openssl", "3.0.11-1~deb12u1", "MOORAGE-TEST-0005", "osv-scanner only"): (
        "same record and reason as for libssl3"
    ),
    ("pyyaml", "5.3.1", "GHSA-8q59-q68h-6hv4", "moorage only"): (
        "the record names the package PyYAML; PyPI names are case-insensitive (PEP 503) but "
        "osv-scanner's offline matcher compares them as written (renaming the record to "
        "pyyaml makes it report the finding)"
    ),
}


def test_findings_equal_osv_scanner(tmp_path):
    db_root = tmp_path / "osv"
    for ecosystem in ECOSYSTEMS:
        write_export(db_root, ecosystem, fixture_records(ecosystem))
    source, digest = fixture_image()
    ours = moorage_findings(source, digest, tmp_path, db_root)
    archive = write_docker_archive(source, digest, tmp_path / "image.tar")
    theirs = scanner_findings(archive, db_root, tmp_path)
    differences = {(*f, "moorage only") for f in ours - theirs} | {
        (*f, "osv-scanner only") for f in theirs - ours
    }
    assert differences == set(EXPLAINED), (sorted(ours), sorted(theirs))
    # The agreement covers every ecosystem of the fixture.
    agreed = {name for name, _, _ in ours & theirs}
    assert {
        "libssl3",
        "openssl",
        "zlib1g",
        "lodash",
        "org.apache.logging.log4j:log4j-core",
        "stdlib",
        "github.com/google/go-containerregistry",
    } <= agreed
