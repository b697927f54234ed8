"""Syft as the independent oracle of the analyzer, on images built from this machine's content.

The fixture image holds real content: this machine's dpkg database and os-release, the
shared virtualenv's Python distributions, the Go binaries crane and oras, the jars of the
local Maven repository (and a fat jar nesting some of them), and npm's own installed
tree. A last layer deletes some of it (whiteouts, an opaque directory that keeps its own
layer's new entry). Syft reads the same image as an OCI layout; per ecosystem the
(name, version) sets must be equal except for the differences listed with their reasons.

On the real content there is no difference left: the one there was (Syft reports Python
distributions under their PEP 503-normalised name, ``pyyaml`` for ``PyYAML``) was resolved
by reporting that name, which is also the purl's and OSV's. The differences that remain
are by design and shown on synthetic content in :func:`test_differences_by_design`.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sysconfig
import zipfile
from pathlib import Path

import pytest

from core.scan.analyzer import Analyzer
from core.scan.packages import PackageType
from core.scan_settings import ScanSettings
from tests.scanning.images import Layer, MemorySource
from tests.services.tools import find_tool

# The test interpreter's own installed distributions (the virtualenv's site-packages).
SITE_PACKAGES = Path(sysconfig.get_paths()["purelib"])
NPM_TREE = Path("/usr/lib/node_modules/npm")
M2 = Path.home() / ".m2/repository"
TYPES = {t.value for t in PackageType}


def os_release() -> bytes:
    return Path("/etc/os-release").read_bytes()


def _jars() -> list[Path]:
    return sorted(M2.rglob("*.jar"))


def _fat_jar(jars: list[Path]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(
            zipfile.ZipInfo("META-INF/MANIFEST.MF", (1980, 1, 1, 0, 0, 0)),
            "Manifest-Version: 1.0\nImplementation-Title: bundle\nImplementation-Version: 1.0\n",
        )
        for jar in jars:
            info = zipfile.ZipInfo(f"BOOT-INF/lib/{jar.name}", (1980, 1, 1, 0, 0, 0))
            archive.writestr(info, jar.read_bytes(), zipfile.ZIP_STORED)
    return buffer.getvalue()


def build_fixture() -> tuple[MemorySource, str]:
    base = Layer().file("etc/os-release", os_release())
    base.file("var/lib/dpkg/status", Path("/var/lib/dpkg/status").read_bytes())
    python = Layer()
    dists = sorted(SITE_PACKAGES.glob("*.dist-info"))
    for dist in dists:
        if (dist / "METADATA").is_file():
            python.file(
                f"usr/local/lib/python3.11/site-packages/{dist.name}/METADATA",
                (dist / "METADATA").read_bytes(),
            )
    go = Layer()
    for name in ("crane", "oras"):
        go.file(f"usr/local/bin/{name}", Path(find_tool(name)).read_bytes(), mode=0o755)
    java = Layer()
    jars = _jars()
    for jar in jars:
        java.file(f"opt/java/lib/{jar.name}", jar.read_bytes())
    java.file("opt/java/bundle-1.0.jar", _fat_jar(jars[:3]))
    npm = Layer()
    for path in sorted(NPM_TREE.rglob("package.json")):
        npm.file(f"usr/lib/node_modules/npm/{path.relative_to(NPM_TREE)}", path.read_bytes())
    deletions = (
        Layer()
        .whiteout(f"usr/local/lib/python3.11/site-packages/{dists[0].name}")
        .whiteout("usr/local/bin/oras")
        .whiteout(f"opt/java/lib/{jars[-1].name}")
        .file(
            "usr/lib/node_modules/npm/node_modules/@npmcli/fresh/package.json",
            '{"name": "@npmcli/fresh", "version": "9.9.9"}',
        )
        .opaque("usr/lib/node_modules/npm/node_modules/@npmcli")
    )
    source = MemorySource()
    digest = source.add_image([base, python, go, java, npm, deletions])
    return source, digest


def syft_packages(source: MemorySource, digest: str, tmp: Path) -> dict[str, set[tuple[str, str]]]:
    layout = source.write_oci_layout(tmp / "layout", digest)
    env = {
        **os.environ,
        "HOME": str(tmp),
        "XDG_CONFIG_HOME": str(tmp / "config"),
        "XDG_CACHE_HOME": str(tmp / "cache"),
        "SYFT_CHECK_FOR_APP_UPDATE": "false",
    }
    done = subprocess.run(
        [find_tool("syft"), "scan", f"oci-dir:{layout}", "-o", "syft-json", "-q"],
        env=env,
        capture_output=True,
        timeout=600,
        check=True,
    )
    found: dict[str, set[tuple[str, str]]] = {t: set() for t in TYPES}
    for artifact in json.loads(done.stdout)["artifacts"]:
        purl = artifact.get("purl") or ""
        kind = purl.removeprefix("pkg:").split("/", 1)[0]
        if kind in found:
            found[kind].add((artifact["name"], artifact["version"]))
    return found


def moorage_packages(source: MemorySource, digest: str) -> dict[str, set[tuple[str, str]]]:
    [result] = Analyzer(ScanSettings()).analyze(source, digest)
    assert result.failure is None, result.failure
    found: dict[str, set[tuple[str, str]]] = {t: set() for t in TYPES}
    for package in result.packages:
        found[package.type.value].add((package.name, package.version))
    return found


def differences(ours: dict, theirs: dict) -> dict[tuple[str, str, str, str], str]:
    diff = {}
    for kind in TYPES:
        for name, version in ours[kind] - theirs[kind]:
            diff[kind, name, version, "moorage only"] = ""
        for name, version in theirs[kind] - ours[kind]:
            diff[kind, name, version, "syft only"] = ""
    return diff


@pytest.fixture(scope="module")
def fixture_image():
    return build_fixture()


def test_syft_and_moorage_agree_per_ecosystem(fixture_image, tmp_path):
    source, digest = fixture_image
    ours = moorage_packages(source, digest)
    theirs = syft_packages(source, digest, tmp_path)
    for kind in TYPES - {"apk", "rpm"}:
        assert ours[kind], f"the fixture must hold {kind} packages"
    assert differences(ours, theirs) == {}


def test_the_machine_dpkg_database_alone(tmp_path):
    layer = Layer().file("etc/os-release", os_release())
    layer.file("var/lib/dpkg/status", Path("/var/lib/dpkg/status").read_bytes())
    source = MemorySource()
    digest = source.add_image([layer])
    ours = moorage_packages(source, digest)
    theirs = syft_packages(source, digest, tmp_path)
    installed = (
        subprocess.run(
            ["dpkg-query", "-W", "-f", "${db:Status-Status}\n"],
            capture_output=True,
            text=True,
            check=True,
        )
        .stdout.split()
        .count("installed")
    )
    assert len(ours["deb"]) == installed
    assert ours["deb"] == theirs["deb"]


#: Differences by design on the synthetic image, with their reasons.
BY_DESIGN = {
    ("pypi", "pyyaml", "6.0", "syft only"): (
        "the dist-info is owned by the dpkg package python3-yaml (its .list file names it): "
        "the issue requires OS-owned files not to be reported again by language analyzers; "
        "Syft reports the Python package beside the deb"
    ),
    ("npm", "left-pad", "1.3.0", "moorage only"): (
        "listed only in a package-lock.json: Moorage reads lockfiles as the issue asks; "
        "Syft's image catalogers read installed package.json files only"
    ),
}


def test_differences_by_design(tmp_path):
    status = (
        "Package: python3-yaml\nStatus: install ok installed\nArchitecture: amd64\n"
        "Source: pyyaml\nVersion: 6.0-3\n"
    )
    dist = "usr/lib/python3/dist-packages/PyYAML-6.0.dist-info"
    layer = (
        Layer()
        .file("etc/os-release", os_release())
        .file("var/lib/dpkg/status", status)
        .file("var/lib/dpkg/info/python3-yaml.list", f"/.\n/usr\n/{dist}\n/{dist}/METADATA\n")
        .file(f"{dist}/METADATA", "Metadata-Version: 2.1\nName: PyYAML\nVersion: 6.0\n")
        .file("lib/apk/db/installed", "P:musl\nV:1.2.4-r2\nA:x86_64\no:musl\n")
        .file("srv/app/node_modules/lodash/package.json", '{"name":"lodash","version":"4.17.21"}')
        .file(
            "srv/app/package-lock.json",
            '{"lockfileVersion": 3, "packages": {"": {"name": "app"}, '
            '"node_modules/lodash": {"version": "4.17.21"}, '
            '"node_modules/left-pad": {"version": "1.3.0"}}}',
        )
        .file(
            "usr/lib/python3.11/site-packages/Six-1.16.0.egg-info/PKG-INFO",
            "Metadata-Version: 1.1\nName: six\nVersion: 1.16.0\n",
        )
    )
    source = MemorySource()
    digest = source.add_image([layer])
    ours = moorage_packages(source, digest)
    theirs = syft_packages(source, digest, tmp_path)
    assert ours["apk"] == {("musl", "1.2.4-r2")}
    assert ours["pypi"] == {("six", "1.16.0")}
    assert set(differences(ours, theirs)) == set(BY_DESIGN)
