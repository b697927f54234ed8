"""Match packages against OSV records: which ecosystem, which name, which version.

Distro packages are matched by their source package (dpkg ``Source``, apk origin, the
source rpm) in the release's ecosystem taken from ``os-release`` (``Debian:12``,
``Alpine:v3.20``, ``Ubuntu:22.04:LTS``, ``Rocky Linux:9``); findings name the installed
binary package. Every finding keeps its fix status and the fixed version.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Protocol

from packageurl import PackageURL

from core.scan.packages import OsRelease, Package, PackageType
from core.vulndb.evaluate import evaluate
from core.vulndb.osv import lookup_name
from core.vulndb.severity import Severity, rate


class FixStatus(StrEnum):
    FIXED = "fixed"
    UNFIXED = "unfixed"


@dataclass(frozen=True)
class Finding:
    vulnerability_id: str
    aliases: tuple[str, ...]
    package: str
    version: str
    package_type: str
    purl: str
    ecosystem: str
    #: The name and version the data was queried with (the source package for distros).
    matched_name: str
    matched_version: str
    status: FixStatus
    fixed_version: str | None
    severity: Severity
    severity_source: str
    cvss_score: float | None
    cvss_vector: str | None
    summary: str


class VulnLookup(Protocol):
    """Stored OSV data, looked up by ecosystem and package names."""

    def affected(
        self, ecosystem: str, names: Collection[str]
    ) -> list[tuple[str, dict[str, Any], dict[str, Any]]]:
        """(name, record document, ``affected[]`` entry) for every stored match."""


@dataclass(frozen=True)
class Query:
    ecosystem: str
    name: str
    version: str


def _major(version: str) -> str:
    return version.split(".", 1)[0]


def os_ecosystem(os_release: OsRelease | None) -> str | None:
    """The OSV ecosystem of an image's distribution packages, when OSV has one."""
    if os_release is None or (
        not os_release.version_id
        and os_release.id
        not in {
            "wolfi",
            "chainguard",
        }
    ):
        return None
    os_id, version = os_release.id, os_release.version_id
    simple = {
        "debian": f"Debian:{_major(version)}",
        "alpine": "Alpine:v" + ".".join(version.split(".")[:2]),
        "rocky": f"Rocky Linux:{_major(version)}",
        "almalinux": f"AlmaLinux:{_major(version)}",
        "wolfi": "Wolfi",
        "chainguard": "Chainguard",
    }
    if os_id in simple:
        return simple[os_id]
    if os_id == "ubuntu":
        lts = ":LTS" if "LTS" in os_release.pretty_name else ""
        return f"Ubuntu:{version}{lts}"
    return None


_LANGUAGE = {
    PackageType.PYPI: "PyPI",
    PackageType.NPM: "npm",
    PackageType.GOLANG: "Go",
    PackageType.MAVEN: "Maven",
}


def query_for(package: Package, os_release: OsRelease | None) -> Query | None:
    """What to look up for ``package``; ``None`` when no OSV data can apply."""
    if package.type in {PackageType.DEB, PackageType.APK, PackageType.RPM}:
        ecosystem = os_ecosystem(os_release)
        if ecosystem is None:
            return None
        name = package.source_name or package.name
        version = package.source_version or package.version
        if package.type is PackageType.APK:
            version = package.version  # NOTE: the origin shares the binary's version
        return Query(ecosystem, name, version)
    ecosystem = _LANGUAGE[package.type]
    version = package.version
    name = package.name
    if package.type is PackageType.GOLANG:
        if version in {"(devel)", ""}:
            return None
        version = version.removeprefix("go") if name == "stdlib" else version.removeprefix("v")
    elif package.type is PackageType.MAVEN:
        purl = PackageURL.from_string(package.purl)
        name = f"{purl.namespace}:{purl.name}" if purl.namespace else purl.name
    return Query(ecosystem, lookup_name(ecosystem, name), version)


def match(
    packages: Iterable[Package], os_release: OsRelease | None, lookup: VulnLookup
) -> list[Finding]:
    """Every finding for ``packages``, one per (vulnerability, package), sorted."""
    queries: dict[str, dict[str, list[tuple[Package, Query]]]] = defaultdict(
        lambda: defaultdict(list)
    )
    for package in packages:
        query = query_for(package, os_release)
        if query is not None:
            queries[query.ecosystem][query.name].append((package, query))
    findings: dict[tuple[str, str, str], Finding] = {}
    for ecosystem, by_name in queries.items():
        for name, document, affected in lookup.affected(ecosystem, list(by_name)):
            for package, query in by_name.get(name, []):
                verdict = evaluate(query.version, ecosystem, affected)
                if verdict is None:
                    continue
                key = (str(document["id"]), package.purl, package.location)
                if key in findings:
                    continue
                findings[key] = _finding(package, query, document, affected, verdict.fixed)
    return sorted(
        findings.values(), key=lambda f: (-f.severity.rank, f.package, f.vulnerability_id)
    )


def _finding(
    package: Package,
    query: Query,
    document: dict[str, Any],
    affected: dict[str, Any],
    fixed: str | None,
) -> Finding:
    rating = rate(document, affected)
    aliases = [*(document.get("aliases") or []), *(document.get("upstream") or [])]
    return Finding(
        vulnerability_id=str(document["id"]),
        aliases=tuple(dict.fromkeys(str(a) for a in aliases)),
        package=package.name,
        version=package.version,
        package_type=str(package.type),
        purl=package.purl,
        ecosystem=query.ecosystem,
        matched_name=query.name,
        matched_version=query.version,
        status=FixStatus.FIXED if fixed else FixStatus.UNFIXED,
        fixed_version=fixed,
        severity=rating.severity,
        severity_source=rating.source,
        cvss_score=rating.score,
        cvss_vector=rating.vector,
        summary=str(document.get("summary") or ""),
    )
