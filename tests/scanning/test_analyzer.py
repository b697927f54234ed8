"""The analyzer on synthetic images: every package format, whiteouts, ownership, platforms."""

from __future__ import annotations

import io
import sqlite3
import struct
import zipfile
from pathlib import Path

import pytest

from core.scan.analyzer import Analyzer, ImageAnalysis
from core.scan.gobinary import decode_at, find_build_info
from core.scan.packages import PackageType
from core.scan_settings import ScanSettings
from tests.scanning.images import Layer, MemorySource
from tests.services.tools import find_tool

OS_RELEASE = (
    'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nID=debian\nVERSION_ID="12"\n'
    "VERSION_CODENAME=bookworm\n"
)
STATUS = """Package: libssl3
Status: install ok installed
Architecture: amd64
Source: openssl
Version: 3.0.11-1~deb12u1

Package: openssl
Status: install ok installed
Architecture: amd64
Version: 3.0.11-1~deb12u1
Description: Secure Sockets Layer toolkit
 continuation line

Package: libfoo1
Status: install ok installed
Architecture: amd64
Source: foo (1.2-3)
Version: 1.2-3+b1

Package: removed
Status: deinstall ok config-files
Architecture: amd64
Version: 1.0
"""


def analyze(source: MemorySource, digest: str, **limits) -> list[ImageAnalysis]:
    return Analyzer(ScanSettings(**limits)).analyze(source, digest)


def one(source: MemorySource, digest: str, **limits) -> ImageAnalysis:
    [result] = analyze(source, digest, **limits)
    assert result.failure is None, result.failure
    return result


def names(result: ImageAnalysis, kind: PackageType) -> set[tuple[str, str]]:
    return {(p.name, p.version) for p in result.packages if p.type is kind}


def debian_base() -> Layer:
    return (
        Layer()
        .file("usr/lib/os-release", OS_RELEASE)
        .symlink("etc/os-release", "../usr/lib/os-release")
        .file("var/lib/dpkg/status", STATUS)
    )


def test_dpkg_packages_with_source_names_and_purls():
    source = MemorySource()
    result = one(source, source.add_image([debian_base()]))
    assert result.os is not None
    assert (result.os.id, result.os.version_id) == ("debian", "12")
    by_name = {p.name: p for p in result.packages}
    assert set(by_name) == {"libssl3", "openssl", "libfoo1"}
    assert by_name["libssl3"].source_name == "openssl"
    assert by_name["libssl3"].source_version == "3.0.11-1~deb12u1"
    assert by_name["libfoo1"].source_name == "foo"
    assert by_name["libfoo1"].source_version == "1.2-3"
    assert by_name["openssl"].source_name == "openssl"
    assert by_name["libssl3"].purl == (
        "pkg:deb/debian/libssl3@3.0.11-1~deb12u1?arch=amd64&distro=debian-12&upstream=openssl"
    )


def test_distroless_status_d_skips_md5sums():
    source = MemorySource()
    layer = (
        Layer()
        .file("etc/os-release", OS_RELEASE)
        .file("var/lib/dpkg/status.d/libssl3", STATUS.split("\n\n", maxsplit=1)[0] + "\n")
        .file("var/lib/dpkg/status.d/libssl3.md5sums", "abc  usr/lib/x\n")
    )
    result = one(source, source.add_image([layer]))
    assert names(result, PackageType.DEB) == {("libssl3", "3.0.11-1~deb12u1")}


def test_apk_database_with_origin():
    installed = (
        "C:Q1abc=\nP:libcrypto3\nV:3.1.4-r0\nA:x86_64\nL:Apache-2.0\no:openssl\n"
        "F:usr/lib\nR:libcrypto.so.3\n\nP:musl\nV:1.2.4-r2\nA:x86_64\no:musl\n"
    )
    layer = (
        Layer()
        .file("etc/os-release", "ID=alpine\nVERSION_ID=3.19.1\n")
        .file("etc/alpine-release", "3.19.1\n")
        .file("lib/apk/db/installed", installed)
    )
    source = MemorySource()
    result = one(source, source.add_image([layer]))
    crypto = next(p for p in result.packages if p.name == "libcrypto3")
    assert crypto.source_name == "openssl"
    assert crypto.files == ("usr/lib/libcrypto.so.3",)
    assert crypto.purl == "pkg:apk/alpine/libcrypto3@3.1.4-r0?arch=x86_64&distro=alpine-3.19.1"
    assert names(result, PackageType.APK) == {("libcrypto3", "3.1.4-r0"), ("musl", "1.2.4-r2")}


def rpm_header(tags: list[tuple[int, int, object]]) -> bytes:
    """Encode an rpm header blob (index entries and data store, big-endian)."""
    entries, store = b"", b""
    for tag, kind, value in tags:
        offset = len(store)
        if kind == 4:
            while len(store) % 4:
                store += b"\0"
            offset = len(store)
            values = value if isinstance(value, list) else [value]
            store += struct.pack(f">{len(values)}i", *values)
            count = len(values)
        elif kind == 6:
            store += str(value).encode() + b"\0"
            count = 1
        else:
            assert isinstance(value, list)
            store += b"".join(str(v).encode() + b"\0" for v in value)
            count = len(value)
        entries += struct.pack(">iIiI", tag, kind, offset, count)
    return struct.pack(">II", len(tags), len(store)) + entries + store


def rpmdb(tmp_path: Path) -> bytes:
    path = tmp_path / "rpmdb.sqlite"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE Packages (hnum INTEGER PRIMARY KEY, blob BLOB)")
        blobs = [
            rpm_header(
                [
                    (1000, 6, "openssl-libs"),
                    (1001, 6, "3.0.7"),
                    (1002, 6, "27.el9"),
                    (1003, 4, 1),
                    (1022, 6, "x86_64"),
                    (1044, 6, "openssl-3.0.7-27.el9.src.rpm"),
                    (1116, 4, [0]),
                    (1117, 8, ["libssl.so.3"]),
                    (1118, 8, ["/usr/lib64/"]),
                ]
            ),
            rpm_header(
                [
                    (1000, 6, "bash"),
                    (1001, 6, "5.1.8"),
                    (1002, 6, "6.el9"),
                    (1022, 6, "x86_64"),
                    (1044, 6, "bash-5.1.8-6.el9.src.rpm"),
                ]
            ),
            rpm_header([(1000, 6, "gpg-pubkey"), (1001, 6, "fd431d51"), (1002, 6, "1")]),
        ]
        db.executemany("INSERT INTO Packages (blob) VALUES (?)", [(b,) for b in blobs])
    return path.read_bytes()


def test_rpm_sqlite_database(tmp_path):
    layer = (
        Layer()
        .file("etc/os-release", 'ID="rocky"\nVERSION_ID="9.3"\n')
        .file("usr/lib/sysimage/rpm/rpmdb.sqlite", rpmdb(tmp_path))
        .symlink("var/lib/rpm", "../../usr/lib/sysimage/rpm")
    )
    source = MemorySource()
    result = one(source, source.add_image([layer]))
    by_name = {p.name: p for p in result.packages}
    assert set(by_name) == {"openssl-libs", "bash"}
    libs = by_name["openssl-libs"]
    assert libs.version == "3.0.7-27.el9"
    assert (libs.source_name, libs.source_version) == ("openssl", "1:3.0.7-27.el9")
    assert (
        libs.purl == "pkg:rpm/rocky/openssl-libs@3.0.7-27.el9?arch=x86_64&distro=rocky-9.3&epoch=1"
    )
    assert libs.files == ("usr/lib64/libssl.so.3",)


def test_python_npm_and_lockfile():
    metadata = "Metadata-Version: 2.1\nName: PyYAML\nVersion: 6.0.1\nLicense: MIT\n"
    layer = (
        Layer()
        .file("usr/lib/python3.11/site-packages/PyYAML-6.0.1.dist-info/METADATA", metadata)
        .file(
            "opt/old/lib/python2.7/site-packages/six-1.16.0.egg-info/PKG-INFO",
            "Metadata-Version: 1.1\nName: six\nVersion: 1.16.0\n",
        )
        .file("app/package.json", '{"name": "my-app", "version": "1.0.0"}')
        .file("app/node_modules/lodash/package.json", '{"name":"lodash","version":"4.17.20"}')
        .file(
            "app/node_modules/@angular/core/package.json",
            '{"name":"@angular/core","version":"17.0.0","license":"MIT"}',
        )
        .file(
            "app/node_modules/a/node_modules/lodash/package.json",
            '{"name":"lodash","version":"3.10.1"}',
        )
        .file(
            "app/package-lock.json",
            """{"lockfileVersion": 3, "packages": {
              "": {"name": "my-app"},
              "node_modules/lodash": {"version": "4.17.20"},
              "node_modules/left-pad": {"version": "1.3.0"}}}""",
        )
    )
    source = MemorySource()
    result = one(source, source.add_image([layer]))
    assert names(result, PackageType.PYPI) == {("pyyaml", "6.0.1"), ("six", "1.16.0")}
    assert names(result, PackageType.NPM) == {
        ("lodash", "4.17.20"),
        ("lodash", "3.10.1"),
        ("@angular/core", "17.0.0"),
        ("left-pad", "1.3.0"),
    }
    purls = {p.purl for p in result.packages}
    assert "pkg:pypi/pyyaml@6.0.1" in purls
    assert "pkg:npm/%40angular/core@17.0.0" in purls


def jar(entries: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in entries.items():
            info = zipfile.ZipInfo(name, (1980, 1, 1, 0, 0, 0))
            archive.writestr(info, data, zipfile.ZIP_DEFLATED)
    return buffer.getvalue()


def pom(group: str, artifact: str, version: str) -> bytes:
    return f"groupId={group}\nartifactId={artifact}\nversion={version}\n".encode()


def test_java_archives_nested_and_manifest_only():
    log4j = jar(
        {
            "META-INF/MANIFEST.MF": b"Manifest-Version: 1.0\r\nImplementation-Version: 2.14.1\r\n",
            "META-INF/maven/org.apache.logging.log4j/log4j-core/pom.properties": pom(
                "org.apache.logging.log4j", "log4j-core", "2.14.1"
            ),
        }
    )
    plain = jar({"META-INF/MANIFEST.MF": b"Manifest-Version: 1.0\nImplementation-Title: x\n"})
    app = jar(
        {
            "META-INF/maven/com.example/app/pom.properties": pom("com.example", "app", "1.0"),
            "BOOT-INF/lib/log4j-core-2.14.1.jar": log4j,
            "BOOT-INF/lib/plain-lib-3.2.jar": plain,
        }
    )
    source = MemorySource()
    result = one(source, source.add_image([Layer().file("opt/app.jar", app)]))
    assert names(result, PackageType.MAVEN) == {
        ("app", "1.0"),
        ("log4j-core", "2.14.1"),
        ("plain-lib", "3.2"),
    }
    log = next(p for p in result.packages if p.name == "log4j-core")
    assert log.purl == "pkg:maven/org.apache.logging.log4j/log4j-core@2.14.1"
    assert log.location == "opt/app.jar!BOOT-INF/lib/log4j-core-2.14.1.jar"


def buildinfo_blob(version: str, modinfo: str) -> bytes:
    def uvarint(value: int) -> bytes:
        out = b""
        while value >= 0x80:
            out += bytes([value & 0x7F | 0x80])
            value >>= 7
        return out + bytes([value])

    framed = "0" * 16 + modinfo + "1" * 16
    header = b"\xff Go buildinf:" + bytes([8, 2]) + b"\0" * 16
    return (
        header + uvarint(len(version)) + version.encode() + uvarint(len(framed)) + framed.encode()
    )


def test_go_buildinfo_decoder_synthetic():
    modinfo = (
        "path\texample.com/cmd/tool\nmod\texample.com\tv1.2.3\th1:x=\n"
        "dep\tgithub.com/a/b\tv0.1.0\th1:y=\ndep\tgolang.org/x/net\tv0.1.0\n"
        "=>\tgolang.org/x/net\tv0.2.0\th1:z=\nbuild\tGOOS=linux\n"
    )
    blob = buildinfo_blob("go1.22.3", modinfo)
    info = decode_at(blob)
    assert info is not None
    assert info.go_version == "go1.22.3"
    assert info.main_module == ("example.com", "v1.2.3")
    assert info.deps == (("github.com/a/b", "v0.1.0"), ("golang.org/x/net", "v0.2.0"))
    # In a file: found only at a 16-byte aligned offset, and not fooled by a bare magic.
    decoy = b"\x7fELF" + b"\0" * 12 + b"\xff Go buildinf:xx" + b"\0" * 30
    padded = decoy + b"\0" * (-len(decoy) % 16) + b"\0" * 16 + blob
    assert find_build_info(io.BytesIO(padded)) == info
    assert find_build_info(io.BytesIO(b"\0" * 3 + padded)) is None


def test_real_go_binary(tmp_path):
    crane = Path(find_tool("crane"))
    source = MemorySource()
    layer = Layer().file("usr/local/bin/crane", crane.read_bytes(), mode=0o755)
    result = one(source, source.add_image([layer]))
    found = {p.name: p for p in result.packages if p.type is PackageType.GOLANG}
    assert found["github.com/google/go-containerregistry"].version == "v0.22.1"
    assert found["stdlib"].version.startswith("go1.")
    assert found["stdlib"].purl.startswith("pkg:golang/stdlib@1.")
    assert len(found) > 5


def test_whiteouts_opaque_directories_and_later_deletions_win():
    meta = "Metadata-Version: 2.1\nName: {0}\nVersion: 1.0\n"
    site = "usr/lib/python3/dist-packages"
    lower = (
        Layer()
        .file(f"{site}/foo-1.0.dist-info/METADATA", meta.format("foo"))
        .file(f"{site}/bar-1.0.dist-info/METADATA", meta.format("bar"))
        .file("opt/app/node_modules/x/package.json", '{"name":"x","version":"1.0.0"}')
        .file("srv/gone-1.0.dist-info/METADATA", meta.format("gone"))
    )
    upper = (
        Layer()
        .whiteout(f"{site}/foo-1.0.dist-info")
        # The opaque marker comes after this layer's own entry: the entry stays.
        .file("opt/app/node_modules/y/package.json", '{"name":"y","version":"2.0.0"}')
        .opaque("opt/app")
        .whiteout("srv/gone-1.0.dist-info/METADATA")
    )
    readd = Layer().file("srv/gone-1.0.dist-info/METADATA", meta.format("back"))
    source = MemorySource()
    two = one(source, source.add_image([lower, upper]))
    assert names(two, PackageType.PYPI) == {("bar", "1.0")}
    assert names(two, PackageType.NPM) == {("y", "2.0.0")}
    three = one(source, source.add_image([lower, upper, readd]))
    assert names(three, PackageType.PYPI) == {("bar", "1.0"), ("back", "1.0")}


def test_os_owned_files_are_not_reported_again():
    status = (
        "Package: python3-yaml\nStatus: install ok installed\nArchitecture: amd64\n"
        "Source: pyyaml\nVersion: 6.0-3\n"
    )
    meta = "Metadata-Version: 2.1\nName: PyYAML\nVersion: 6.0\n"
    owned = "/lib/python3/dist-packages/PyYAML-6.0.dist-info/METADATA"
    layer = (
        Layer()
        .file("etc/os-release", OS_RELEASE)
        .file("var/lib/dpkg/status", status)
        .file("var/lib/dpkg/info/python3-yaml.list", f"/.\n/usr\n{owned}\n")
        # merged /usr: the .list path goes through the lib symlink
        .symlink("lib", "usr/lib")
        .file("usr/lib/python3/dist-packages/PyYAML-6.0.dist-info/METADATA", meta)
        .file("usr/local/lib/python3.11/site-packages/PyYAML-6.0.dist-info/METADATA", meta)
    )
    source = MemorySource()
    result = one(source, source.add_image([layer]))
    assert names(result, PackageType.DEB) == {("python3-yaml", "6.0-3")}
    pypi = [p for p in result.packages if p.type is PackageType.PYPI]
    assert [p.location for p in pypi] == [
        "usr/local/lib/python3.11/site-packages/PyYAML-6.0.dist-info/METADATA"
    ]


def test_multi_arch_index_per_platform_skipping_attestations():
    source = MemorySource()
    amd = source.add_image([debian_base()], architecture="amd64")
    arm = source.add_image(
        [
            Layer()
            .file("etc/alpine-release", "3.20.0\n")
            .file("lib/apk/db/installed", "P:musl\nV:1.2.5-r0\no:musl\n")
        ],
        architecture="arm64",
    )
    attestation = source.add_image([Layer().file("statement.json", "{}")])
    index = source.add_index(
        [
            (amd, {"os": "linux", "architecture": "amd64"}, None),
            (arm, {"os": "linux", "architecture": "arm64", "variant": "v8"}, None),
            (
                attestation,
                {"os": "unknown", "architecture": "unknown"},
                {"vnd.docker.reference.type": "attestation-manifest"},
            ),
        ]
    )
    results = analyze(source, index)
    assert [(str(r.platform), r.manifest_digest) for r in results] == [
        ("linux/amd64", amd),
        ("linux/arm64/v8", arm),
    ]
    assert names(results[1], PackageType.APK) == {("musl", "1.2.5-r0")}
    assert results[1].os is not None
    assert results[1].os.id == "alpine"
    assert len(names(results[0], PackageType.DEB)) == 3
    # A platform whose manifest is missing fails alone.
    del source.manifests[arm]
    amd_result, arm_result = analyze(source, index)
    assert amd_result.failure is None
    assert arm_result.failure == f"manifest {arm} is not stored"


def test_plain_tar_layers_and_hard_links():
    stanza = STATUS.split("\n\n", maxsplit=1)[0] + "\n"
    layer = (
        Layer()
        .file("etc/os-release", OS_RELEASE)
        .file("var/lib/dpkg/status.d/libssl3", stanza)
        .hardlink("var/lib/dpkg/status.d/copy", "var/lib/dpkg/status.d/libssl3")
    )
    source = MemorySource()
    result = one(source, source.add_image([layer], compress=False))
    assert {p.location for p in result.packages} == {
        "var/lib/dpkg/status.d/libssl3",
        "var/lib/dpkg/status.d/copy",
    }


@pytest.mark.parametrize("chunk", [1, 7, 1 << 20])
def test_any_chunking_of_the_blob_stream(chunk):
    source = MemorySource(chunk=chunk)
    result = one(source, source.add_image([debian_base()]))
    assert len(result.packages) == 3
