"""Matching exactly as OSV defines it, version order per ecosystem, severity, ecosystems."""

from __future__ import annotations

import pytest

from core.scan.packages import OsRelease, Package, PackageType
from core.vulndb.evaluate import evaluate
from core.vulndb.matching import FixStatus, match, os_ecosystem, query_for
from core.vulndb.osv import lookup_name, parse_record
from core.vulndb.severity import Severity, rate
from core.vulndb.versions import UnorderableVersionError, compare
from tests.scanning.osv_exports import fixture_records

DEBIAN = OsRelease("debian", "12", "bookworm", (), "Debian GNU/Linux 12 (bookworm)")
ALPINE = OsRelease("alpine", "3.19.1")


class MemoryLookup:
    """Records by (ecosystem, name), the way the database answers."""

    def __init__(self, records: list[dict]) -> None:
        self.rows: list[tuple[str, str, dict, dict]] = []
        for document in records:
            record = parse_record(document)
            if record.withdrawn:
                continue
            for entry in record.affected:
                self.rows.append((entry.ecosystem, entry.name, document, entry.raw))

    def affected(self, ecosystem, names):
        return [(n, d, a) for e, n, d, a in self.rows if e == ecosystem and n in names]


def deb(name: str, version: str, source: str | None = None, source_version: str | None = None):
    return Package(
        PackageType.DEB,
        name,
        version,
        f"pkg:deb/debian/{name}@{version}",
        "var/lib/dpkg/status",
        source or name,
        source_version or version,
    )


def rng(*events: dict, kind: str = "ECOSYSTEM") -> dict:
    return {"ranges": [{"type": kind, "events": list(events)}]}


@pytest.mark.parametrize(
    ("ecosystem", "lower", "higher"),
    [
        ("Debian:12", "1.0~rc1", "1.0"),
        ("Debian:12", "9.9", "1:0.1"),
        ("Debian:12", "3.0.11-1~deb12u1", "3.0.11-1~deb12u2"),
        ("Debian:12", "3.0.11-1~deb12u2", "3.0.11-1"),
        ("Debian:12", "1:1.2.13.dfsg-1", "1:1.2.13.dfsg-1+b1"),
        ("Alpine:v3.19", "1.2.3-r9", "1.2.3-r10"),
        ("Alpine:v3.19", "1.2.3_rc1-r0", "1.2.3-r0"),
        ("Alpine:v3.19", "1.2.3-r5", "1.2.3_p1-r0"),
        ("Alpine:v3.19", "1.2-r0", "1.2.1-r0"),
        ("Alpine:v3.19", "1.0_beta2-r0", "1.0_git20230101-r0"),
        ("Rocky Linux:9", "2.0-1.el9", "1:1.0-1.el9"),
        ("Rocky Linux:9", "1.0~rc1-1", "1.0-1"),
        ("PyPI", "1.0rc1", "1.0"),
        ("PyPI", "1.0", "1.0.post1"),
        ("npm", "1.0.0-rc.1", "1.0.0"),
        ("npm", "1.0.0-alpha", "1.0.0-alpha.1"),
        ("Go", "v0.0.0-20230101000000-abcdef123456", "v0.1.0"),
        ("Go", "1.22.0-0", "1.22.0"),
        ("Maven", "2.0-beta9", "2.0"),
        ("Maven", "2.14.1", "2.15.0"),
        ("Maven", "1.0-SNAPSHOT", "1.0"),
    ],
)
def test_version_order(ecosystem, lower, higher):
    assert compare(ecosystem, lower, higher) == -1
    assert compare(ecosystem, higher, lower) == 1
    assert compare(ecosystem, lower, lower) == 0


def test_unorderable_versions():
    with pytest.raises(UnorderableVersionError):
        compare("PyPI", "not a version!", "1.0")
    with pytest.raises(UnorderableVersionError):
        compare("Alpine:v3.19", "x.y", "1.0-r0")
    with pytest.raises(UnorderableVersionError):
        compare("Unknown", "1", "2")


def test_introduced_and_fixed_bounds():
    affected = rng({"introduced": "1.0"}, {"fixed": "1.5"})
    assert evaluate("0.9", "PyPI", affected) is None
    verdict = evaluate("1.0", "PyPI", affected)
    assert verdict is not None
    assert verdict.fixed == "1.5"
    assert evaluate("1.4.9", "PyPI", affected) is not None
    assert evaluate("1.5", "PyPI", affected) is None  # fixed is exclusive


def test_last_affected_is_inclusive():
    affected = rng({"introduced": "0"}, {"last_affected": "2.0"})
    verdict = evaluate("2.0", "PyPI", affected)
    assert verdict is not None
    assert verdict.fixed is None
    assert evaluate("2.0.1", "PyPI", affected) is None


def test_limit_bounds_the_range():
    affected = rng({"introduced": "0"}, {"limit": "3.0"})
    assert evaluate("2.9", "PyPI", affected) is not None
    assert evaluate("3.0", "PyPI", affected) is None
    assert evaluate("5.0", "PyPI", rng({"introduced": "0"}, {"limit": "*"})) is not None


def test_reintroduced_ranges_pick_the_next_fix():
    affected = rng(
        {"introduced": "0"},
        {"fixed": "1.21.9"},
        {"introduced": "1.22.0-0"},
        {"fixed": "1.22.2"},
        kind="SEMVER",
    )
    assert evaluate("1.21.8", "Go", affected).fixed == "1.21.9"  # type: ignore[union-attr]
    assert evaluate("1.21.9", "Go", affected) is None
    assert evaluate("1.22.1", "Go", affected).fixed == "1.22.2"  # type: ignore[union-attr]
    assert evaluate("1.22.2", "Go", affected) is None


def test_events_are_sorted_by_the_ecosystem_order_not_their_listing():
    affected = rng({"fixed": "1:1.1-1"}, {"introduced": "2.0-1"})  # 2.0-1 < 1:1.1-1 (epoch)
    assert evaluate("3.0-1", "Debian:12", affected) is not None
    assert evaluate("1:1.1-1", "Debian:12", affected) is None


def test_explicit_versions_and_unorderable_ranges():
    affected = {"versions": ["1.0", "1.1"], **rng({"introduced": "0"}, {"fixed": "bad version"})}
    assert evaluate("1.1", "PyPI", affected) is not None
    assert evaluate("1.2", "PyPI", affected) is None
    git = {"ranges": [{"type": "GIT", "repo": "x", "events": [{"introduced": "0"}]}]}
    assert evaluate("1.0", "PyPI", git) is None


def test_os_release_to_ecosystem():
    assert os_ecosystem(DEBIAN) == "Debian:12"
    assert os_ecosystem(ALPINE) == "Alpine:v3.19"
    assert os_ecosystem(OsRelease("alpine", "3.20.0")) == "Alpine:v3.20"
    assert (
        os_ecosystem(OsRelease("ubuntu", "22.04", pretty_name="Ubuntu 22.04.4 LTS"))
        == "Ubuntu:22.04:LTS"
    )
    assert os_ecosystem(OsRelease("rocky", "9.3")) == "Rocky Linux:9"
    assert os_ecosystem(OsRelease("wolfi")) == "Wolfi"
    assert os_ecosystem(OsRelease("plan9", "4")) is None
    assert os_ecosystem(None) is None


def test_queries_per_ecosystem():
    go = Package(PackageType.GOLANG, "stdlib", "go1.22.3", "pkg:golang/stdlib@1.22.3", "bin/x")
    assert query_for(go, None).version == "1.22.3"  # type: ignore[union-attr]
    devel = Package(PackageType.GOLANG, "example.com/x", "(devel)", "pkg:golang/x", "bin/x")
    assert query_for(devel, None) is None
    maven = Package(
        PackageType.MAVEN,
        "log4j-core",
        "2.14.1",
        "pkg:maven/org.apache.logging.log4j/log4j-core@2.14.1",
        "app.jar",
    )
    assert query_for(maven, None).name == "org.apache.logging.log4j:log4j-core"  # type: ignore[union-attr]
    assert lookup_name("PyPI", "Foo_Bar.baz") == "foo-bar-baz"
    assert query_for(deb("libssl3", "1", "openssl"), None) is None  # no OS: no distro data


def test_debian_packages_match_through_their_source():
    lookup = MemoryLookup(fixture_records("Debian"))
    packages = [
        deb("libssl3", "3.0.11-1~deb12u1", "openssl"),
        deb("openssl", "3.0.11-1~deb12u1"),
        deb("zlib1g", "1:1.2.13.dfsg-1", "zlib"),
        deb("libfoo", "1.0"),
    ]
    findings = match(packages, DEBIAN, lookup)
    found = {(f.package, f.vulnerability_id) for f in findings}
    assert found == {
        ("libssl3", "DSA-5532-1"),
        ("openssl", "DSA-5532-1"),
        ("libssl3", "MOORAGE-TEST-0001"),
        ("openssl", "MOORAGE-TEST-0001"),
        ("libssl3", "MOORAGE-TEST-0002"),
        ("openssl", "MOORAGE-TEST-0002"),
        ("zlib1g", "MOORAGE-TEST-0004"),
    }  # 0003 is withdrawn, 0005's limit is below 3.0.11
    dsa = next(f for f in findings if f.vulnerability_id == "DSA-5532-1")
    assert (dsa.status, dsa.fixed_version) == (FixStatus.FIXED, "3.0.11-1~deb12u2")
    assert (dsa.severity, dsa.cvss_score) == (Severity.HIGH, 7.5)
    assert dsa.aliases == ("CVE-2023-5363",)
    assert dsa.matched_name == "openssl"
    unfixed = next(f for f in findings if f.vulnerability_id == "MOORAGE-TEST-0002")
    assert (unfixed.status, unfixed.fixed_version) == (FixStatus.UNFIXED, None)
    assert (unfixed.severity, unfixed.severity_source) == (
        Severity.LOW,
        "ecosystem_specific.urgency",
    )
    assert findings[0].severity is Severity.CRITICAL  # sorted most severe first
    later = match([deb("libssl3", "3.0.11-1~deb12u2", "openssl")], DEBIAN, lookup)
    assert {f.vulnerability_id for f in later} == {"MOORAGE-TEST-0001", "MOORAGE-TEST-0002"}
    newer_zlib = match([deb("zlib1g", "1:1.3-1", "zlib")], DEBIAN, lookup)
    assert newer_zlib == []  # past last_affected


def test_alpine_packages_match_through_their_origin():
    lookup = MemoryLookup(fixture_records("Alpine"))
    crypto = Package(
        PackageType.APK,
        "libcrypto3",
        "3.1.4-r0",
        "pkg:apk/alpine/libcrypto3@3.1.4-r0",
        "lib/apk/db/installed",
        "openssl",
        "3.1.4-r0",
    )
    [finding] = match([crypto], ALPINE, lookup)
    assert (finding.package, finding.matched_name, finding.fixed_version) == (
        "libcrypto3",
        "openssl",
        "3.1.4-r1",
    )
    assert match([crypto], OsRelease("alpine", "3.20.0"), lookup) == []  # other release


def test_language_packages():
    lookup = MemoryLookup(
        fixture_records("PyPI")
        + fixture_records("npm")
        + fixture_records("Maven")
        + fixture_records("Go")
    )
    packages = [
        Package(PackageType.PYPI, "PyYAML", "5.3.1", "pkg:pypi/pyyaml@5.3.1", "m"),
        Package(PackageType.PYPI, "PyYAML", "6.0.1", "pkg:pypi/pyyaml@6.0.1", "n"),
        Package(PackageType.NPM, "lodash", "4.17.20", "pkg:npm/lodash@4.17.20", "p"),
        Package(
            PackageType.MAVEN,
            "log4j-core",
            "2.14.1",
            "pkg:maven/org.apache.logging.log4j/log4j-core@2.14.1",
            "j",
        ),
        Package(
            PackageType.MAVEN,
            "log4j-core",
            "2.12.2",
            "pkg:maven/org.apache.logging.log4j/log4j-core@2.12.2",
            "k",
        ),
        Package(PackageType.GOLANG, "stdlib", "go1.26.8", "pkg:golang/stdlib@1.26.8", "g"),
        Package(
            PackageType.GOLANG,
            "github.com/google/go-containerregistry",
            "v0.22.1",
            "pkg:golang/github.com/google/go-containerregistry@v0.22.1",
            "g",
        ),
    ]
    findings = {(f.package, f.version): f for f in match(packages, None, lookup)}
    assert set(findings) == {
        ("PyYAML", "5.3.1"),
        ("lodash", "4.17.20"),
        ("log4j-core", "2.14.1"),
        ("stdlib", "go1.26.8"),
        ("github.com/google/go-containerregistry", "v0.22.1"),
    }
    pyyaml = findings["PyYAML", "5.3.1"]
    # The source's own rating (GitHub: CRITICAL) wins; the CVSS score is kept beside it.
    assert (pyyaml.severity, pyyaml.severity_source, pyyaml.cvss_score) == (
        Severity.CRITICAL,
        "database_specific.severity",
        9.8,
    )
    assert findings["log4j-core", "2.14.1"].fixed_version == "2.15.0"
    assert findings["lodash", "4.17.20"].severity is Severity.HIGH
    assert findings["stdlib", "go1.26.8"].fixed_version == "1.99.1"
    explicit = findings["github.com/google/go-containerregistry", "v0.22.1"]
    assert (explicit.status, explicit.fixed_version) == (FixStatus.UNFIXED, None)


def test_severity_sources_and_bands():
    v3 = {
        "severity": [{"type": "CVSS_V3", "score": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"}]
    }
    assert rate(v3, {}).severity is Severity.CRITICAL
    v4 = {
        "severity": [
            {
                "type": "CVSS_V4",
                "score": "CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N",
            }
        ]
    }
    assert (rate(v4, {}).severity, rate(v4, {}).source) == (Severity.CRITICAL, "CVSS_V4")
    v2 = {"severity": [{"type": "CVSS_V2", "score": "AV:N/AC:L/Au:N/C:C/I:C/A:C"}]}
    assert rate(v2, {}).severity is Severity.HIGH  # v2 has no Critical band
    low = {
        "severity": [{"type": "CVSS_V3", "score": "CVSS:3.1/AV:L/AC:H/PR:H/UI:R/S:U/C:L/I:N/A:N"}]
    }
    assert rate(low, {}).severity is Severity.LOW
    ghsa = {**v3, "database_specific": {"severity": "MODERATE"}}
    assert rate(ghsa, {}).severity is Severity.MEDIUM
    urgency = {"ecosystem_specific": {"urgency": "unimportant"}}
    assert rate({}, urgency).severity is Severity.NEGLIGIBLE
    assert (
        rate({}, {"ecosystem_specific": {"urgency": "not yet assigned"}}).severity
        is Severity.UNKNOWN
    )
    ubuntu = {"severity": [{"type": "Ubuntu", "score": "medium"}]}
    assert rate(ubuntu, {}).severity is Severity.MEDIUM
    broken = {"severity": [{"type": "CVSS_V3", "score": "CVSS:3.1/nonsense"}]}
    assert rate(broken, {}).severity is Severity.UNKNOWN
